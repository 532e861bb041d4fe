// Host tensors of the CPU reference interpreter, and the typed accessors its op
// implementations read their inputs and attributes through.
import { isKindRef, type AttrValue, type Op } from '../graph.js';
import type { KindRef } from '../model-config.js';
import type { Semantics } from './semantics.js';

/**
 * A row-major tensor in host memory. Every float dtype (f32, f16, bf16, quantized) is held as
 * f32; i32 values (expert ids, token ids) as Int32Array.
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** What one op implementation receives: its inputs by name (opDefinitions[opcode].inputNames), its attrs, and the semantics the graph runs with (routers, activations). */
export interface OpCall {
  op: Op;
  inputs: Record<string, HostTensor>;
  attrs: Record<string, AttrValue>;
  semantics: Semantics;
}

/** Computes an op's outputs, in the order of opDefinitions[opcode].outputNames. */
export type OpImplementation = (call: OpCall) => HostTensor[];

export function input(call: OpCall, name: string): HostTensor {
  const t = call.inputs[name];
  if (!t) throw new Error(`${call.op.opcode} has no input ${name}`);
  return t;
}

export function floats(call: OpCall, name: string): Float32Array {
  const { data } = input(call, name);
  if (!(data instanceof Float32Array)) throw new Error(`${call.op.opcode}: input ${name} must hold f32 data`);
  return data;
}

export function ints(call: OpCall, name: string): Int32Array {
  const { data } = input(call, name);
  if (!(data instanceof Int32Array)) throw new Error(`${call.op.opcode}: input ${name} must hold i32 data`);
  return data;
}

/** An input present only for some attrs (biases). */
export function optionalFloats(call: OpCall, name: string): Float32Array | undefined {
  return call.inputs[name] ? floats(call, name) : undefined;
}

export function dim(call: OpCall, name: string, axis: number): number {
  const d = input(call, name).shape[axis];
  if (d === undefined) throw new Error(`${call.op.opcode}: input ${name} has no axis ${axis}`);
  return d;
}

export function numAttr(call: OpCall, name: string): number {
  const v = call.attrs[name];
  if (typeof v !== 'number') throw new Error(`${call.op.opcode}: attribute ${name} must be a number`);
  return v;
}

export function kindAttr(call: OpCall, name: string): KindRef {
  const v = call.attrs[name];
  if (v === undefined || !isKindRef(v)) throw new Error(`${call.op.opcode}: attribute ${name} must be a kind`);
  return v;
}

/** Rounds float64 results to the interpreter's f32 storage. */
export function f32Tensor(shape: number[], values: ArrayLike<number>): HostTensor {
  return { shape, data: Float32Array.from(values) };
}
