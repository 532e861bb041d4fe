// Reference semantics of the fused decode ops: the same rows, rounded at the same points, as the
// unfused chain they replace (expert GEMVs, dense GEMVs, combine), so fuse-decode is bit-identical.
import { dot, sigmoid } from './math.js';
import { gatedActivation } from './activations.js';
import { dim, floats, input, ints, kindAttr, numAttr, optionalFloats, type HostTensor, type OpCall } from './host-tensor.js';
import { downRow, expertSlice, gateUpRow, type MlpWeights } from './mlp.js';

const none = new Float32Array(0);

/** Routed (stacked) or shared weights of the fused ops, by their binding-style names. */
function weightsOf(call: OpCall, prefix: 'w' | 'ws', bias: 'b' | 'bs'): MlpWeights {
  const opt = (name: string) => (call.inputs[name] ? floats(call, name) : none);
  return {
    gate: opt(`${prefix}_gate`), up: opt(`${prefix}_up`), down: opt(`${prefix}_down`),
    gateBias: optionalFloats(call, `${bias}_gate`), upBias: optionalFloats(call, `${bias}_up`), downBias: optionalFloats(call, `${bias}_down`),
  };
}

/** Expert e's routed weights: in the first shard's bindings, or (e >= routed_shards[1]) the second's (w_gate1, ...). */
function routedExpert(call: OpCall, hidden: number, intermediate: number): (e: number) => MlpWeights {
  const first = weightsOf(call, 'w', 'b');
  const split = (call.attrs['routed_shards'] as number[] | undefined)?.[1];
  if (split === undefined) return (e) => expertSlice(first, e, hidden, intermediate);
  const opt = (name: string) => (call.inputs[name] ? floats(call, name) : none);
  const second: MlpWeights = { gate: opt('w_gate1'), up: opt('w_up1'), down: opt('w_down1') };
  return (e) => (e < split ? expertSlice(first, e, hidden, intermediate) : expertSlice(second, e - split, hidden, intermediate));
}

export function runDecodeGateUp(call: OpCall): HostTensor[] {
  const x = floats(call, 'x');
  const ids = ints(call, 'route_ids');
  const [tokens, hidden] = [dim(call, 'x', 0), dim(call, 'x', 1)];
  const K = numAttr(call, 'top_k');
  const I = input(call, 'w_gate').shape[1]!;
  const Is = call.inputs['ws_gate'] ? input(call, 'ws_gate').shape[0]! : 0;
  const width = K * I + Is;
  const routed = routedExpert(call, hidden, I);
  const act = gatedActivation(kindAttr(call, 'activation'), call.semantics.activations);
  const out = new Float32Array(tokens * width);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < K; k++) {
      const e = ids[t * K + k]!;
      if (e >= 0) out.set(gateUpRow(x, t * hidden, hidden, I, routed(e), act), t * width + k * I);
    }
    if (Is) out.set(gateUpRow(x, t * hidden, hidden, Is, weightsOf(call, 'ws', 'bs'), gatedActivation(kindAttr(call, 'shared_activation'), call.semantics.activations)), t * width + K * I);
  }
  return [{ shape: [tokens, width], data: out }];
}

export function runDecodeDownCombine(call: OpCall): HostTensor[] {
  const ids = ints(call, 'route_ids');
  const routingWeights = floats(call, 'routing_weights');
  const inter = floats(call, 'inter');
  const [first, H, I] = input(call, 'w_down').shape as [number, number, number];
  const E = first + (call.inputs['w_down1'] ? input(call, 'w_down1').shape[0]! : 0);
  const K = numAttr(call, 'top_k');
  const tokens = dim(call, 'inter', 0);
  const width = dim(call, 'inter', 1);
  const Is = width - K * I;
  const routed = routedExpert(call, H, I);
  const gateWeight = optionalFloats(call, 'shared_gate_weight');
  const x = gateWeight ? floats(call, 'x') : undefined;
  const out = new Float32Array(tokens * H);
  for (let t = 0; t < tokens; t++) {
    const routedSum = new Float64Array(H);
    for (let k = 0; k < K; k++) {
      const e = ids[t * K + k]!;
      if (e < 0 || e >= E) continue;
      // Each slot row is stored as f32 before the sum, as the unfused down GEMV stores it.
      const row = Float32Array.from(downRow(inter, t * width + k * I, H, I, routed(e), routingWeights[t * K + k]!));
      row.forEach((v, h) => (routedSum[h] += v));
    }
    const shared = Is ? Float32Array.from(downRow(inter, t * width + K * I, H, Is, weightsOf(call, 'ws', 'bs'))) : undefined;
    const gate = gateWeight ? sigmoid(dot(x!, t * H, gateWeight, 0, H)) : 1;
    for (let h = 0; h < H; h++) {
      out[t * H + h] = shared ? Math.fround(routedSum[h]!) + Math.fround(gate * shared[h]!) : routedSum[h]!;
    }
  }
  return [{ shape: [tokens, H], data: out }];
}
