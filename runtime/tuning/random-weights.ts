// Weights and inputs for timing a MoE block at load without its checkpoint: normal values of the
// right shapes, the same for a row whichever range it is read in (each row seeded by its weight
// and index), so every candidate plan computes on identical data and outputs can be compared.
// Router rows are wider apart so routing ties (where two plans may pick differently) stay rare.
import type { RowRange, WeightSource } from '../plan.js';
import { fnv1a } from './adapter-identity.js';
import { seededRandom } from '../seeded-random.js';

/** `n` normal values of deviation `std` into `out` from `offset` (Box-Muller). */
function fillNormals(out: Float32Array, offset: number, n: number, std: number, random: () => number): void {
  for (let i = 0; i < n; i++) out[offset + i] = std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export function randomNormals(n: number, seed: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  fillNormals(out, 0, n, std, seededRandom(seed));
  return out;
}

const deviation = (name: string, fanIn: number): number =>
  name.endsWith('router.weight') ? 2 / Math.sqrt(fanIn) : name.endsWith('bias') ? 0.1 : 1 / Math.sqrt(fanIn);

export function randomWeightSource(seed = 1): WeightSource {
  return {
    readF32(name: string, shape: number[], rows?: RowRange): Float32Array {
      const rowElements = shape.slice(1).reduce((a, d) => a * d, 1);
      const { begin, end } = rows ?? { begin: 0, end: shape[0] ?? 1 };
      const std = deviation(name, shape[shape.length - 1] ?? 1);
      const out = new Float32Array((end - begin) * rowElements);
      const base = Number.parseInt(fnv1a(name, seed), 16);
      for (let r = begin; r < end; r++) fillNormals(out, (r - begin) * rowElements, rowElements, std, seededRandom(base ^ Math.imul(r + 1, 0x9e3779b1)));
      return out;
    },
  };
}
