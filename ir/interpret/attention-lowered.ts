// Reference semantics of the lowered attention ops (ir/ops-attention.ts): the steps of
// attention.ts's runAttention, one op each, reading cos/sin from the rope_table param as the
// kernels do. Run in order they give the `attention` op's result (pipeline-semantics tests).
import { attendToCache, type AttentionCoreShape } from './attention-core.js';
import { rmsNormGroups, rotate, writeCacheRows, type RotarySlice } from './attention.js';
import { floats, input, ints, numAttr, optionalFloats, type HostTensor, type OpCall, type OpImplementation } from './host-tensor.js';

/** cos and sin [T, dim / 2] of each token's position, from the table variant this call reads. */
function tableRows(call: OpCall, positions: Int32Array, dim: number): { cos: Float32Array; sin: Float32Array } {
  const table = input(call, 'rope_table');
  const [variants, context] = table.shape as [number, number, number];
  const callLength = positions.length ? positions[positions.length - 1]! + 1 : 0;
  const ropeSwitch = numAttr(call, 'rope_switch');
  const variant = variants > 1 && ropeSwitch > 0 && callLength > ropeSwitch ? 1 : 0;
  const half = dim / 2;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  positions.forEach((p, t) => {
    if (p < 0 || p >= context) throw new Error(`position ${p} is outside the rope table (context ${context})`);
    const row = (variant * context + p) * dim;
    cos.set(table.data.subarray(row, row + half), t * half);
    sin.set(table.data.subarray(row + half, row + dim), t * half);
  });
  return { cos, sin };
}

const isF16 = (call: OpCall, name: string): boolean => call.op.inputs[call.semantics.opDefinitions[call.op.opcode]!.inputNames(call.attrs).indexOf(name)]!.type.dtype === 'f16';

function runPrepare(call: OpCall): HostTensor[] {
  const [heads, kvHeads, d] = [numAttr(call, 'heads'), numAttr(call, 'kv_heads'), numAttr(call, 'head_dim')];
  const positions = ints(call, 'positions');
  const tokens = positions.length;
  const q = Float32Array.from(floats(call, 'q'));
  const k = Float32Array.from(floats(call, 'k'));
  const v = Float32Array.from(floats(call, 'v'));
  const qkNorm = call.attrs['qk_norm'];
  if (qkNorm !== 'none') {
    const eps = numAttr(call, 'eps');
    rmsNormGroups(q, qkNorm === 'projection' ? heads * d : d, floats(call, 'q_norm'), eps);
    rmsNormGroups(k, qkNorm === 'projection' ? kvHeads * d : d, floats(call, 'k_norm'), eps);
  }
  const clip = numAttr(call, 'clip');
  if (clip > 0) for (const t of [q, k, v]) t.forEach((value, i) => (t[i] = Math.min(clip, Math.max(-clip, value))));
  const { cos, sin } = tableRows(call, positions, d);
  const slice = (n: number): RotarySlice => ({ rowWidth: n * d, offset: 0, headStride: d, heads: n, dim: d, interleaved: false });
  rotate(q, tokens, slice(heads), cos, sin);
  rotate(k, tokens, slice(kvHeads), cos, sin);
  const cacheK = input(call, 'cache_k');
  const cacheV = input(call, 'cache_v');
  return [
    { shape: [tokens, heads * d], data: q },
    { shape: cacheK.shape, data: writeCacheRows(cacheK, k, positions, isF16(call, 'cache_k')) },
    { shape: cacheV.shape, data: writeCacheRows(cacheV, v, positions, isF16(call, 'cache_v')) },
  ];
}

