// Scalar and vector math of the reference interpreter. JS numbers are float64, so every
// accumulation here is float64 whatever the storage of its operands.

/** sum_i a[aOffset + i] * b[bOffset + i] over n elements, accumulated in float64. */
export function dot(a: ArrayLike<number>, aOffset: number, b: ArrayLike<number>, bOffset: number, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += a[aOffset + i]! * b[bOffset + i]!;
  return acc;
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function silu(x: number): number {
  return x * sigmoid(x);
}

/** Softmax in float64; -Infinity entries get probability 0 (at least one entry must be finite). */
export function softmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) max = Math.max(max, scores[i]!);
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    out[i] = Math.exp(scores[i]! - max);
    sum += out[i]!;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}
