// Random weights for a whole decoder graph, by param name and shape: norm scales near 1, biases
// and sinks small, matrices scaled by 1 / sqrt(fan-in) so activations stay O(1) through the
// layers, routers and the LM head wider so routing and argmax are well separated.
import type { Graph } from '../../ir/graph.js';
import { normals } from '../codegen/moe-fixtures.js';

export function randomDecoderWeights(graph: Graph, random: () => number): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  const clamped = graph.ops.some((op) => op.opcode === 'moe.experts' && (op.attrs['activation'] as { kind: string }).kind === 'clamped_swiglu');
  for (const p of graph.params) {
    const shape = p.type.shape as number[];
    const n = shape.reduce((a, d) => a * d, 1);
    const fanIn = shape[shape.length - 1]!;
    const name = p.name;
    let values: Float32Array;
    if (p.role === 'norm' && !name.endsWith('.bias')) values = normals(random, n, 0.1).map((v) => 1 + v);
    else if (name.endsWith('sinks')) values = normals(random, n, 1);
    else if (name.endsWith('router.weight')) values = normals(random, n, 2 / Math.sqrt(fanIn));
    else if (shape.length === 1) values = normals(random, n, 0.1);
    else if (p.role === 'embedding') values = normals(random, n, 1);
    else if (p.role === 'lm_head') values = normals(random, n, 3 / Math.sqrt(fanIn));
    else if (clamped && (name.endsWith('.gate') || name.endsWith('.up'))) values = normals(random, n, 4 / Math.sqrt(fanIn));
    else values = normals(random, n, 1 / Math.sqrt(fanIn));
    weights.set(name, values);
  }
  return weights;
}
