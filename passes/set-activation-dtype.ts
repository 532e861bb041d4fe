// Decides how activations are stored between kernels: the compile block's `dtype` (f32, or f16
// with every sum still in f32). The function's float inputs and every activation after them
// take that dtype; route ids and routing weights stay 32-bit.
import type { Graph, Value } from '../ir/graph.js';
import type { OpDefinition } from '../ir/op-checks.js';
import { reinferGraph } from '../ir/rewriter.js';
import { forEachFunction, type Pass } from './pass.js';

export const setActivationDtype: Pass = {
  name: 'set-activation-dtype',
  description: 'Store activations in the compile dtype (f32 or f16) between kernels.',
  run(module, { config, ops }) {
    const dtype = config.compile.dtype;
    return forEachFunction(module, (f) => (dtype === 'f32' ? f : toActivationDtype(f, dtype, ops)));
  },
};

function toActivationDtype(f: Graph, dtype: 'f16', opTable: Readonly<Record<string, OpDefinition>>): Graph {
  const changed = new Map<number, Value>();
  for (const v of f.inputs) {
    if (v.type.dtype === 'f32' && v.type.shape.length === 2) changed.set(v.id, { ...v, type: { ...v.type, dtype } });
  }
  // Embedding rows are activations too (the whole-model graph starts from token ids).
  const ops = f.ops.map((op) => (op.opcode === 'embed' ? { ...op, attrs: { ...op.attrs, dtype } } : op));
  return reinferGraph({ ...f, ops, attrs: { ...f.attrs, activations: dtype } }, changed, opTable);
}
