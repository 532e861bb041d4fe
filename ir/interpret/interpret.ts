// The CPU reference interpreter: runs a Graph on host tensors, op by op, through a table
// opcode -> implementation. f32 storage between ops, float64 accumulation inside them. Every
// GPU kernel is checked against it, so each op is written the plainest way, not the fastest.
import { functionOf, type Graph, type Module, type Op, type Value } from '../graph.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import { opDefinitions } from '../ops.js';
import { dimText, dimValue, dtypeName, elementCount, TOKENS, typeToString, type Dim, type TensorType } from '../types.js';
import { verifyGraph } from '../verify.js';
import type { HostTensor, OpImplementation } from './host-tensor.js';
import type { Semantics } from './semantics.js';
import { routerImplementations } from './routers.js';
import { activationImplementations } from './activations.js';
import { loweredImplementations } from './lowered.js';
import { runExperts, runMlp } from './mlp.js';
import { runRoute } from './routers.js';
import { runAttention } from './attention.js';
import { attentionImplementations } from './attention-lowered.js';
import { traceImplementations } from './trace-routes.js';
import { runAdd, runAddNorm, runEmbed, runLinear, runNorm, runSigmoidGate } from './tensor-ops.js';

export type { HostTensor, OpCall, OpImplementation } from './host-tensor.js';
export type { Semantics } from './semantics.js';
export { routerImplementations, type RouterImplementation, type RouterInput, type TokenRoute } from './routers.js';
export { activationImplementations, type GatedActivation } from './activations.js';

export class InterpretError extends Error {}

/** Opcode -> reference implementation; inputs arrive named by opDefinitions[opcode].inputNames(attrs). */
export const opImplementations: Readonly<Record<string, OpImplementation>> = {
  embed: runEmbed,
  norm: runNorm,
  attention: runAttention,
  add: runAdd,
  add_norm: runAddNorm,
  linear: runLinear,
  mlp: runMlp,
  'moe.route': runRoute,
  'moe.experts': runExperts,
  sigmoid_gate: runSigmoidGate,
  ...loweredImplementations,
  ...attentionImplementations,
  ...traceImplementations,
};

/** The builtin ops, routers and activations; a plugin's registry passes a copy with its own added. */
export const builtinSemantics: Semantics = { opDefinitions, ops: opImplementations, routers: routerImplementations, activations: activationImplementations };

/**
 * Runs `graph` on `inputs` (by input name; the token count T is read from their shapes) with
 * `weight(param)` supplying each param as f32 in the IR layout (dequantized by the caller for a
 * quantized dtype). Returns the graph's outputs by value name.
 *
 * A graph with state (KV caches) takes it in `state`, by name, and the call leaves each entry
 * holding the state's last in-place update: `state` is the session a next call continues.
 */
export function interpretGraph(graph: Graph, inputs: Record<string, HostTensor>, weight: (param: Value) => Float32Array, semantics: Semantics = builtinSemantics, state: Record<string, HostTensor> = {}): Record<string, HostTensor> {
  verifyGraph(graph, semantics.opDefinitions);
  const bindings = bindInputs(graph, inputs);
  const values = new Map<number, HostTensor>();
  for (const v of graph.inputs) values.set(v.id, v.type.dtype === 'f16' ? roundToF16(inputs[v.name]!) : inputs[v.name]!);
  for (const p of graph.params) values.set(p.id, loadWeight(graph, p, weight, bindings));
  const latest = bindState(graph, state, values, bindings);
  graph.ops.forEach((op, index) => {
    const outputs = runOp(graph, op, index, values, bindings, semantics);
    op.outputs.forEach((v, i) => values.set(v.id, outputs[i]!));
    followInPlace(op, semantics, latest);
  });
  for (const s of graph.state ?? []) state[s.name] = values.get(latest.get(s.id)!.id)!;
  return Object.fromEntries(graph.outputs.map((v) => [v.name, values.get(v.id)!]));
}

