// A small builder that creates values, runs shape inference as each op is added, and hands
// back a Graph. The model builder (build-model.ts) is written against it.
import type { AttrValue, Graph, Op, Value, WeightRole } from './graph.js';
import { inferOp, opDefinitions } from './ops.js';
import type { DType, TensorType } from './types.js';

export class GraphBuilder {
  private nextId = 0;
  private readonly graph: Graph;

  constructor(name: string) {
    this.graph = { name, inputs: [], params: [], ops: [], outputs: [] };
  }

  input(name: string, type: TensorType): Value {
    const v = this.value(name, type);
    this.graph.inputs.push(v);
    return v;
  }

  param(name: string, shape: number[], role: WeightRole, dtype: DType = 'f32'): Value {
    const v: Value = { ...this.value(name, { shape, dtype }), role };
    this.graph.params.push(v);
    return v;
  }

  /** A tensor kept across calls (a KV cache), updated in place by the ops that write it. */
  state(name: string, type: TensorType): Value {
    const v = this.value(name, type);
    (this.graph.state ??= []).push(v);
    return v;
  }

  /** Adds an op; output names default to `<prefix>.<output name>`. */
  op(opcode: string, inputs: Value[], attrs: Record<string, AttrValue>, prefix: string): Value[] {
    const types = inferOp(opcode, inputs.map((v) => v.type), attrs);
    const outputNames = opDefinitions[opcode]!.outputNames;
    const outputs = types.map((t, i) => this.value(outputNames.length === 1 ? prefix : `${prefix}.${outputNames[i]}`, t));
    const op: Op = { opcode, inputs, outputs, attrs };
    this.graph.ops.push(op);
    return outputs;
  }

  op1(opcode: string, inputs: Value[], attrs: Record<string, AttrValue>, prefix: string): Value {
    return this.op(opcode, inputs, attrs, prefix)[0]!;
  }

  finish(outputs: Value[]): Graph {
    this.graph.outputs = outputs;
    return this.graph;
  }

  private value(name: string, type: TensorType): Value {
    return { id: this.nextId++, name, type };
  }
}
