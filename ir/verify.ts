// Structural and type checks of a graph: SSA (each value defined once, before use), known
// opcodes, and every op's recorded output types equal to what inference gives now.
import type { Graph, Value } from './graph.js';
import { inferOp, IRTypeError, opDefinitions, type OpDefinition } from './ops.js';
import { sameType, typeToString } from './types.js';

export class IRVerifyError extends Error {}

/** `ops`: the op definitions to check against (a plugin's registry has more than the builtin ones). */
export function verifyGraph(graph: Graph, ops: Readonly<Record<string, OpDefinition>> = opDefinitions): void {
  const defined = new Set<number>();
  const define = (v: Value, where: string) => {
    if (defined.has(v.id)) throw new IRVerifyError(`${graph.name}: %${v.name} is defined twice (${where})`);
    defined.add(v.id);
  };
  for (const v of graph.inputs) define(v, 'graph input');
  for (const v of graph.params) define(v, 'param');
  for (const v of graph.state ?? []) define(v, 'state');
  graph.ops.forEach((op, index) => {
    const where = `op ${index} (${op.opcode} -> ${op.outputs.map((o) => `%${o.name}`).join(', ')})`;
    for (const input of op.inputs) {
      if (!defined.has(input.id)) throw new IRVerifyError(`${graph.name}: ${where} uses %${input.name} before it is defined`);
    }
    let types;
    try {
      types = inferOp(op.opcode, op.inputs.map((v) => v.type), op.attrs, ops);
    } catch (e) {
      if (e instanceof IRTypeError) throw new IRVerifyError(`${graph.name}: ${where}: ${e.message}`);
      throw e;
    }
    if (types.length !== op.outputs.length) throw new IRVerifyError(`${graph.name}: ${where} has ${op.outputs.length} outputs, inference gives ${types.length}`);
    op.outputs.forEach((out, i) => {
      if (!sameType(out.type, types[i]!)) throw new IRVerifyError(`${graph.name}: ${where}: %${out.name} is ${typeToString(out.type)}, inference gives ${typeToString(types[i]!)}`);
      define(out, where);
    });
  });
  for (const out of graph.outputs) {
    if (!defined.has(out.id)) throw new IRVerifyError(`${graph.name}: output %${out.name} is never defined`);
  }
}
