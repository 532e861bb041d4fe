// What the attention kernels (kv-cache-write, attention-prefill, attention-decode) share: the
// shape they are rendered for, the flash tile, their header (bindings + a Params uniform whose
// second word is `past`) and grids. The CPU reference is attendToCache (ir/interpret/attention-core.ts).
import type { AttentionTile } from '../../../ir/target.js';
import type { AttentionCoreShape } from '../../../ir/interpret/attention-core.js';
import { evalTokenExpr, tokenExpr, type PlanGrid, type TokenExpr } from '../../../runtime/plan.js';
import { DEFAULT_LIMITS } from '../../../runtime/device.js';
import type { KernelBinding, RenderedKernel, StorageDecl } from '../kernel.js';
import { f32Array, u32Array } from '../kernel.js';
import { f32Literal, renderTemplate } from '../template.js';

export type KvCacheDtype = 'f32' | 'f16';

export interface AttentionShape extends AttentionCoreShape {
  /** A `sinks` [heads] f32 binding: head h's sink logit joins the softmax, then is dropped (gpt-oss). */
  sinks: boolean;
  /** Rows of each cache: slot j holds position j, so past + tokens <= context. */
  context: number;
  /** f16 caches are packed pairs in array<u32> (no shader-f16 needed), element e in word e / 2. */
  cacheDtype: KvCacheDtype;
  /**
   * Elements from one value-cache row to the next (default kvHeads valueDim); value (j, kv, d) is
   * element j valueStride + kv valueDim + d. MLA binds the key cache as the value cache with
   * valueStride = keyDim (one kv head): the values are the first valueDim columns of each key row.
   */
  valueStride?: number;
}

/** The flash loop's tile: the target's choice (ir/target.ts), an op attr; the renderers check it against the limits. */
export type { AttentionTile };
export { DEFAULT_ATTENTION_PREFILL_TILE as DEFAULT_PREFILL_TILE, DEFAULT_ATTENTION_DECODE_TILE as DEFAULT_DECODE_TILE } from '../../../ir/target.js';

export interface AttentionLimits {
  maxWorkgroupBytes: number;
  maxInvocations: number;
}

export const DEFAULT_ATTENTION_LIMITS: AttentionLimits = {
  maxWorkgroupBytes: DEFAULT_LIMITS.maxComputeWorkgroupStorageSize,
  maxInvocations: DEFAULT_LIMITS.maxComputeInvocationsPerWorkgroup,
};

/**
 * A rendered attention kernel and its dispatch. Every grid is linear in the token count (never in
 * `past`), so `planGrid` is a plan's TokenExpr grid; grid(tokens, past) evaluates it.
 */
export interface AttentionKernel {
  kernel: RenderedKernel;
  planGrid: PlanGrid & { kind: 'fixed' };
  grid(tokens: number, past: number): [number, number, number];
}

/** The 4 words of every attention kernel's Params uniform: { tokens, past, 0, 0 }. */
export function attentionParamsWords(tokens: number, past: number): Uint32Array {
  return Uint32Array.from([tokens, past, 0, 0]);
}

