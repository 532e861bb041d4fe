// What each format's codec implements: one matrix (rows x cols elements, already flattened) to
// its words (values, then scales; see weight-format.ts) and back.
import type { MatrixLayout } from './weight-format.js';

export interface MatrixCodec {
  /** Writes `values` (one matrix) into `words` from word `at`. Throws a RangeError naming the element it cannot store. */
  encode(values: Float32Array, words: Uint32Array, at: number, layout: MatrixLayout, group: number): void;
  /** Reads one matrix from word `at` into `values` (its length is the element count). */
  decode(words: Uint32Array, at: number, values: Float32Array, layout: MatrixLayout, group: number): void;
}

/** The largest |w| of values[begin, end); throws on NaN or infinity. */
export function absMax(values: Float32Array, begin: number, end: number): number {
  let max = 0;
  for (let i = begin; i < end; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new RangeError(`element ${i} is ${v}; quantized weights must be finite`);
    max = Math.max(max, Math.abs(v));
  }
  return max;
}