function runMlaPrepare(call: OpCall): HostTensor[] {
  const [heads, nope, rope, rank] = [numAttr(call, 'heads'), numAttr(call, 'nope'), numAttr(call, 'rope'), numAttr(call, 'kv_rank')];
  const positions = ints(call, 'positions');
  const tokens = positions.length;
  const q = Float32Array.from(floats(call, 'q'));
  const row = Float32Array.from(floats(call, 'kv'));
  const width = rank + rope;
  for (let t = 0; t < tokens; t++) rmsNormGroups(row.subarray(t * width, t * width + rank), rank, floats(call, 'kv_a_norm'), numAttr(call, 'eps'));
  const interleaved = call.attrs['interleaved'] === true;
  const { cos, sin } = tableRows(call, positions, rope);
  rotate(q, tokens, { rowWidth: heads * (nope + rope), offset: nope, headStride: nope + rope, heads, dim: rope, interleaved }, cos, sin);
  rotate(row, tokens, { rowWidth: width, offset: rank, headStride: 0, heads: 1, dim: rope, interleaved }, cos, sin);
  const cache = input(call, 'cache_k');
  return [{ shape: [tokens, heads * (nope + rope)], data: q }, { shape: cache.shape, data: writeCacheRows(cache, row, positions, isF16(call, 'cache_k')) }];
}

function mlaShape(call: OpCall) {
  return { heads: numAttr(call, 'heads'), nope: numAttr(call, 'nope'), rope: numAttr(call, 'rope'), rank: numAttr(call, 'kv_rank'), v: numAttr(call, 'value_dim') };
}

/** q_absorbed[t, h] = [kv_b key rows of h ^T q_nope[t, h], q_rope[t, h]]. */
function runAbsorbQ(call: OpCall): HostTensor[] {
  const { heads, nope, rope, rank, v } = mlaShape(call);
  const q = floats(call, 'q');
  const kvB = floats(call, 'kv_b');
  const tokens = q.length / (heads * (nope + rope));
  const out = new Float32Array(tokens * heads * (rank + rope));
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const qRow = (t * heads + h) * (nope + rope);
      const o = (t * heads + h) * (rank + rope);
      for (let c = 0; c < rank; c++) {
        let sum = 0;
        for (let r = 0; r < nope; r++) sum += q[qRow + r]! * kvB[(h * (nope + v) + r) * rank + c]!;
        out[o + c] = sum;
      }
      out.set(q.subarray(qRow + nope, qRow + nope + rope), o + rank);
    }
  }
  return [{ shape: [tokens, heads * (rank + rope)], data: out }];
}

/** y[t, h] = kv_b value rows of h . attended[t, h]. */
function runUnabsorb(call: OpCall): HostTensor[] {
  const { heads, nope, rank, v } = mlaShape(call);
  const a = floats(call, 'attended');
  const kvB = floats(call, 'kv_b');
  const tokens = a.length / (heads * rank);
  const out = new Float32Array(tokens * heads * v);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      for (let r = 0; r < v; r++) {
        const w = (h * (nope + v) + nope + r) * rank;
        let sum = 0;
        for (let c = 0; c < rank; c++) sum += kvB[w + c]! * a[(t * heads + h) * rank + c]!;
        out[(t * heads + h) * v + r] = sum;
      }
    }
  }
  return [{ shape: [tokens, heads * v], data: out }];
}

function coreShape(call: OpCall): AttentionCoreShape {
  return { heads: numAttr(call, 'heads'), kvHeads: numAttr(call, 'kv_heads'), keyDim: numAttr(call, 'key_dim'), valueDim: numAttr(call, 'value_dim'), scale: numAttr(call, 'scale'), window: numAttr(call, 'window') };
}

/** The value rows: cache_v, or (MLA) the first value_dim columns of each key row. */
function valueRows(call: OpCall, shape: AttentionCoreShape): Float32Array {
  if (call.attrs['values_in_keys'] !== true) return floats(call, 'cache_v');
  const keys = floats(call, 'cache_k');
  const rows = keys.length / shape.keyDim;
  const values = new Float32Array(rows * shape.valueDim);
  for (let j = 0; j < rows; j++) values.set(keys.subarray(j * shape.keyDim, j * shape.keyDim + shape.valueDim), j * shape.valueDim);
  return values;
}

function runAttend(call: OpCall): HostTensor[] {
  const shape = coreShape(call);
  const positions = ints(call, 'positions');
  const y = attendToCache(floats(call, 'q'), floats(call, 'cache_k'), valueRows(call, shape), positions, shape, optionalFloats(call, 'sinks'));
  return [{ shape: [positions.length, shape.heads * shape.valueDim], data: Float32Array.from(y) }];
}