export function checkAttentionShape(shape: AttentionShape): void {
  const { heads, kvHeads, keyDim, valueDim, window, context, scale } = shape;
  for (const [name, n] of Object.entries({ heads, kvHeads, keyDim, valueDim, context })) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`attention: ${name} ${n} must be a positive integer`);
  }
  if (heads % kvHeads) throw new Error(`attention: heads ${heads} must be a multiple of kvHeads ${kvHeads}`);
  if (!Number.isInteger(window) || window < 0) throw new Error(`attention: window ${window} must be 0 (none) or a positive integer`);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale ${scale} must be finite`);
  const { valueStride } = shape;
  if (valueStride !== undefined && (!Number.isInteger(valueStride) || valueStride < kvHeads * valueDim)) {
    throw new Error(`attention: valueStride ${valueStride} must be an integer >= kvHeads * valueDim = ${kvHeads * valueDim}`);
  }
}

export function cacheArray(dtype: KvCacheDtype): string {
  return dtype === 'f16' ? u32Array : f32Array;
}

/** Numbers the storage bindings in order (as declareBindings does) and renders the attention header. */
export function declareAttentionBindings(storage: StorageDecl[]): { header: string; bindings: KernelBinding[]; uniformBinding: number } {
  const bindings = storage.map((s, binding) => ({ ...s, binding }));
  const uniformBinding = bindings.length;
  return { header: renderTemplate('attention/header.wgsl.hbs', { storage: bindings, uniformBinding }), bindings, uniformBinding };
}

/** The template fields every attention template reads. */
export function shapeFields(shape: AttentionShape) {
  return {
    heads: shape.heads,
    kvHeads: shape.kvHeads,
    keyDim: shape.keyDim,
    valueDim: shape.valueDim,
    valueStride: shape.valueStride ?? shape.kvHeads * shape.valueDim,
    scale: f32Literal(shape.scale),
    window: shape.window,
    sinks: shape.sinks,
    f16Cache: shape.cacheDtype === 'f16',
    context: shape.context,
  };
}

/** A short name tag: h8kv2_k64v64_w16_sinks_f16kv (and _vs576 for a value stride other than kvHeads valueDim). */
export function shapeTag(shape: AttentionShape): string {
  const window = shape.window ? `_w${shape.window}` : '';
  const stride = shape.valueStride !== undefined && shape.valueStride !== shape.kvHeads * shape.valueDim ? `_vs${shape.valueStride}` : '';
  return `h${shape.heads}kv${shape.kvHeads}_k${shape.keyDim}v${shape.valueDim}${stride}${window}${shape.sinks ? '_sinks' : ''}${shape.cacheDtype === 'f16' ? '_f16kv' : ''}`;
}

export function attentionKernel(kernel: RenderedKernel, x: TokenExpr, y: TokenExpr, z: TokenExpr): AttentionKernel {
  const planGrid = { kind: 'fixed', x, y, z } as const;
  return { kernel, planGrid, grid: (tokens) => [evalTokenExpr(x, tokens), evalTokenExpr(y, tokens), evalTokenExpr(z, tokens)] };
}

export const constantExpr = (n: number): TokenExpr => tokenExpr(0, n);

/** Workgroup bytes of the flash loop: Q rows (all of keyDim when resident, else one chunk), a K/V chunk, P, row stats. */
export function flashWorkgroupBytes(tile: AttentionTile, keyDim: number, queryResident: boolean): number {
  const keyChunks = Math.ceil(keyDim / tile.dimChunk);
  const qFloats = tile.queryRows * (queryResident ? keyChunks * tile.dimChunk : tile.dimChunk);
  return 4 * (qFloats + tile.keys * (tile.dimChunk + 1) + tile.queryRows * tile.keys + 3 * tile.queryRows);
}

/** Checks a flash tile against the limits; says whether Q can stay in workgroup memory for the whole loop. */
export function planFlashTile(shape: AttentionShape, tile: AttentionTile, limits: AttentionLimits): { queryResident: boolean } {
  for (const [name, n] of Object.entries(tile)) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`attention tile: ${name} ${n} must be a positive integer`);
  }
  if (tile.threads > limits.maxInvocations) throw new Error(`attention tile: ${tile.threads} threads, more than the ${limits.maxInvocations} invocations a workgroup may have`);
  if (tile.threads < tile.queryRows) throw new Error(`attention tile: needs at least queryRows (${tile.queryRows}) threads, not ${tile.threads}`);
  const streamed = flashWorkgroupBytes(tile, shape.keyDim, false);
  if (streamed > limits.maxWorkgroupBytes) {
    throw new Error(`attention tile ${JSON.stringify(tile)} needs ${streamed} bytes of workgroup memory, more than ${limits.maxWorkgroupBytes}: use fewer query rows, keys or a smaller dimChunk`);
  }
  return { queryResident: flashWorkgroupBytes(tile, shape.keyDim, true) <= limits.maxWorkgroupBytes };
}
