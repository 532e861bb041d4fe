// Reference semantics of a grouped GEMM with the shared expert as virtual expert E (passes/
// group-shared-expert.ts): the routed rows exactly as without it, plus token t's shared row, in the
// flat layout ir/ops-lowered.ts describes. Rows are stored as f32 at the same points as the dense
// GEMMs they replace, so grouping the shared expert in is bit-identical.
import { epilogueOf, extrasOf, tileOf } from '../ops-lowered.js';
import { gatedActivation } from './activations.js';
import { floats, input, ints, kindAttr, numAttr, optionalFloats, type HostTensor, type OpCall } from './host-tensor.js';
import { downRow, expertSlice, gateUpRow, type MlpWeights } from './mlp.js';

const none = new Float32Array(0);

export function runGroupedGemmWithShared(call: OpCall): HostTensor[] {
  const slots = ints(call, 'sorted_slots');
  const meta = ints(call, 'route_meta');
  const [K, E, X, BM] = [numAttr(call, 'top_k'), numAttr(call, 'experts'), extrasOf(call.attrs), tileOf(call.attrs).bm];
  const T = Math.round((slots.length - X - (E + 1) * (BM - 1)) / (K + 1));
  const shards = meta.length - Math.ceil(slots.length / BM);
  const w0 = input(call, 'w0');
  const extraIds = call.inputs['extra_ids'] ? ints(call, 'extra_ids') : undefined;
  const extraWeights = call.inputs['extra_weights'] ? floats(call, 'extra_weights') : undefined;
  const gateup = epilogueOf(call.attrs) === 'activation';
  /** Each sorted row p that holds a slot, with its expert (E: the shared expert). */
  const eachRow = (visit: (p: number, slot: number, e: number) => void) => {
    for (let p = 0; p < slots.length; p++) if (slots[p]! >= 0) visit(p, slots[p]!, meta[shards + Math.floor(p / BM)]!);
  };
  if (gateup) {
    const [I, H] = [w0.shape[1]!, w0.shape[2]!];
    const Is = input(call, 'ws0').shape[0]!;
    const x = floats(call, 'a');
    const act = gatedActivation(kindAttr(call, 'activation'), call.semantics.activations);
    const routed: MlpWeights = { gate: floats(call, 'w0'), up: floats(call, 'w1'), down: none, gateBias: optionalFloats(call, 'b0'), upBias: optionalFloats(call, 'b1') };
    const shared: MlpWeights = { gate: floats(call, 'ws0'), up: floats(call, 'ws1'), down: none };
    const sharedBase = (K * T + X + E * (BM - 1)) * I;
    const out = new Float32Array(T * (K * I + Is) + (X + E * (BM - 1)) * I);
    eachRow((p, slot, e) => {
      if (e === E) {
        const t = slot - K * T - X;
        out.set(gateUpRow(x, t * H, H, Is, shared, act), sharedBase + t * Is);
      } else {
        const t = slot < K * T ? Math.floor(slot / K) : extraIds![2 * (slot - K * T)]!;
        out.set(gateUpRow(x, t * H, H, I, expertSlice(routed, e, H, I), act), p * I);
      }
    });
    return [{ shape: [out.length], data: out }];
  }
  const [H, I] = [w0.shape[1]!, w0.shape[2]!];
  const Is = input(call, 'ws0').shape[1]!;
  const a = floats(call, 'a');
  const weights = floats(call, 'routing_weights');
  const routed: MlpWeights = { gate: none, up: none, down: floats(call, 'w0'), downBias: optionalFloats(call, 'b0') };
  const shared: MlpWeights = { gate: none, up: none, down: floats(call, 'ws0') };
  const sharedBase = (K * T + X + E * (BM - 1)) * I;
  const out = new Float32Array(((K + 1) * T + X) * H);
  eachRow((p, slot, e) => {
    if (e === E) {
      const t = slot - K * T - X;
      out.set(downRow(a, sharedBase + t * Is, H, Is, shared), slot * H);
    } else {
      const weight = slot < K * T ? weights[slot]! : extraWeights![slot - K * T]!;
      out.set(downRow(a, p * I, H, I, expertSlice(routed, e, H, I), weight), slot * H);
    }
  });
  return [{ shape: [(K + 1) * T + X, H], data: out }];
}
