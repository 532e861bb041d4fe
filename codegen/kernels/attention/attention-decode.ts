// Decode attention (flash-decoding) for a few query rows against a long cache: the context
// [0, context) is split into `chunks` fixed at render time; `partials` (grid (ceil(T GROUP /
// queryRows), kvHeads, chunks)) runs the flash loop of attention-flash.wgsl.hbs over one chunk per
// workgroup, and `merge` (grid (heads, T, 1)) combines a row's chunks and adds its sink.
import { f32Array } from '../kernel.js';
import { renderTemplate } from '../template.js';
import { tokenExpr } from '../../../runtime/plan.js';
import {
  attentionKernel,
  checkAttentionShape,
  constantExpr,
  declareAttentionBindings,
  DEFAULT_ATTENTION_LIMITS,
  DEFAULT_DECODE_TILE,
  planFlashTile,
  shapeFields,
  shapeTag,
  type AttentionKernel,
  type AttentionLimits,
  type AttentionShape,
  type AttentionTile,
} from './attention-shape.js';
import { flashBindings, renderCacheLoad } from './attention-prefill.js';

export interface AttentionDecodeOptions {
  tile?: AttentionTile;
  /** Keys per chunk (default 256): chunks = ceil(context / chunkKeys); need not be a multiple of the tile. */
  chunkKeys?: number;
  /** Threads of the merge kernel (default 64). */
  mergeThreads?: number;
  limits?: AttentionLimits;
}

export interface AttentionDecodeKernels {
  /**
   * Bindings: q, key_cache, value_cache (as the prefill kernel's), partial_stats [T, heads, chunks, 2]
   * and partial_acc [T, heads, chunks, valueDim] (f32; partialWords(T) words each, unwritten for
   * chunks a row does not see).
   */
  partials: AttentionKernel;
  /** Bindings: partial_stats, partial_acc, sinks [heads] (with shape.sinks), out [T, heads valueDim] f32. */
  merge: AttentionKernel;
  chunks: number;
  chunkKeys: number;
  /** f32 words of partial_stats and partial_acc for T query rows. */
  partialWords(tokens: number): { stats: number; acc: number };
}

export const DEFAULT_DECODE_CHUNK_KEYS = 256;

export function renderAttentionDecodeKernels(shape: AttentionShape, options: AttentionDecodeOptions = {}): AttentionDecodeKernels {
  checkAttentionShape(shape);
  const tile = options.tile ?? DEFAULT_DECODE_TILE;
  const limits = options.limits ?? DEFAULT_ATTENTION_LIMITS;
  const chunkKeys = options.chunkKeys ?? DEFAULT_DECODE_CHUNK_KEYS;
  const mergeThreads = options.mergeThreads ?? 64;
  if (!Number.isInteger(chunkKeys) || chunkKeys < 1) throw new Error(`attention decode: chunkKeys ${chunkKeys} must be a positive integer`);
  if (!Number.isInteger(mergeThreads) || mergeThreads < 1 || mergeThreads > limits.maxInvocations) {
    throw new Error(`attention decode: mergeThreads ${mergeThreads} must be an integer in 1..${limits.maxInvocations}`);
  }
  const chunks = Math.ceil(shape.context / chunkKeys);
  if (4 * chunks > limits.maxWorkgroupBytes) throw new Error(`attention decode: ${chunks} chunks of ${chunkKeys} keys: the merge's weights need more than ${limits.maxWorkgroupBytes} bytes; use longer chunks`);
  const { queryResident } = planFlashTile(shape, tile, limits);
  const tag = shapeTag(shape);
  const fields = { ...shapeFields(shape), chunkKeys, chunks };

  const split = declareAttentionBindings(
    flashBindings(shape, [
      { name: 'partial_stats', access: 'read_write', type: f32Array },
      { name: 'partial_acc', access: 'read_write', type: f32Array },
    ]),
  );
  const splitWgsl = renderTemplate('attention/attention-flash.wgsl.hbs', {
    title: `Attention decode partials ${tag}: ${chunks} chunks of ${chunkKeys} keys, ${tile.queryRows} query rows x ${tile.keys} keys per step, ${tile.dimChunk}-column chunks.`,
    header: split.header,
    ...fields,
    sinks: false, // the merge adds them, once per row
    ...tile,
    queryResident,
    split: true,
    cacheLoad: renderCacheLoad(shape),
  });
  const group = shape.heads / shape.kvHeads;
  const partials = attentionKernel(
    { name: `attention_decode_partials_${tag}_c${chunkKeys}x${chunks}_q${tile.queryRows}k${tile.keys}d${tile.dimChunk}t${tile.threads}`, wgsl: splitWgsl, entryPoint: 'main', workgroupSize: [tile.threads, 1, 1], bindings: split.bindings, uniformBinding: split.uniformBinding },
    tokenExpr(group, 0, tile.queryRows),
    constantExpr(shape.kvHeads),
    constantExpr(chunks),
  );

  const merged = declareAttentionBindings([
    { name: 'partial_stats', access: 'read', type: f32Array },
    { name: 'partial_acc', access: 'read', type: f32Array },
    ...(shape.sinks ? [{ name: 'sinks', access: 'read', type: f32Array } as const] : []),
    { name: 'out', access: 'read_write', type: f32Array },
  ]);
  const mergeWgsl = renderTemplate('attention/attention-merge.wgsl.hbs', {
    title: `Attention decode merge ${tag}: ${chunks} chunks of ${chunkKeys} keys.`,
    header: merged.header,
    ...fields,
    threads: mergeThreads,
  });
  const merge = attentionKernel(
    { name: `attention_decode_merge_${tag}_c${chunkKeys}x${chunks}`, wgsl: mergeWgsl, entryPoint: 'main', workgroupSize: [mergeThreads, 1, 1], bindings: merged.bindings, uniformBinding: merged.uniformBinding },
    constantExpr(shape.heads),
    tokenExpr(1),
    constantExpr(1),
  );
  const rowChunks = (tokens: number) => tokens * shape.heads * chunks;
  return { partials, merge, chunks, chunkKeys, partialWords: (tokens) => ({ stats: 2 * rowChunks(tokens), acc: rowChunks(tokens) * shape.valueDim }) };
}