/**
 * Per (row, head, chunk): (max, sum of exp(l - max)) over the chunk's visible keys (scaled
 * logits), and the exp-weighted value sum; (-inf, 0) and zeros for a chunk the row does not see.
 */
function runDecodePartials(call: OpCall): HostTensor[] {
  const shape = coreShape(call);
  const positions = ints(call, 'positions');
  const q = floats(call, 'q');
  const keys = floats(call, 'cache_k');
  const values = valueRows(call, shape);
  const chunkKeys = numAttr(call, 'chunk_keys');
  const chunks = Math.ceil(input(call, 'cache_k').shape[0]! / chunkKeys);
  const { heads, kvHeads, keyDim, valueDim, scale, window } = shape;
  const stats = new Float32Array(positions.length * heads * chunks * 2);
  const acc = new Float32Array(positions.length * heads * chunks * valueDim);
  positions.forEach((pos, t) => {
    const first = window > 0 ? Math.max(0, pos - window + 1) : 0;
    for (let h = 0; h < heads; h++) {
      const kv = Math.floor(h / (heads / kvHeads));
      for (let c = 0; c < chunks; c++) {
        const slot = (t * heads + h) * chunks + c;
        const [begin, end] = [Math.max(first, c * chunkKeys), Math.min(pos + 1, (c + 1) * chunkKeys)];
        let max = -Infinity;
        const logits: number[] = [];
        for (let j = begin; j < end; j++) {
          let dot = 0;
          for (let i = 0; i < keyDim; i++) dot += q[(t * heads + h) * keyDim + i]! * keys[(j * kvHeads + kv) * keyDim + i]!;
          logits.push(dot * scale);
          max = Math.max(max, dot * scale);
        }
        let sum = 0;
        const sums = new Float64Array(valueDim);
        logits.forEach((l, n) => {
          const p = Math.exp(l - max);
          sum += p;
          for (let i = 0; i < valueDim; i++) sums[i] += p * values[((begin + n) * kvHeads + kv) * valueDim + i]!;
        });
        stats[slot * 2] = max;
        stats[slot * 2 + 1] = sum;
        acc.set(sums, slot * valueDim);
      }
    }
  });
  const tokens = positions.length;
  return [{ shape: [tokens, heads * chunks * 2], data: stats }, { shape: [tokens, heads * chunks * valueDim], data: acc }];
}

function runDecodeMerge(call: OpCall): HostTensor[] {
  const [heads, valueDim, chunks] = [numAttr(call, 'heads'), numAttr(call, 'value_dim'), numAttr(call, 'chunks')];
  const stats = floats(call, 'partial_stats');
  const acc = floats(call, 'partial_acc');
  const sinks = optionalFloats(call, 'sinks');
  const tokens = ints(call, 'positions').length;
  const out = new Float32Array(tokens * heads * valueDim);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * chunks;
      let max = sinks ? sinks[h]! : -Infinity;
      for (let c = 0; c < chunks; c++) if (stats[(base + c) * 2 + 1]! > 0) max = Math.max(max, stats[(base + c) * 2]!);
      let sum = sinks ? Math.exp(sinks[h]! - max) : 0;
      const values = new Float64Array(valueDim);
      for (let c = 0; c < chunks; c++) {
        if (!(stats[(base + c) * 2 + 1]! > 0)) continue;
        const w = Math.exp(stats[(base + c) * 2]! - max);
        sum += w * stats[(base + c) * 2 + 1]!;
        for (let i = 0; i < valueDim; i++) values[i] += w * acc[(base + c) * valueDim + i]!;
      }
      for (let i = 0; i < valueDim; i++) out[(t * heads + h) * valueDim + i] = values[i]! / sum;
    }
  }
  return [{ shape: [tokens, heads * valueDim], data: out }];
}

export const attentionImplementations: Readonly<Record<string, OpImplementation>> = {
  'attention.prepare': runPrepare,
  'mla.prepare': runMlaPrepare,
  'mla.absorb_q': runAbsorbQ,
  'mla.unabsorb': runUnabsorb,
  'attention.attend': runAttend,
  'attention.decode_partials': runDecodePartials,
  'attention.decode_merge': runDecodeMerge,
};
