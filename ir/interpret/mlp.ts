// Gated MLPs: the dense/shared `mlp` op and the routed `moe.experts` op share one
// float64 forward of a single row through a single expert's weights.
import { boolParam, numParam } from '../model-config.js';
import { gatedActivation, type GatedActivation } from './activations.js';
import { dim, f32Tensor, floats, ints, kindAttr, numAttr, type HostTensor, type OpCall } from './host-tensor.js';
import { dot } from './math.js';

/** One MLP's weights in the IR layout: gate/up [I, H], down [H, I], biases [I], [I], [H]. */
export interface MlpWeights {
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  gateBias?: Float32Array;
  upBias?: Float32Array;
  downBias?: Float32Array;
}

/**
 * act(gate x + gate_bias, up x + up_bias) for the row x[xOffset .. xOffset + hidden): float64
 * sums, stored as f32 (the intermediate activation between the two matrix kernels).
 */
export function gateUpRow(x: Float32Array, xOffset: number, hidden: number, intermediate: number, w: MlpWeights, act: GatedActivation): Float32Array {
  const a = new Float32Array(intermediate);
  for (let i = 0; i < intermediate; i++) {
    const g = dot(w.gate, i * hidden, x, xOffset, hidden) + (w.gateBias?.[i] ?? 0);
    const u = dot(w.up, i * hidden, x, xOffset, hidden) + (w.upBias?.[i] ?? 0);
    a[i] = act(g, u);
  }
  return a;
}

/** scale (down a + down_bias) in float64 for the intermediate row a[aOffset .. aOffset + intermediate). */
export function downRow(a: Float32Array, aOffset: number, hidden: number, intermediate: number, w: MlpWeights, scale = 1): Float64Array {
  const y = new Float64Array(hidden);
  for (let h = 0; h < hidden; h++) y[h] = scale * (dot(w.down, h * intermediate, a, aOffset, intermediate) + (w.downBias?.[h] ?? 0));
  return y;
}

/** down(act(gate x + gate_bias, up x + up_bias)) + down_bias, the intermediate stored as f32 as the lowered ops store it. */
function gatedMlpRow(x: Float32Array, xOffset: number, hidden: number, intermediate: number, w: MlpWeights, act: GatedActivation): Float64Array {
  return downRow(gateUpRow(x, xOffset, hidden, intermediate, w, act), 0, hidden, intermediate, w);
}

function mlpWeights(call: OpCall): MlpWeights {
  const hasBias = boolParam(kindAttr(call, 'activation'), 'bias');
  const w: MlpWeights = { gate: floats(call, 'gate'), up: floats(call, 'up'), down: floats(call, 'down') };
  if (hasBias) Object.assign(w, { gateBias: floats(call, 'gate_bias'), upBias: floats(call, 'up_bias'), downBias: floats(call, 'down_bias') });
  return w;
}

/** Expert e's slice of stacked [E, ...] weights (views, no copies). */
export function expertSlice(w: MlpWeights, e: number, hidden: number, intermediate: number): MlpWeights {
  const matrix = hidden * intermediate;
  return {
    gate: w.gate.subarray(e * matrix, (e + 1) * matrix),
    up: w.up.subarray(e * matrix, (e + 1) * matrix),
    down: w.down.subarray(e * matrix, (e + 1) * matrix),
    gateBias: w.gateBias?.subarray(e * intermediate, (e + 1) * intermediate),
    upBias: w.upBias?.subarray(e * intermediate, (e + 1) * intermediate),
    downBias: w.downBias?.subarray(e * hidden, (e + 1) * hidden),
  };
}

/** `mlp`: a dense or shared MLP applied to every token. */
export function runMlp(call: OpCall): HostTensor[] {
  const activation = kindAttr(call, 'activation');
  const act = gatedActivation(activation, call.semantics.activations);
  const intermediate = numParam(activation, 'intermediate');
  const x = floats(call, 'x');
  const [tokens, hidden] = [dim(call, 'x', 0), dim(call, 'x', 1)];
  const w = mlpWeights(call);
  const y = new Float32Array(tokens * hidden);
  for (let t = 0; t < tokens; t++) y.set(gatedMlpRow(x, t * hidden, hidden, intermediate, w, act), t * hidden);
  return [{ shape: [tokens, hidden], data: y }];
}

/** `moe.experts`: y_t = sum over slots k with ids[t, k] >= 0 of weights[t, k] * expert_{ids[t, k]}(x_t). */
export function runExperts(call: OpCall): HostTensor[] {
  const activation = kindAttr(call, 'activation');
  const act = gatedActivation(activation, call.semantics.activations);
  const intermediate = numParam(activation, 'intermediate');
  const experts = numAttr(call, 'experts');
  const topK = numAttr(call, 'top_k');
  const x = floats(call, 'x');
  const [tokens, hidden] = [dim(call, 'x', 0), dim(call, 'x', 1)];
  const ids = ints(call, 'ids');
  const weights = floats(call, 'weights');
  const w = mlpWeights(call);
  const y = new Float64Array(tokens * hidden);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < topK; k++) {
      const e = ids[t * topK + k]!;
      if (e === -1) continue;
      if (e < 0 || e >= experts) throw new Error(`token ${t}, slot ${k} routes to expert ${e}; ids must be -1 (empty slot) or 0..${experts - 1}`);
      const inter = gateUpRow(x, t * hidden, hidden, intermediate, expertSlice(w, e, hidden, intermediate), act);
      // Each slot's weighted row is stored as f32 before the sum, as the lowered ops store it.
      const row = Float32Array.from(downRow(inter, 0, hidden, intermediate, expertSlice(w, e, hidden, intermediate), weights[t * topK + k]!));
      for (let h = 0; h < hidden; h++) y[t * hidden + h]! += row[h]!;
    }
  }
  // Token rounding's added (token, expert) pairs, in entry order, after every token's k slots.
  const extraIds = call.inputs['extra_ids'] ? ints(call, 'extra_ids') : new Int32Array(0);
  const extraWeights = call.inputs['extra_weights'] ? floats(call, 'extra_weights') : new Float32Array(0);
  for (let j = 0; j < extraWeights.length; j++) {
    const [t, e] = [extraIds[2 * j]!, extraIds[2 * j + 1]!];
    if (t < 0) continue;
    const inter = gateUpRow(x, t * hidden, hidden, intermediate, expertSlice(w, e, hidden, intermediate), act);
    const row = Float32Array.from(downRow(inter, 0, hidden, intermediate, expertSlice(w, e, hidden, intermediate), extraWeights[j]!));
    for (let h = 0; h < hidden; h++) y[t * hidden + h]! += row[h]!;
  }
  return [f32Tensor([tokens, hidden], y)];
}
