// The router and the shared-expert gate are small and read by f32-only kernels: a quantized one
// is uploaded as its dequantized f32 values, so the numbers match the IR (and the reference)
// while the bytes do not shrink. This pass makes that visible as a `dequantize` op.
import type { Graph, Value } from '../ir/graph.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, type Pass } from './pass.js';

/** Opcode -> its input read by an f32-only kernel. */
const F32_ONLY: Record<string, number> = { 'moe.route': 1, sigmoid_gate: 2 };

export const markDequantizedWeights: Pass = {
  name: 'mark-dequantized-weights',
  description: 'Insert dequantize before quantized weights that f32-only kernels read (router, shared gate).',
  run(module) {
    return forEachFunction(module, markFunction);
  },
};

function markFunction(f: Graph): Graph {
  const r = new GraphRewriter(f);
  const dequantized = new Map<number, Value>();
  for (const op of f.ops) {
    const index = F32_ONLY[op.opcode];
    const w = index === undefined ? undefined : op.inputs[index];
    if (!w || w.type.dtype === 'f32') {
      r.keep(op);
      continue;
    }
    let f32 = dequantized.get(w.id);
    if (!f32) dequantized.set(w.id, (f32 = r.emit1('dequantize', [w], {}, `${w.name}.f32`)));
    r.keep({ ...op, inputs: op.inputs.map((v, i) => (i === index ? f32! : v)) });
  }
  return r.finish();
}
