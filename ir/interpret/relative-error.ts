/**
 * ||actual - expected||_2 / ||expected||_2, summed in float64 over every element or over the
 * given rows of width `width`. NaN anywhere gives NaN; a length mismatch gives NaN.
 *
 * An all-zero reference (a token whose every pick is a null expert, say) has no scale to divide
 * by: then the result is the absolute ||actual - expected||_2, so zeros match zeros exactly and
 * anything else still fails a small tolerance.
 */
export function relativeError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rows?: { width: number; indices: readonly number[] },
): number {
  if (actual.length !== expected.length) return Number.NaN;
  let diff = 0;
  let norm = 0;
  const add = (i: number): void => {
    diff += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  };
  if (rows) {
    for (const r of rows.indices) for (let h = 0; h < rows.width; h++) add(r * rows.width + h);
  } else {
    for (let i = 0; i < expected.length; i++) add(i);
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff) / Math.sqrt(norm);
}
