// gpt-oss's expert layouts -> the IR's: its fused gate_up_proj interleaves gate and up on the
// last dim, and it stores matrices as x @ W ([in, out]) where the IR keeps [out, in]. Plain loops
// over f32 arrays. Browser-safe.

/** [E, H, 2I] with gate/up interleaved on the last dim -> one half as [E, I, H]. */
export function deinterleaveTranspose(source: Float32Array, experts: number, hidden: number, inter: number, half: 0 | 1): Float32Array {
  const out = new Float32Array(experts * inter * hidden);
  for (let e = 0; e < experts; e++) {
    const src = e * hidden * 2 * inter;
    const dst = e * inter * hidden;
    for (let h = 0; h < hidden; h++) {
      for (let i = 0; i < inter; i++) out[dst + i * hidden + h] = source[src + h * 2 * inter + 2 * i + half]!;
    }
  }
  return out;
}

/** [E, R, C] -> [E, C, R]. */
export function transposeInner(source: Float32Array, experts: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(experts * rows * cols);
  for (let e = 0; e < experts; e++) {
    const base = e * rows * cols;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[base + c * rows + r] = source[base + r * cols + c]!;
    }
  }
  return out;
}

/** [E, 2I] with gate/up interleaved on the last dim -> one half as [E, I]. */
export function deinterleave(source: Float32Array, experts: number, inter: number, half: 0 | 1): Float32Array {
  const out = new Float32Array(experts * inter);
  for (let i = 0; i < out.length; i++) out[i] = source[2 * i + half]!;
  return out;
}
