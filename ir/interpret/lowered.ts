// Reference semantics of the lowered (kernel-level) ops, written the plainest way: each computes
// what its kernel writes, with the same storage points (f32 rows between ops, float64 sums inside
// one), so a block gives bit-identical results before and after lowering. Bookkeeping (moe.align)
// follows the kernel's layout, with one canonical order: slots ascending inside each expert.
import { epilogueOf, expertRange, extrasOf, tileOf } from '../ops-lowered.js';
import { runRoundApply, runRoundDecide } from './rounding-ops.js';
import { runGroupedGemmWithShared } from './shared-grouped.js';
import { runDecodeDownCombine, runDecodeGateUp } from './decode-fused.js';
import { dot, sigmoid } from './math.js';
import { gatedActivation } from './activations.js';
import { dim, floats, input, ints, kindAttr, numAttr, optionalFloats, type HostTensor, type OpCall } from './host-tensor.js';
import { downRow, expertSlice, gateUpRow, type MlpWeights } from './mlp.js';

const u32Tensor = (shape: number[], values: ArrayLike<number>): HostTensor => ({ shape, data: Int32Array.from(values) });

/** Expert of each padded row and the shard bookkeeping, as moe.align lays them out. */
export function runAlign(call: OpCall): HostTensor[] {
  const ids = ints(call, 'ids');
  const [E, K, BM] = [numAttr(call, 'experts'), numAttr(call, 'top_k'), numAttr(call, 'block_rows')];
  const shards = call.attrs['shard_begins'] as number[];
  const tokens = dim(call, 'ids', 0);
  // Slot s < K T routes token s / K; slot K T + j is token rounding's extra pair j; with the shared
  // expert grouped in, slot K T + X + t is token t's row of the shared expert, virtual expert E.
  const extraIds = call.inputs['extra_ids'] ? ints(call, 'extra_ids') : new Int32Array(0);
  const X = extraIds.length / 2;
  const shared = call.attrs['shared_expert'] === true ? 1 : 0;
  const experts = E + shared;
  const expertOf = (slot: number) => {
    if (slot < ids.length) return ids[slot]!;
    if (slot >= ids.length + X) return E;
    const j = slot - ids.length;
    return extraIds[2 * j]! < 0 ? -1 : extraIds[2 * j + 1]!;
  };
  const slots = ids.length + X + shared * tokens;
  const counts = new Array<number>(experts).fill(0);
  for (let s = 0; s < slots; s++) if (expertOf(s) >= 0 && expertOf(s) < experts) counts[expertOf(s)]!++;
  const offsets = [0];
  for (let e = 0; e < experts; e++) offsets.push(offsets[e]! + Math.ceil(counts[e]! / BM) * BM);
  const rows = (K + shared) * tokens + X + experts * (BM - 1);
  const sorted = new Int32Array(rows).fill(-1);
  const cursor = offsets.slice(0, experts);
  for (let slot = 0; slot < slots; slot++) {
    const e = expertOf(slot);
    if (e >= 0 && e < experts) sorted[cursor[e]!++] = slot;
  }
  const metaLength = Math.ceil((rows + shards.length * BM) / BM);
  const meta = new Array<number>(metaLength).fill(0);
  for (let e = 0; e < experts; e++) for (let b = offsets[e]! / BM; b < offsets[e + 1]! / BM; b++) meta[shards.length + b] = e;
  const args: number[] = [];
  shards.forEach((begin, s) => {
    const first = offsets[begin]! / BM;
    meta[s] = first;
    const blocks = offsets[shards[s + 1] ?? experts]! / BM - first;
    args.push(numAttr(call, 'gate_up_tiles'), blocks, 1, numAttr(call, 'down_tiles'), blocks, 1);
  });
  return [{ shape: [rows], data: sorted }, u32Tensor([metaLength], meta), u32Tensor([args.length], args)];
}

/** A matrix op's w0/w1/b0/b1 as an MLP's gate/up (and biases), or its down (and bias). */
function matrixWeights(call: OpCall, gateup: boolean): MlpWeights {
  const none = new Float32Array(0);
  return gateup
    ? { gate: floats(call, 'w0'), up: floats(call, 'w1'), down: none, gateBias: optionalFloats(call, 'b0'), upBias: optionalFloats(call, 'b1') }
    : { gate: none, up: none, down: floats(call, 'w0'), downBias: optionalFloats(call, 'b0') };
}

