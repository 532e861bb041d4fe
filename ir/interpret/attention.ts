// `attention`: one layer's self-attention as the Hugging Face modeling code computes it (GQA with
// its family variants, DeepSeek's MLA), writing the new tokens into the layer's KV cache and
// attending over it. Projections accumulate in float64 and are stored as f32, as the kernels do.
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import { ropeCosSin, ropeFrequencies } from '../../runtime/rope-table.js';
import { numParam, type KindRef } from '../model-config.js';
import { attendToCache } from './attention-core.js';
import { floats, ints, kindAttr, numAttr, optionalFloats, type HostTensor, type OpCall } from './host-tensor.js';
import { dot } from './math.js';
import { mlaAttend, mlaSoftmaxScale } from './mla.js';

/** y = x W^T (+ b) for `tokens` rows, W [outDim, inDim]; float64 sums stored as f32. */
export function projectRows(x: ArrayLike<number>, tokens: number, inDim: number, w: Float32Array, outDim: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(tokens * outDim);
  for (let t = 0; t < tokens; t++) {
    for (let o = 0; o < outDim; o++) y[t * outDim + o] = dot(x, t * inDim, w, o * inDim, inDim) + (bias ? bias[o]! : 0);
  }
  return y;
}

/** RMSNorm over each `group`-wide slice of every row (a head, or the whole row), in place. */
export function rmsNormGroups(x: Float32Array, group: number, weight: Float32Array, eps: number): void {
  for (let start = 0; start < x.length; start += group) {
    let sum = 0;
    for (let i = 0; i < group; i++) sum += x[start + i]! * x[start + i]!;
    const r = 1 / Math.sqrt(sum / group + eps);
    for (let i = 0; i < group; i++) x[start + i] = x[start + i]! * r * weight[i % weight.length]!;
  }
}

export interface RotarySlice {
  /** Width of one row of `rows`. */
  rowWidth: number;
  /** Where the rotary part of head h starts: offset + h * headStride. */
  offset: number;
  headStride: number;
  heads: number;
  /** Rotated width (even). */
  dim: number;
  /** Pairs (2i, 2i + 1) instead of halves (i, i + dim / 2). */
  interleaved: boolean;
}

/**
 * Rotates each head's rotary slice by its token's cos/sin ([T, dim / 2]): halves as rotate_half
 * does (Llama-style models), or interleaved pairs (DeepSeek with rope_interleave). transformers'
 * interleaved form de-interleaves q and k first (apply_rotary_pos_emb_interleave); rotating pairs
 * in place gives the same q . k, and the cache keeps this layout.
 */
export function rotate(rows: Float32Array, tokens: number, s: RotarySlice, cos: Float32Array, sin: Float32Array): void {
  const half = s.dim / 2;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < s.heads; h++) {
      const base = t * s.rowWidth + s.offset + h * s.headStride;
      for (let i = 0; i < half; i++) {
        const [a, b] = s.interleaved ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + half];
        const c = cos[t * half + i]!;
        const n = sin[t * half + i]!;
        const x1 = rows[a]!;
        const x2 = rows[b]!;
        rows[a] = x1 * c - x2 * n;
        rows[b] = x2 * c + x1 * n;
      }
    }
  }
}

/** cos/sin for the call's positions; the call's length (last position + 1) picks LongRoPE's factors. */
export function ropeTables(rope: KindRef, theta: number, dim: number, positions: Int32Array): { cos: Float32Array; sin: Float32Array } {
  const callLength = positions.length ? positions[positions.length - 1]! + 1 : 0;
  return ropeCosSin(ropeFrequencies({ kind: rope.kind, params: rope.params, theta, dim }, callLength), positions);
}

/** A copy of `cache` with `rows` ([T, width]) written at `positions`, rounded to f16 for an f16 cache. */
export function writeCacheRows(cache: HostTensor, rows: Float32Array, positions: Int32Array, f16: boolean): Float32Array {
  const [context, width] = cache.shape as [number, number];
  const out = Float32Array.from(cache.data);
  const stored = f16 ? float16BitsToFloat32(float32ToFloat16Bits(rows)) : rows;
  positions.forEach((p, t) => {
    if (p < 0 || p >= context) throw new Error(`position ${p} is outside the KV cache (context ${context})`);
    out.set(stored.subarray(t * width, (t + 1) * width), p * width);
  });
  return out;
}

export function runAttention(call: OpCall): HostTensor[] {
  const attention = kindAttr(call, 'attention');
  return attention.kind === 'mla' ? runMla(call, attention) : runGqa(call, attention);
}

function cacheIsF16(call: OpCall, index: number): boolean {
  return call.op.inputs[2 + index]!.type.dtype === 'f16';
}

