// The non-MoE ops: embed, norm, add, linear, sigmoid_gate (attention: attention.ts).
import { numParam } from '../model-config.js';
import { dim, f32Tensor, floats, input, ints, kindAttr, optionalFloats, type HostTensor, type OpCall } from './host-tensor.js';
import { dot, sigmoid } from './math.js';

/** `embed`: row ids[t] of the [V, H] table for every token. */
export function runEmbed(call: OpCall): HostTensor[] {
  const ids = ints(call, 'ids');
  const table = floats(call, 'table');
  const [vocab, hidden] = [dim(call, 'table', 0), dim(call, 'table', 1)];
  const y = new Float32Array(ids.length * hidden);
  ids.forEach((id, t) => {
    if (id < 0 || id >= vocab) throw new Error(`token ${t} has id ${id}, the vocabulary is 0..${vocab - 1}`);
    y.set(table.subarray(id * hidden, (id + 1) * hidden), t * hidden);
  });
  return [{ shape: [ids.length, hidden], data: y }];
}

/** `norm`: rmsnorm x / sqrt(mean(x^2) + eps) * w, or layernorm (x - mean) / sqrt(var + eps) * w (+ b), per row. */
export function runNorm(call: OpCall): HostTensor[] {
  const norm = kindAttr(call, 'norm');
  if (norm.kind !== 'rmsnorm' && norm.kind !== 'layernorm') throw new Error(`the reference interpreter has no norm ${norm.kind}`);
  const eps = numParam(norm, 'eps');
  const x = floats(call, 'x');
  const w = floats(call, 'weight');
  const b = optionalFloats(call, 'bias');
  const [tokens, hidden] = [dim(call, 'x', 0), dim(call, 'x', 1)];
  const y = new Float64Array(tokens * hidden);
  for (let t = 0; t < tokens; t++) {
    const row = x.subarray(t * hidden, (t + 1) * hidden);
    const mean = norm.kind === 'layernorm' ? row.reduce((s, v) => s + v, 0) / hidden : 0;
    const meanSquare = row.reduce((s, v) => s + (v - mean) * (v - mean), 0) / hidden;
    const r = 1 / Math.sqrt(meanSquare + eps);
    for (let h = 0; h < hidden; h++) y[t * hidden + h] = (row[h]! - mean) * r * w[h]! + (b ? b[h]! : 0);
  }
  return [f32Tensor([tokens, hidden], y)];
}

/** `add`: elementwise a + b. */
export function runAdd(call: OpCall): HostTensor[] {
  const a = floats(call, 'a');
  const b = floats(call, 'b');
  return [f32Tensor([...call.inputs['a']!.shape], a.map((v, i) => v + b[i]!))];
}

/** `add_norm`: sum = a + b, then the norm of sum, exactly as `add` followed by `norm`. */
export function runAddNorm(call: OpCall): HostTensor[] {
  const [sum] = runAdd({ ...call, inputs: { a: input(call, 'a'), b: input(call, 'b') } });
  const normInputs = { x: sum!, weight: input(call, 'weight'), ...(call.inputs['bias'] ? { bias: call.inputs['bias'] } : {}) };
  return [sum!, ...runNorm({ ...call, inputs: normInputs })];
}

/** `linear`: y = x W^T (+ b) with W [N, K]. */
export function runLinear(call: OpCall): HostTensor[] {
  const x = floats(call, 'x');
  const w = floats(call, 'weight');
  const b = optionalFloats(call, 'bias');
  const [tokens, k] = [dim(call, 'x', 0), dim(call, 'x', 1)];
  const n = dim(call, 'weight', 0);
  const y = new Float64Array(tokens * n);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < n; j++) y[t * n + j] = dot(x, t * k, w, j * k, k) + (b ? b[j]! : 0);
  }
  return [f32Tensor([tokens, n], y)];
}

/** `sigmoid_gate`: y_t * sigmoid(x_t . w) with w [1, H] (the Qwen2-MoE shared-expert gate). */
export function runSigmoidGate(call: OpCall): HostTensor[] {
  const y = floats(call, 'y');
  const x = floats(call, 'x');
  const w = floats(call, 'weight');
  const [tokens, width] = [dim(call, 'y', 0), dim(call, 'y', 1)];
  const hidden = dim(call, 'x', 1);
  const out = new Float64Array(tokens * width);
  for (let t = 0; t < tokens; t++) {
    const gate = sigmoid(dot(x, t * hidden, w, 0, hidden));
    for (let h = 0; h < width; h++) out[t * width + h] = y[t * width + h]! * gate;
  }
  return [f32Tensor([tokens, width], out)];
}
