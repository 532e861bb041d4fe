// Prefill (and chunked prefill: past > 0) attention: FlashAttention over the KV cache, after the
// step's keys and values were written to it. Grid (ceil(T GROUP / queryRows), kvHeads, 1); see
// attention-flash.wgsl.hbs for the tiling.
import { f32Array, type StorageDecl } from '../kernel.js';
import { renderTemplate } from '../template.js';
import { tokenExpr } from '../../../runtime/plan.js';
import {
  attentionKernel,
  cacheArray,
  checkAttentionShape,
  constantExpr,
  declareAttentionBindings,
  DEFAULT_ATTENTION_LIMITS,
  DEFAULT_PREFILL_TILE,
  planFlashTile,
  shapeFields,
  shapeTag,
  type AttentionKernel,
  type AttentionLimits,
  type AttentionShape,
  type AttentionTile,
} from './attention-shape.js';

/** The storage bindings of the flash loop: q, the caches, sinks (with `sinks`), then its outputs. */
export function flashBindings(shape: AttentionShape, outputs: StorageDecl[]): StorageDecl[] {
  return [
    { name: 'q', access: 'read', type: f32Array },
    { name: 'key_cache', access: 'read', type: cacheArray(shape.cacheDtype) },
    { name: 'value_cache', access: 'read', type: cacheArray(shape.cacheDtype) },
    ...outputs,
  ];
}

export function renderCacheLoad(shape: AttentionShape): string {
  return renderTemplate('attention/cache-load.wgsl.hbs', { f16Cache: shape.cacheDtype === 'f16' }).replace(/\n$/, '');
}

/**
 * Bindings: q [T, heads keyDim] f32, key_cache [context, kvHeads keyDim], value_cache [context,
 * valueStride] (may be the key cache, see AttentionShape.valueStride), sinks [heads] f32 (with
 * shape.sinks), out [T, heads valueDim] f32.
 */
export function renderAttentionPrefillKernel(shape: AttentionShape, tile: AttentionTile = DEFAULT_PREFILL_TILE, limits: AttentionLimits = DEFAULT_ATTENTION_LIMITS): AttentionKernel {
  checkAttentionShape(shape);
  const { queryResident } = planFlashTile(shape, tile, limits);
  const { header, bindings, uniformBinding } = declareAttentionBindings(
    flashBindings(shape, [
      ...(shape.sinks ? [{ name: 'sinks', access: 'read', type: f32Array } as const] : []),
      { name: 'out', access: 'read_write', type: f32Array },
    ]),
  );
  const name = `attention_prefill_${shapeTag(shape)}_q${tile.queryRows}k${tile.keys}d${tile.dimChunk}t${tile.threads}`;
  const wgsl = renderTemplate('attention/attention-flash.wgsl.hbs', {
    title: `Attention prefill ${shapeTag(shape)}: ${tile.queryRows} query rows x ${tile.keys} keys per step, ${tile.dimChunk}-column chunks.`,
    header,
    ...shapeFields(shape),
    ...tile,
    queryResident,
    split: false,
    cacheLoad: renderCacheLoad(shape),
  });
  const group = shape.heads / shape.kvHeads;
  return attentionKernel({ name, wgsl, entryPoint: 'main', workgroupSize: [tile.threads, 1, 1], bindings, uniformBinding }, tokenExpr(group, 0, tile.queryRows), constantExpr(shape.kvHeads), constantExpr(1));
}
