// Builds a function's new op list during a pass: keeps ops, or emits replacements whose output
// types come from shape inference. A replacement may reuse an old output value (same id), so the
// ops after it read the new result without being touched.
import type { AttrValue, Graph, Op, Value } from './graph.js';
import { inferOp, opDefinitions, type OpDefinition } from './ops.js';
import { sameType, typeToString, type TensorType } from './types.js';

export class GraphRewriter {
  readonly ops: Op[] = [];
  private nextId: number;

  /** `opTable`: the op definitions emitted ops are inferred with (a plugin's registry has more than the builtin ones). */
  constructor(private readonly graph: Graph, private readonly opTable: Readonly<Record<string, OpDefinition>> = opDefinitions) {
    const ids = [...graph.inputs, ...graph.params, ...(graph.state ?? []), ...graph.ops.flatMap((o) => o.outputs)].map((v) => v.id);
    this.nextId = Math.max(-1, ...ids) + 1;
  }

  keep(op: Op): void {
    this.ops.push(op);
  }

  /** A new value (a param slice's result, an op output) with a fresh id. */
  value(name: string, type: TensorType): Value {
    return { id: this.nextId++, name, type };
  }

  /**
   * Appends `opcode` with outputs named `names`; where `reuse[i]` is given, output i is that value
   * (its type must equal what inference gives).
   */
  emit(opcode: string, inputs: Value[], attrs: Record<string, AttrValue>, names: string[], reuse: (Value | undefined)[] = []): Value[] {
    const types = inferOp(opcode, inputs.map((v) => v.type), attrs, this.opTable);
    const outputs = types.map((type, i) => {
      const old = reuse[i];
      if (!old) return this.value(names[i]!, type);
      if (!sameType(old.type, type)) throw new Error(`internal: ${opcode} gives %${old.name} type ${typeToString(type)}, not ${typeToString(old.type)}`);
      return old;
    });
    this.ops.push({ opcode, inputs, outputs, attrs });
    return outputs;
  }

  emit1(opcode: string, inputs: Value[], attrs: Record<string, AttrValue>, name: string, reuse?: Value): Value {
    return this.emit(opcode, inputs, attrs, [name], [reuse])[0]!;
  }

  finish(extra: Partial<Graph> = {}): Graph {
    return { ...this.graph, ops: this.ops, ...extra };
  }
}

/**
 * Re-runs shape inference over every op after some values changed type (`changed`, by id): each
 * op reads the current values and gets outputs of the types inference now gives (same ids).
 */
export function reinferGraph(graph: Graph, changed: Map<number, Value>, opTable: Readonly<Record<string, OpDefinition>> = opDefinitions): Graph {
  const current = new Map(changed);
  const at = (v: Value) => current.get(v.id) ?? v;
  const ops = graph.ops.map((op) => {
    const inputs = op.inputs.map(at);
    const types = inferOp(op.opcode, inputs.map((v) => v.type), op.attrs, opTable);
    const outputs = op.outputs.map((v, i) => {
      if (sameType(v.type, types[i]!)) return v;
      const updated = { ...v, type: types[i]! };
      current.set(v.id, updated);
      return updated;
    });
    return { ...op, inputs, outputs };
  });
  return { ...graph, inputs: graph.inputs.map(at), params: graph.params.map(at), ops, outputs: graph.outputs.map(at), ...(graph.state ? { state: graph.state.map(at) } : {}) };
}
