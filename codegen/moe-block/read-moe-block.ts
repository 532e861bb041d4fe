// Reads an MoE block graph (ir/build-model.ts buildMoeBlockGraph, after the passes) into the
// few facts the kernels need: sizes, router kind, and which IR param plays which part. Anything
// the GPU backend cannot run yet is refused here with a message that says what to change.
import type { Graph, Op, Value } from '../../ir/graph.js';
import { isKindRef } from '../../ir/graph.js';
import { boolParam, numParam, type KindRef, type ModelConfig } from '../../ir/model-config.js';
import { opDefinitions } from '../../ir/ops.js';
import type { ActivationDtype } from '../kernels/kernel.js';
import { weightFormatOf } from './weight-formats.js';

export interface MlpParams {
  activation: KindRef;
  intermediate: number;
  gate: Value;
  up: Value;
  down: Value;
  bias?: { gate: Value; up: Value; down: Value };
}

export interface MoeBlockParts {
  name: string;
  /** How activations are stored between kernels: the spec's compile dtype. */
  act: ActivationDtype;
  hidden: number;
  experts: number;
  topK: number;
  input: Value;
  output: Value;
  router: KindRef;
  routerWeight: Value;
  routerBias?: Value;
  correctionBias?: Value;
  routed: MlpParams;
  shared?: MlpParams;
  /** Qwen2-MoE: the shared expert's output times sigmoid(x . w). */
  sharedGate?: Value;
}

function namedInputs(op: Op): Record<string, Value> {
  const names = opDefinitions[op.opcode]!.inputNames(op.attrs);
  return Object.fromEntries(names.map((n, i) => [n, op.inputs[i]!]));
}

function kind(op: Op, attr: string): KindRef {
  const v = op.attrs[attr];
  if (v === undefined || !isKindRef(v)) throw new Error(`${op.opcode}: attribute ${attr} is not a kind`);
  return v;
}

function mlpParams(op: Op): MlpParams {
  const inputs = namedInputs(op);
  const activation = kind(op, 'activation');
  const parts: MlpParams = { activation, intermediate: numParam(activation, 'intermediate'), gate: inputs['gate']!, up: inputs['up']!, down: inputs['down']! };
  if (boolParam(activation, 'bias')) parts.bias = { gate: inputs['gate_bias']!, up: inputs['up_bias']!, down: inputs['down_bias']! };
  return parts;
}

function checkCompileOptions(config: ModelConfig): void {
  const rounding = config.compile.tokenRounding.kind;
  if (rounding !== 'exact') {
    throw new Error(`token_rounding = ${rounding} is not supported by the WebGPU MoE kernels yet; set \`token_rounding = exact\` in the compile block`);
  }
}

/** Every weight in a format the kernels read (f32, f16, bf16, int8, int4, mxfp4, groups dividing the reduced dim). */
function checkWeightDtypes(graph: Graph): void {
  for (const p of graph.params) weightFormatOf(p);
}

export function readMoeBlock(graph: Graph, config: ModelConfig): MoeBlockParts {
  checkCompileOptions(config);
  checkWeightDtypes(graph);
  if (graph.inputs.length !== 1) throw new Error(`${graph.name}: an MoE block graph takes one input (hidden states), not ${graph.inputs.length}`);
  if (graph.outputs.length !== 1) throw new Error(`${graph.name}: an MoE block graph has one output, not ${graph.outputs.length}`);
  const input = graph.inputs[0]!;
  const hidden = input.type.shape[1];
  if (typeof hidden !== 'number' || input.type.dtype !== 'f32') throw new Error(`${graph.name}: the block input must be [T, hidden] f32`);

  const byOpcode = new Map<string, Op[]>();
  for (const op of graph.ops) {
    if (!['moe.route', 'moe.experts', 'mlp', 'sigmoid_gate', 'add'].includes(op.opcode)) {
      throw new Error(`${graph.name}: the WebGPU MoE block compiler does not handle op ${op.opcode} (it runs moe.route, moe.experts, mlp, sigmoid_gate and add)`);
    }
    byOpcode.set(op.opcode, [...(byOpcode.get(op.opcode) ?? []), op]);
  }
  const one = (opcode: string, required: boolean): Op | undefined => {
    const ops = byOpcode.get(opcode) ?? [];
    if (ops.length > 1 || (required && ops.length === 0)) throw new Error(`${graph.name}: expected ${required ? 'exactly' : 'at most'} one ${opcode} op, found ${ops.length}`);
    return ops[0];
  };
  const route = one('moe.route', true)!;
  const experts = one('moe.experts', true)!;
  const mlp = one('mlp', false);
  const gate = one('sigmoid_gate', false);
  const add = one('add', false);

  const routeIn = namedInputs(route);
  const expertsIn = namedInputs(experts);
  const fromInput = (v: Value | undefined, what: string) => {
    if (v?.id !== input.id) throw new Error(`${graph.name}: ${what} must read the block input %${input.name}`);
  };
  fromInput(routeIn['x'], 'moe.route');
  fromInput(expertsIn['x'], 'moe.experts');
  if (expertsIn['ids']?.id !== route.outputs[0]!.id || expertsIn['weights']?.id !== route.outputs[1]!.id) {
    throw new Error(`${graph.name}: moe.experts must take its ids and weights from moe.route`);
  }
  const router = kind(route, 'router');
  const parts: MoeBlockParts = {
    name: graph.name,
    act: config.compile.dtype,
    hidden,
    experts: route.attrs['experts'] as number,
    topK: route.attrs['top_k'] as number,
    input,
    output: graph.outputs[0]!,
    router,
    routerWeight: routeIn['weight']!,
    routed: mlpParams(experts),
  };
  if (routeIn['bias']) parts.routerBias = routeIn['bias'];
  if (routeIn['correction_bias']) parts.correctionBias = routeIn['correction_bias'];

  let sharedOut: Value | undefined;
  if (mlp) {
    fromInput(namedInputs(mlp)['x'], 'the shared expert mlp');
    parts.shared = mlpParams(mlp);
    sharedOut = mlp.outputs[0]!;
    if (gate) {
      const gateIn = namedInputs(gate);
      fromInput(gateIn['x'], 'sigmoid_gate');
      if (gateIn['y']?.id !== sharedOut.id) throw new Error(`${graph.name}: sigmoid_gate must gate the shared expert's output`);
      parts.sharedGate = gateIn['weight']!;
      sharedOut = gate.outputs[0]!;
    }
  } else if (gate) {
    throw new Error(`${graph.name}: sigmoid_gate without a shared expert mlp`);
  }
  const routedOut = experts.outputs[0]!;
  if (sharedOut) {
    const addIn = add ? namedInputs(add) : undefined;
    const operands = new Set([addIn?.['a']?.id, addIn?.['b']?.id]);
    if (!add || !operands.has(routedOut.id) || !operands.has(sharedOut.id) || parts.output.id !== add.outputs[0]!.id) {
      throw new Error(`${graph.name}: the block output must be add(routed experts, shared expert)`);
    }
  } else if (add || parts.output.id !== routedOut.id) {
    throw new Error(`${graph.name}: without a shared expert the block output must be the moe.experts output`);
  }
  return parts;
}