/** Binds each state value from `state`; returns state id -> its current version (the value itself). */
function bindState(graph: Graph, state: Record<string, HostTensor>, values: Map<number, HostTensor>, bindings: Record<string, number>): Map<number, Value> {
  const latest = new Map<number, Value>();
  for (const s of graph.state ?? []) {
    const t = state[s.name];
    if (!t) throw new InterpretError(`${graph.name}: missing state %${s.name} (${typeToString(s.type)}); pass the caches of a session (zeros for a new one)`);
    checkTensor(`${graph.name}: state %${s.name}`, t, s.type.dtype === 'u32' ? s.type : { ...s.type, dtype: 'f32' }, bindings);
    values.set(s.id, t);
    latest.set(s.id, s);
  }
  return latest;
}

/** An op's in-place outputs become the current version of the state their input was. */
function followInPlace(op: Op, semantics: Semantics, latest: Map<number, Value>): void {
  const inPlace = semantics.opDefinitions[op.opcode]?.inPlace;
  if (!inPlace || latest.size === 0) return;
  const names = semantics.opDefinitions[op.opcode]!.inputNames(op.attrs);
  for (const [index, inputName] of Object.entries(inPlace)) {
    const output = op.outputs[Number(index)];
    const input = op.inputs[names.indexOf(inputName)];
    if (!output || !input) continue;
    for (const [stateId, current] of latest) if (current.id === input.id) latest.set(stateId, output);
  }
}

/** An activation stored as f16 between ops (compile `dtype = f16`): the f32 values it holds. */
function roundToF16(t: HostTensor): HostTensor {
  return { shape: t.shape, data: float16BitsToFloat32(float32ToFloat16Bits(t.data)) };
}

/**
 * Runs a lowered module the way the runtime does: the `decode` function for token counts up to
 * its max_tokens, `prefill` (or the one function) above.
 */
export function interpretModule(module: Module, inputs: Record<string, HostTensor>, weight: (param: Value) => Float32Array, semantics: Semantics = builtinSemantics, state: Record<string, HostTensor> = {}): Record<string, HostTensor> {
  const tokens = Object.values(inputs)[0]?.shape[0] ?? 0;
  const decode = functionOf(module, 'decode');
  const chosen = decode && tokens <= (decode.attrs?.['max_tokens'] as number) ? decode : functionOf(module, 'prefill') ?? module.functions[0]!;
  return interpretGraph(chosen, inputs, weight, semantics, state);
}