/** The weights of expert `e` of the op's shard (w0 = gate or down, w1 = up), as one MLP's. */
function shardWeights(call: OpCall): (e: number) => MlpWeights {
  const [begin] = expertRange(call.attrs);
  const gateup = epilogueOf(call.attrs) === 'activation';
  const w0 = input(call, 'w0');
  const [n, k] = [w0.shape[1]!, w0.shape[2]!];
  const stacked = matrixWeights(call, gateup);
  // expertSlice takes (hidden, intermediate): gate/up are [I = n, H = k], down is [H = n, I = k].
  return (e) => (gateup ? expertSlice(stacked, e - begin, k, n) : expertSlice(stacked, e - begin, n, k));
}

/** The op's output, starting from its `init` (the previous shard's rows) or zeros. */
function destination(call: OpCall, rows: number, width: number): Float32Array {
  const init = call.inputs['init'];
  return init ? Float32Array.from(init.data) : new Float32Array(rows * width);
}

/** Row `row` (of n) of the output: act(gate, up) of activation row `aRow`, or weight * (down a + bias). */
function writeRow(call: OpCall, out: Float32Array, n: number, row: number, aRow: number, weights: MlpWeights, weight: number): void {
  const a = floats(call, 'a');
  const width = dim(call, 'a', 1);
  if (epilogueOf(call.attrs) === 'activation') {
    out.set(gateUpRow(a, aRow * width, width, n, weights, gatedActivation(kindAttr(call, 'activation'), call.semantics.activations)), row * n);
  } else {
    out.set(downRow(a, aRow * width, n, width, weights, weight), row * n);
  }
}

export function runGroupedGemm(call: OpCall): HostTensor[] {
  if (call.attrs['shared'] === true) return runGroupedGemmWithShared(call);
  const slots = ints(call, 'sorted_slots');
  const meta = ints(call, 'route_meta');
  const [begin, end] = expertRange(call.attrs);
  const K = numAttr(call, 'top_k');
  const BM = tileOf(call.attrs).bm;
  const E = numAttr(call, 'experts');
  const X = extrasOf(call.attrs);
  const tokens = Math.round((slots.length - X - E * (BM - 1)) / K);
  const shards = meta.length - Math.ceil(slots.length / BM);
  const gateup = epilogueOf(call.attrs) === 'activation';
  const n = input(call, 'w0').shape[1]!;
  const rows = gateup ? slots.length : tokens * K + X;
  // An extra slot K T + j: its token from extra_ids (gate/up), its weight from extra_weights (down).
  const extraIds = call.inputs['extra_ids'] ? ints(call, 'extra_ids') : undefined;
  const extraWeights = call.inputs['extra_weights'] ? floats(call, 'extra_weights') : undefined;
  const tokenOf = (slot: number) => (slot < tokens * K ? Math.floor(slot / K) : extraIds![2 * (slot - tokens * K)]!);
  const weightOf = (slot: number) => (slot < tokens * K ? weights![slot]! : extraWeights![slot - tokens * K]!);
  const out = destination(call, rows, n);
  const weights = gateup ? undefined : floats(call, 'routing_weights');
  const weightsOf = shardWeights(call);
  for (let p = 0; p < slots.length; p++) {
    const slot = slots[p]!;
    const e = meta[shards + Math.floor(p / BM)]!;
    if (slot < 0 || e < begin || e >= end) continue;
    if (gateup) writeRow(call, out, n, p, tokenOf(slot), weightsOf(e), 1);
    else writeRow(call, out, n, slot, p, weightsOf(e), weightOf(slot));
  }
  return [{ shape: [rows, n], data: out }];
}

export function runExpertGemv(call: OpCall): HostTensor[] {
  const ids = ints(call, 'route_ids');
  const [begin, end] = expertRange(call.attrs);
  const K = numAttr(call, 'top_k');
  const gateup = epilogueOf(call.attrs) === 'activation';
  const n = input(call, 'w0').shape[1]!;
  const out = destination(call, ids.length, n);
  const weights = gateup ? undefined : floats(call, 'routing_weights');
  const weightsOf = shardWeights(call);
  ids.forEach((e, slot) => {
    if (e < begin || e >= end) return;
    writeRow(call, out, n, slot, gateup ? Math.floor(slot / K) : slot, weightsOf(e), weights?.[slot] ?? 1);
  });
  return [{ shape: [ids.length, n], data: out }];
}

