// The benchmarks' weights: seeded normal values (mulberry32 + Box-Muller), so every run measures the same numbers.
import { seededRandom } from '../compiler/seeded-random.js';

export function seededNormals(seed: number, n: number, std: number): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()));
}
