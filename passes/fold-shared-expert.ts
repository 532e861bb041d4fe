// Folds the shared expert's sum (and Qwen2-MoE's sigmoid gate) into moe.combine: the combine
// kernel adds the shared row to each token's routed sum, so neither `add` nor `sigmoid_gate`
// needs a kernel of its own.
import type { Graph, Op, Value } from '../ir/graph.js';
import { inputsByName } from '../ir/ops.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, type Pass } from './pass.js';

export const foldSharedExpert: Pass = {
  name: 'fold-shared-expert',
  description: 'add(moe.combine, [sigmoid_gate(] shared [)]) -> one moe.combine with the shared expert (and its gate).',
  run(module) {
    return forEachFunction(module, foldFunction);
  },
};

interface Fold {
  combine: Op;
  gate?: Op;
  shared: Value;
}

function foldFunction(f: Graph): Graph {
  const producer = new Map<number, Op>();
  for (const op of f.ops) for (const v of op.outputs) producer.set(v.id, op);
  const folds = new Map<Op, Fold>();
  for (const op of f.ops) {
    if (op.opcode !== 'add') continue;
    const operands = op.inputs.map((v) => producer.get(v.id));
    const c = operands.findIndex((p) => p?.opcode === 'moe.combine' && p.attrs['shared'] === false);
    if (c < 0) continue;
    const other = operands[1 - c];
    const gate = other?.opcode === 'sigmoid_gate' ? other : undefined;
    folds.set(op, { combine: operands[c]!, ...(gate ? { gate } : {}), shared: gate ? inputsByName(gate)['y']! : op.inputs[1 - c]! });
  }
  const folded = new Set([...folds.values()].flatMap((fold) => [fold.combine, ...(fold.gate ? [fold.gate] : [])]));
  const r = new GraphRewriter(f);
  for (const op of f.ops) {
    const fold = folds.get(op);
    if (folded.has(op)) continue;
    if (!fold) {
      r.keep(op);
      continue;
    }
    const c = inputsByName(fold.combine);
    const g = fold.gate && inputsByName(fold.gate);
    const inputs = [c['route_ids']!, c['slot_out']!, fold.shared, ...(g ? [g['x']!, g['weight']!] : []), ...(c['extra_ids'] ? [c['extra_ids']] : [])];
    r.emit1('moe.combine', inputs, { ...fold.combine.attrs, shared: true, shared_gate: g ? 'sigmoid' : 'none' }, op.outputs[0]!.name, op.outputs[0]);
  }
  return r.finish();
}