function runGqa(call: OpCall, a: KindRef): HostTensor[] {
  const [heads, kvHeads, d] = [numParam(a, 'heads'), numParam(a, 'kv_heads'), numParam(a, 'head_dim')];
  const x = floats(call, 'x');
  const positions = ints(call, 'positions');
  const tokens = positions.length;
  const hidden = x.length / tokens;
  const q = projectRows(x, tokens, hidden, floats(call, 'q'), heads * d, optionalFloats(call, 'q_bias'));
  const k = projectRows(x, tokens, hidden, floats(call, 'k'), kvHeads * d, optionalFloats(call, 'k_bias'));
  const v = projectRows(x, tokens, hidden, floats(call, 'v'), kvHeads * d, optionalFloats(call, 'v_bias'));
  if (a.params['qk_norm'] === true) {
    const eps = numParam(kindAttr(call, 'norm'), 'eps');
    // OLMoE normalises the whole projections before the head split (modeling_olmoe.py); Qwen3-MoE each head after it (modeling_qwen3_moe.py).
    const whole = a.params['qk_norm_span'] === 'projection';
    rmsNormGroups(q, whole ? heads * d : d, floats(call, 'q_norm'), eps);
    rmsNormGroups(k, whole ? kvHeads * d : d, floats(call, 'k_norm'), eps);
  }
  const clip = a.params['clip_qkv'];
  if (typeof clip === 'number' && clip > 0) for (const t of [q, k, v]) t.forEach((value, i) => (t[i] = Math.min(clip, Math.max(-clip, value))));
  const { cos, sin } = ropeTables(kindAttr(call, 'rope'), numParam(a, 'rope_theta'), d, positions);
  rotate(q, tokens, { rowWidth: heads * d, offset: 0, headStride: d, heads, dim: d, interleaved: false }, cos, sin);
  rotate(k, tokens, { rowWidth: kvHeads * d, offset: 0, headStride: d, heads: kvHeads, dim: d, interleaved: false }, cos, sin);
  const cacheK = writeCacheRows(call.inputs['cache_k']!, k, positions, cacheIsF16(call, 0));
  const cacheV = writeCacheRows(call.inputs['cache_v']!, v, positions, cacheIsF16(call, 1));
  const shape = { heads, kvHeads, keyDim: d, valueDim: d, scale: 1 / Math.sqrt(d), window: numAttr(call, 'window') };
  const attended = Float32Array.from(attendToCache(q, cacheK, cacheV, positions, shape, optionalFloats(call, 'sinks')));
  const y = projectRows(attended, tokens, heads * d, floats(call, 'o'), hidden, optionalFloats(call, 'o_bias'));
  const cacheShape = call.inputs['cache_k']!.shape;
  return [{ shape: [tokens, hidden], data: y }, { shape: cacheShape, data: cacheK }, { shape: cacheShape, data: cacheV }];
}

function runMla(call: OpCall, a: KindRef): HostTensor[] {
  const heads = numParam(a, 'heads');
  const [nope, rope, kvRank] = [numParam(a, 'qk_nope_head_dim'), numParam(a, 'qk_rope_head_dim'), numParam(a, 'kv_lora_rank')];
  const eps = numParam(a, 'latent_norm_eps');
  const x = floats(call, 'x');
  const positions = ints(call, 'positions');
  const tokens = positions.length;
  const hidden = x.length / tokens;
  const qWidth = heads * (nope + rope);
  let q: Float32Array;
  if (numParam(a, 'q_lora_rank') > 0) {
    const qRank = numParam(a, 'q_lora_rank');
    const latentQ = projectRows(x, tokens, hidden, floats(call, 'q_a'), qRank);
    rmsNormGroups(latentQ, qRank, floats(call, 'q_a_norm'), eps);
    q = projectRows(latentQ, tokens, qRank, floats(call, 'q_b'), qWidth);
  } else {
    q = projectRows(x, tokens, hidden, floats(call, 'q'), qWidth);
  }
  // One cache row per token: the normed latent, then the shared rope key (not normed).
  const row = projectRows(x, tokens, hidden, floats(call, 'kv_a'), kvRank + rope);
  for (let t = 0; t < tokens; t++) rmsNormGroups(row.subarray(t * (kvRank + rope), t * (kvRank + rope) + kvRank), kvRank, floats(call, 'kv_a_norm'), eps);
  const interleaved = a.params['rope_interleave'] !== false;
  const { cos, sin } = ropeTables(kindAttr(call, 'rope'), numParam(a, 'rope_theta'), rope, positions);
  rotate(q, tokens, { rowWidth: qWidth, offset: nope, headStride: nope + rope, heads, dim: rope, interleaved }, cos, sin);
  rotate(row, tokens, { rowWidth: kvRank + rope, offset: kvRank, headStride: 0, heads: 1, dim: rope, interleaved }, cos, sin);
  const cache = writeCacheRows(call.inputs['cache_k']!, row, positions, cacheIsF16(call, 0));
  const shape = { heads, nope, rope, kvRank, valueDim: numParam(a, 'v_head_dim'), scale: mlaSoftmaxScale(a, kindAttr(call, 'rope')), window: numAttr(call, 'window') };
  const attended = mlaAttend(q, cache, positions, floats(call, 'kv_b'), shape);
  const y = projectRows(attended, tokens, heads * shape.valueDim, floats(call, 'o'), hidden);
  return [{ shape: [tokens, hidden], data: y }, { shape: call.inputs['cache_k']!.shape, data: cache }];
}
