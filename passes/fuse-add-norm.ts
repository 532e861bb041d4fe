// The residual add and the norm that reads its sum become one kernel: `add_norm` writes the sum
// (the residual stream goes on to the next add) and the normed rows, so the sum is read once and
// a dispatch is saved per pair: two per decoder layer (attention's residual and the next MLP norm;
// the MLP's residual and the next layer's attention norm, or the final norm).
import type { Graph, Op } from '../ir/graph.js';
import { inputsByName } from '../ir/ops.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, type Pass } from './pass.js';

export const fuseAddNorm: Pass = {
  name: 'fuse-add-norm',
  description: 'add(a, b) followed by norm(sum) -> one add_norm writing both the sum and the normed rows.',
  run(module, { ops }) {
    return forEachFunction(module, (f) => fuseFunction(f, ops));
  },
};

function fuseFunction(f: Graph, opTable: Parameters<typeof inputsByName>[1]): Graph {
  const sums = new Map(f.ops.filter((op) => op.opcode === 'add').map((op) => [op.outputs[0]!.id, op]));
  // Each add's first norm (a sum feeds one norm in the decoder; a second would keep its own kernel).
  // The fused op takes the add's place, so the norm's weight (and bias) must exist there: params.
  const params = new Set(f.params.map((p) => p.id));
  const pairs = new Map<Op, Op>();
  for (const op of f.ops) {
    const add = op.opcode === 'norm' ? sums.get(inputsByName(op, opTable)['x']!.id) : undefined;
    if (add && ![...pairs.values()].includes(add) && op.inputs.slice(1).every((v) => params.has(v.id))) pairs.set(op, add);
  }
  if (pairs.size === 0) return f;
  const normOf = new Map([...pairs].map(([norm, add]) => [add, norm]));
  const r = new GraphRewriter(f, opTable);
  for (const op of f.ops) {
    if (pairs.has(op)) continue; // emitted with its add: its weight and bias are params, there already
    const norm = normOf.get(op);
    if (!norm) {
      r.keep(op);
      continue;
    }
    const n = inputsByName(norm, opTable);
    r.emit('add_norm', [op.inputs[0]!, op.inputs[1]!, n['weight']!, ...(n['bias'] ? [n['bias']] : [])], { norm: norm.attrs['norm']! },
      [op.outputs[0]!.name, norm.outputs[0]!.name], [op.outputs[0], norm.outputs[0]]);
  }
  return r.finish();
}