/** Dense gemm / gemv: every token through one MLP half. */
export function runDenseMatrix(call: OpCall): HostTensor[] {
  const gateup = epilogueOf(call.attrs) === 'activation';
  const tokens = dim(call, 'a', 0);
  const n = input(call, 'w0').shape[0]!;
  const weights = matrixWeights(call, gateup);
  const out = new Float32Array(tokens * n);
  for (let t = 0; t < tokens; t++) writeRow(call, out, n, t, t, weights, 1);
  return [{ shape: [tokens, n], data: out }];
}

export function runCombine(call: OpCall): HostTensor[] {
  const ids = ints(call, 'route_ids');
  const slotOut = floats(call, 'slot_out');
  const K = numAttr(call, 'top_k');
  const tokens = dim(call, 'route_ids', 0);
  const hidden = dim(call, 'slot_out', 1);
  // The shared expert's row of token t: its own buffer, or slot_out row K T + X + t when grouped in.
  const sharedInSlots = call.attrs['shared_in_slots'] === true;
  const sharedRow = (t: number) => (tokens * K + extrasOf(call.attrs) + t) * hidden;
  const shared = call.inputs['shared_out'] ? floats(call, 'shared_out') : sharedInSlots ? slotOut : undefined;
  const x = call.inputs['x'] ? floats(call, 'x') : undefined;
  const gateWeight = optionalFloats(call, 'shared_gate_weight');
  const extraIds = call.inputs['extra_ids'] ? ints(call, 'extra_ids') : new Int32Array(0);
  const out = new Float32Array(tokens * hidden);
  for (let t = 0; t < tokens; t++) {
    const gate = gateWeight ? sigmoid(dot(x!, t * hidden, gateWeight, 0, hidden)) : 1;
    // Token rounding's added pairs of this token, in entry order, after its k slots.
    const extraRows: number[] = [];
    for (let j = 0; j < extraIds.length / 2; j++) if (extraIds[2 * j] === t) extraRows.push(tokens * K + j);
    for (let h = 0; h < hidden; h++) {
      let routed = 0;
      for (let k = 0; k < K; k++) if (ids[t * K + k]! >= 0) routed += slotOut[(t * K + k) * hidden + h]!;
      for (const row of extraRows) routed += slotOut[row * hidden + h]!;
      // The unlowered block adds two f32 values: the routed sum and the (gated) shared row.
      const sharedTerm = shared ? Math.fround(gate * shared[(sharedInSlots ? sharedRow(t) : t * hidden) + h]!) : 0;
      out[t * hidden + h] = shared ? Math.fround(routed) + sharedTerm : routed;
    }
  }
  return [{ shape: [tokens, hidden], data: out }];
}

export function runSliceRows(call: OpCall): HostTensor[] {
  const w = input(call, 'w');
  const [begin, end] = [numAttr(call, 'begin'), numAttr(call, 'end')];
  const row = w.shape.slice(1).reduce((a, b) => a * b, 1);
  return [{ shape: [end - begin, ...w.shape.slice(1)], data: w.data.slice(begin * row, end * row) }];
}

export function runPermuteRows(call: OpCall): HostTensor[] {
  const w = input(call, 'w');
  const order = call.attrs['order'] as number[];
  const row = w.shape.slice(1).reduce((a, b) => a * b, 1);
  const data = new Float32Array(w.data.length);
  order.forEach((from, to) => data.set(w.data.subarray(from * row, (from + 1) * row), to * row));
  return [{ shape: [...w.shape], data }];
}

/** The interpreter holds every weight as its dequantized f32 values already. */
export const runDequantize = (call: OpCall): HostTensor[] => [input(call, 'w')];

export const loweredImplementations: Record<string, (call: OpCall) => HostTensor[]> = {
  'moe.align': runAlign,
  'moe.grouped_gemm': runGroupedGemm,
  'moe.expert_gemv': runExpertGemv,
  'moe.combine': runCombine,
  gemm: runDenseMatrix,
  gemv: runDenseMatrix,
  'moe.round_decide': runRoundDecide,
  'moe.round_apply': runRoundApply,
  'moe.decode_gate_up': runDecodeGateUp,
  'moe.decode_down_combine': runDecodeDownCombine,
  slice_rows: runSliceRows,
  permute_rows: runPermuteRows,
  dequantize: runDequantize,
};

