// DeepSeek multi-head latent attention over its compressed cache (rows of normed latent, then
// the roped shared key). Two forms of the same numbers: the one transformers writes
// (modeling_deepseek_v3.py: keys and values decompressed per head by kv_b_proj), and the absorbed
// one decode kernels use (DeepSeek's and vLLM's MLA): kv_b's key half folded into each query and
// its value half applied after attention, so attention runs as one-head MQA over the latent.
import { yarnMscale } from '../../runtime/rope-table.js';
import { numParam, type KindRef } from '../model-config.js';
import { attendToCache } from './attention-core.js';

export interface MlaShape {
  heads: number;
  nope: number;
  rope: number;
  kvRank: number;
  valueDim: number;
  scale: number;
  window: number;
}

/**
 * qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)^2 under YaRN with mscale_all_dim set
 * (DeepseekV3Attention.__init__: self.scaling) unless softmax_mscale = false (transformers'
 * modular_deepseek_v2.py leaves the scale plain).
 */
export function mlaSoftmaxScale(attention: KindRef, rope: KindRef): number {
  const base = 1 / Math.sqrt(numParam(attention, 'qk_nope_head_dim') + numParam(attention, 'qk_rope_head_dim'));
  if (rope.kind !== 'yarn' || attention.params['softmax_mscale'] === false) return base;
  const all = numParam(rope, 'mscale_all_dim');
  if (!all) return base;
  const m = yarnMscale(numParam(rope, 'factor'), all);
  return base * m * m;
}

/** kv_b's row r of head h's key part (r < nope) or value part, applied to cache row j's latent. */
function kvB(kvB: Float32Array, cache: Float32Array, s: MlaShape, h: number, r: number, j: number): number {
  const w = (h * (s.nope + s.valueDim) + r) * s.kvRank;
  const c = j * (s.kvRank + s.rope);
  let sum = 0;
  for (let i = 0; i < s.kvRank; i++) sum += kvB[w + i]! * cache[c + i]!;
  return sum;
}

/**
 * The transformers form: per-head keys [k_nope (kv_b . latent), shared rope key] and values
 * (kv_b . latent) for every cached position up to the last query, then attention.
 * q: [T, heads * (nope + rope)], roped; returns [T, heads * valueDim].
 */
export function mlaAttend(q: Float32Array, cache: Float32Array, positions: Int32Array, kvBWeight: Float32Array, s: MlaShape): Float32Array {
  const keyDim = s.nope + s.rope;
  const length = Math.max(0, ...positions) + 1;
  const keys = new Float32Array(length * s.heads * keyDim);
  const values = new Float32Array(length * s.heads * s.valueDim);
  for (let j = 0; j < length; j++) {
    for (let h = 0; h < s.heads; h++) {
      const k = (j * s.heads + h) * keyDim;
      for (let r = 0; r < s.nope; r++) keys[k + r] = kvB(kvBWeight, cache, s, h, r, j);
      keys.set(cache.subarray(j * (s.kvRank + s.rope) + s.kvRank, (j + 1) * (s.kvRank + s.rope)), k + s.nope);
      for (let r = 0; r < s.valueDim; r++) values[(j * s.heads + h) * s.valueDim + r] = kvB(kvBWeight, cache, s, h, s.nope + r, j);
    }
  }
  const shape = { heads: s.heads, kvHeads: s.heads, keyDim, valueDim: s.valueDim, scale: s.scale, window: s.window };
  return Float32Array.from(attendToCache(q, keys, values, positions, shape));
}

/**
 * The absorbed form: q_latent = W_uk_h^T q_nope, attention of [q_latent, q_rope] against the cache
 * rows as one shared key head, with the latent as the value, then W_uv_h on the result.
 */
export function mlaAttendAbsorbed(q: Float32Array, cache: Float32Array, positions: Int32Array, kvBWeight: Float32Array, s: MlaShape): Float32Array {
  const tokens = positions.length;
  const keyDim = s.kvRank + s.rope;
  const absorbed = new Float64Array(tokens * s.heads * keyDim);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < s.heads; h++) {
      const qRow = (t * s.heads + h) * (s.nope + s.rope);
      const out = (t * s.heads + h) * keyDim;
      for (let r = 0; r < s.nope; r++) {
        const w = (h * (s.nope + s.valueDim) + r) * s.kvRank;
        for (let c = 0; c < s.kvRank; c++) absorbed[out + c] += q[qRow + r]! * kvBWeight[w + c]!;
      }
      for (let i = 0; i < s.rope; i++) absorbed[out + s.kvRank + i] = q[qRow + s.nope + i]!;
    }
  }
  const contextRows = cache.length / keyDim;
  const latent = new Float32Array(contextRows * s.kvRank);
  for (let j = 0; j < contextRows; j++) latent.set(cache.subarray(j * keyDim, j * keyDim + s.kvRank), j * s.kvRank);
  const shape = { heads: s.heads, kvHeads: 1, keyDim, valueDim: s.kvRank, scale: s.scale, window: s.window };
  const attended = attendToCache(absorbed, cache, latent, positions, shape);
  const y = new Float32Array(tokens * s.heads * s.valueDim);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < s.heads; h++) {
      const a = (t * s.heads + h) * s.kvRank;
      for (let r = 0; r < s.valueDim; r++) {
        const w = (h * (s.nope + s.valueDim) + s.nope + r) * s.kvRank;
        let sum = 0;
        for (let c = 0; c < s.kvRank; c++) sum += kvBWeight[w + c]! * attended[a + c]!;
        y[(t * s.heads + h) * s.valueDim + r] = sum;
      }
    }
  }
  return y;
}