function runOp(graph: Graph, op: Op, index: number, values: Map<number, HostTensor>, bindings: Record<string, number>, semantics: Semantics): HostTensor[] {
  const where = `${graph.name}: op ${index} (${op.opcode} -> ${op.outputs.map((o) => `%${o.name}`).join(', ')})`;
  const implementation = semantics.ops[op.opcode];
  if (!implementation) throw new InterpretError(`${where}: the reference interpreter has no implementation of ${op.opcode}`);
  const names = semantics.opDefinitions[op.opcode]!.inputNames(op.attrs);
  const named: Record<string, HostTensor> = {};
  names.forEach((name, i) => (named[name] = values.get(op.inputs[i]!.id)!));
  let outputs: HostTensor[];
  try {
    outputs = implementation({ op, inputs: named, attrs: op.attrs, semantics });
  } catch (e) {
    throw new InterpretError(`${where}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (outputs.length !== op.outputs.length) throw new InterpretError(`${where}: the implementation returned ${outputs.length} outputs, the op has ${op.outputs.length}`);
  // Inputs were bound against the graph's declared types, so any mismatch here is an implementation bug.
  op.outputs.forEach((v, i) => checkTensor(`${where}: output %${v.name}`, outputs[i]!, v.type, bindings));
  return outputs.map((t, i) => (op.outputs[i]!.type.dtype === 'f16' ? roundToF16(t) : t));
}

/** Binds each symbolic dim (T) from the inputs' shapes, checking every input against its declared type. */
function bindInputs(graph: Graph, inputs: Record<string, HostTensor>): Record<string, number> {
  const bindings: Record<string, number> = {};
  const boundBy: Record<string, string> = {};
  for (const name of Object.keys(inputs)) {
    if (!graph.inputs.some((v) => v.name === name)) throw new InterpretError(`${graph.name}: unknown input %${name}; the graph takes ${describeInputs(graph)}`);
  }
  for (const v of graph.inputs) {
    const t = inputs[v.name];
    if (!t) throw new InterpretError(`${graph.name}: missing input %${v.name} (${typeToString(v.type)}); the graph takes ${describeInputs(graph)}`);
    const what = `${graph.name}: input %${v.name}`;
    if (t.shape.length !== v.type.shape.length) throw new InterpretError(`${what} has shape [${t.shape.join(', ')}], expected ${typeToString(v.type)}`);
    v.type.shape.forEach((d, axis) => {
      if (typeof d !== 'string') return;
      const n = t.shape[axis]!;
      if (bindings[d] !== undefined && bindings[d] !== n) throw new InterpretError(`${what} has ${d} = ${n} (shape [${t.shape.join(', ')}]), but %${boundBy[d]} has ${d} = ${bindings[d]}`);
      bindings[d] = n;
      boundBy[d] = v.name;
    });
    checkTensor(what, t, v.type, bindings);
  }
  return bindings;
}

function loadWeight(graph: Graph, p: Value, weight: (param: Value) => Float32Array, bindings: Record<string, number>): HostTensor {
  const what = `${graph.name}: weight %${p.name} (${typeToString(p.type)})`;
  const data = weight(p);
  if (!(data instanceof Float32Array)) throw new InterpretError(`${what}: the weight loader must return a Float32Array (dequantized to f32), got ${describeData(data)}`);
  const shape = p.type.shape.map((d) => concrete(d, bindings, what));
  const expected = elementCount(shape);
  if (data.length !== expected) throw new InterpretError(`${what}: expected ${expected} f32 values for shape [${shape.join(', ')}], the weight loader gave ${data.length}`);
  return { shape, data };
}

function checkTensor(what: string, t: HostTensor, type: TensorType, bindings: Record<string, number>): void {
  const shape = type.shape.map((d) => concrete(d, bindings, what));
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new InterpretError(`${what} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] (${typeToString(type)})`);
  const integer = type.dtype === 'i32' || type.dtype === 'u32';
  if (integer ? !(t.data instanceof Int32Array) : !(t.data instanceof Float32Array)) {
    throw new InterpretError(`${what} is ${dtypeName(type.dtype)} and must hold ${integer ? 'an Int32Array' : 'a Float32Array'}, got ${describeData(t.data)}`);
  }
  const expected = elementCount(shape);
  if (t.data.length !== expected) throw new InterpretError(`${what}: shape [${shape.join(', ')}] has ${expected} elements, the data has ${t.data.length}`);
}

function concrete(d: Dim, bindings: Record<string, number>, what: string): number {
  if (typeof d === 'number') return d;
  if (typeof d === 'object') {
    if (bindings[TOKENS] === undefined) throw new InterpretError(`${what}: dimension ${dimText(d)} needs ${TOKENS}, which no graph input binds`);
    return dimValue(d, bindings);
  }
  const n = bindings[d];
  if (n === undefined) throw new InterpretError(`${what}: dimension ${d} is not bound by any graph input`);
  return n;
}

function describeInputs(graph: Graph): string {
  return graph.inputs.map((v) => `%${v.name}: ${typeToString(v.type)}`).join(', ');
}

function describeData(data: unknown): string {
  return data === null || data === undefined ? String(data) : ((data as object).constructor?.name ?? typeof data);
}
