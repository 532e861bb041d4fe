// What the decoder kernels (embed, norm, add, attention/MLA prepare, MLA absorb/unabsorb) hand the
// plan: the rendered kernel, its grid as TokenExprs (linear in the token count, never in `past`)
// and the words of its Params uniform.
import { evalTokenExpr, tokenExpr, type PlanGrid, type TokenExpr } from '../../../runtime/plan.js';
import type { RenderedKernel } from '../kernel.js';

export interface DecoderKernel {
  kernel: RenderedKernel;
  planGrid: PlanGrid & { kind: 'fixed' };
  /** The Params words: TOKENS_WORDS ({ tokens, 0, 0, 0 }) or TOKENS_PAST_WORDS ({ tokens, past, 0, 0 }). */
  words: TokenExpr[];
  grid(tokens: number): [number, number, number];
}

/** WebGPU's default maxComputeWorkgroupsPerDimension: a token axis of the grid stops here and the kernel strides. */
export const MAX_GRID_ROWS = 65535;

export const constantExpr = (n: number): TokenExpr => tokenExpr(0, n);
/** T workgroups along an axis, at most MAX_GRID_ROWS (the kernel loops t += MAX_GRID_ROWS). */
export const tokenRowsExpr: TokenExpr = tokenExpr(1, 0, 1, MAX_GRID_ROWS);

/** { tokens, 0, 0, 0 }: the common header's Params with no expert range. */
export const TOKENS_WORDS: readonly TokenExpr[] = [tokenExpr(1), constantExpr(0), constantExpr(0), constantExpr(0)];
/** { tokens, past, 0, 0 }: the attention header's Params (attention-shape.ts attentionParamsWords). */
export const TOKENS_PAST_WORDS: readonly TokenExpr[] = [tokenExpr(1), { perToken: 0, constant: 0, perPast: 1 }, constantExpr(0), constantExpr(0)];

export function decoderKernel(kernel: RenderedKernel, words: readonly TokenExpr[], x: TokenExpr, y: TokenExpr = constantExpr(1), z: TokenExpr = constantExpr(1)): DecoderKernel {
  return {
    kernel,
    planGrid: { kind: 'fixed', x, y, z },
    words: [...words],
    grid: (tokens) => [evalTokenExpr(x, tokens), evalTokenExpr(y, tokens), evalTokenExpr(z, tokens)],
  };
}

/** The smallest power of two >= n, clamped to [lo, hi]: a reduction's workgroup size for a row of n. */
export function reductionThreads(n: number, lo = 32, hi = 256): number {
  let threads = lo;
  while (threads < n && threads < hi) threads *= 2;
  return threads;
}

export function checkPositive(what: string, values: Record<string, number>): void {
  for (const [name, n] of Object.entries(values)) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: ${name} ${n} must be a positive integer`);
  }
}
