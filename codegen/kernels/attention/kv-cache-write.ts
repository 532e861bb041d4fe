// Appends T new key and value rows (f32 activations) to the KV caches at rows past .. past + T - 1.
// Grid (X, T, 1), X fixed by the row widths; see kv-cache-write.wgsl.hbs.
import { f32Array } from '../kernel.js';
import { renderTemplate } from '../template.js';
import { tokenExpr } from '../../../runtime/plan.js';
import { attentionKernel, cacheArray, checkAttentionShape, constantExpr, declareAttentionBindings, type AttentionKernel, type AttentionShape } from './attention-shape.js';

export type KvCacheWriteShape = Pick<AttentionShape, 'kvHeads' | 'keyDim' | 'valueDim' | 'context' | 'cacheDtype'>;

const THREADS = 256;

/** u32 words of one cache ([context, width] elements; an f16 cache packs two per word, the last maybe half used). */
export function kvCacheWords(context: number, width: number, dtype: AttentionShape['cacheDtype']): number {
  return dtype === 'f16' ? Math.ceil((context * width) / 2) : context * width;
}

/** Bindings: new_keys [T, kvHeads keyDim], new_values [T, kvHeads valueDim] (f32), key_cache, value_cache. */
export function renderKvCacheWriteKernel(shape: KvCacheWriteShape): AttentionKernel {
  checkAttentionShape({ heads: shape.kvHeads, scale: 1, window: 0, sinks: false, ...shape });
  const keyRow = shape.kvHeads * shape.keyDim;
  const valueRow = shape.kvHeads * shape.valueDim;
  const f16Cache = shape.cacheDtype === 'f16';
  const { header, bindings, uniformBinding } = declareAttentionBindings([
    { name: 'new_keys', access: 'read', type: f32Array },
    { name: 'new_values', access: 'read', type: f32Array },
    { name: 'key_cache', access: 'read_write', type: cacheArray(shape.cacheDtype) },
    { name: 'value_cache', access: 'read_write', type: cacheArray(shape.cacheDtype) },
  ]);
  const wgsl = renderTemplate('attention/kv-cache-write.wgsl.hbs', { header, keyRow, valueRow, context: shape.context, threads: THREADS, f16Cache });
  // An f16 row of width w touches at most floor((w + 1) / 2) + 1 words (the first row one more).
  const units = (width: number) => (f16Cache ? Math.floor((width + 1) / 2) + 1 : width);
  const x = Math.ceil(Math.max(units(keyRow), units(valueRow)) / THREADS);
  const tag = `kv${shape.kvHeads}_k${shape.keyDim}v${shape.valueDim}${f16Cache ? '_f16kv' : ''}`;
  return attentionKernel({ name: `kv_cache_write_${tag}`, wgsl, entryPoint: 'main', workgroupSize: [THREADS, 1, 1], bindings, uniformBinding }, constantExpr(x), tokenExpr(1), constantExpr(1));
}
