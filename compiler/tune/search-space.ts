// The candidates of each tuned family, pruned before anything runs: tiles the template cannot
// render (tm must divide bm, at least bm threads), that exceed the adapter's workgroup storage or
// invocations, or that are larger than the matrix or the rows an expert gets at the token bucket.
import type { GemmTile } from '../../ir/ops-lowered.js';
import { DEFAULT_GEMM_TILE } from '../../ir/target.js';
import { gemmThreads } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
import { GEMV_MAX_ROWS } from '../../codegen/kernels/expert-gemv/expert-gemv.js';
import type { KernelLimits } from '../../runtime/tuning/adapter-identity.js';

export interface GemmProblem {
  /** The reduced dim and the output columns. */
  kdim: number;
  ndim: number;
  /** Gate/up holds two weight tiles in workgroup memory; the weighted down GEMM a row weight per row. */
  gateup: boolean;
  /** Sorted (token, k) rows an expert gets on average at the bucket: T K / E. */
  rowsPerExpert: number;
  limits: KernelLimits;
  /** Rows per block fixed (the down GEMM shares the gate/up GEMM's bm). */
  bm?: number;
}

const BM = [8, 16, 32, 64];
const BN = [16, 32, 64, 128];
const BK = [8, 16, 32];
const PER_THREAD = [1, 2, 4, 8];

const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** Workgroup memory of grouped-gemm.wgsl.hbs for a tile: A and weight tiles, row maps, row weights. */
export function gemmWorkgroupBytes(tile: GemmTile, gateup: boolean): number {
  return 4 * (tile.bm * tile.bk + tile.bk * tile.bn * (gateup ? 2 : 1) + 3 * tile.bm);
}

/** Why `tile` cannot run for `p` (undefined: it can). */
export function gemmTileRefusal(tile: GemmTile, p: GemmProblem): string | undefined {
  if (tile.bm % tile.tm || tile.bn % tile.tn) return 'tm must divide bm and tn divide bn';
  const threads = gemmThreads(tile);
  if (threads < tile.bm) return `${threads} threads, fewer than bm = ${tile.bm}`;
  if (threads > p.limits.maxComputeInvocationsPerWorkgroup || threads > p.limits.maxComputeWorkgroupSizeX) return `${threads} threads, more than the adapter's ${Math.min(p.limits.maxComputeInvocationsPerWorkgroup, p.limits.maxComputeWorkgroupSizeX)}`;
  const bytes = gemmWorkgroupBytes(tile, p.gateup);
  if (bytes > p.limits.maxComputeWorkgroupStorageSize) return `${bytes} bytes of workgroup memory, more than the adapter's ${p.limits.maxComputeWorkgroupStorageSize}`;
  if (p.bm !== undefined && tile.bm !== p.bm) return `bm must be ${p.bm} (the gate/up GEMM's)`;
  return undefined;
}

const tileText = (t: GemmTile): string => `${t.bm}/${t.bn}/${t.bk}/${t.tm}/${t.tn}`;

/**
 * Candidate tiles for a grouped GEMM, the default first, the rest ordered by how likely they are
 * to win (4..16 outputs per thread, 64..256 threads), at most `max`.
 */
export function gemmTileCandidates(p: GemmProblem, base: GemmTile = DEFAULT_GEMM_TILE, max = 32): GemmTile[] {
  const out: GemmTile[] = [];
  const bmCap = Math.max(BM[0]!, nextPow2(p.rowsPerExpert));
  for (const bm of p.bm !== undefined ? [p.bm] : BM.filter((b) => b <= bmCap)) {
    for (const bn of BN.filter((b) => b <= Math.max(BN[0]!, nextPow2(p.ndim)))) {
      for (const bk of BK.filter((b) => b <= Math.max(BK[0]!, nextPow2(p.kdim)))) {
        for (const tm of PER_THREAD) {
          for (const tn of PER_THREAD) {
            const tile = { bm, bn, bk, tm, tn };
            if (tm * tn > 32 || gemmTileRefusal(tile, p)) continue;
            out.push(tile);
          }
        }
      }
    }
  }
  const score = (t: GemmTile): number => Math.abs(Math.log2(t.tm * t.tn) - 3) + 0.5 * Math.abs(Math.log2(gemmThreads(t)) - 7) + (t.tm > t.bm / 2 ? 1 : 0);
  const ranked = out.filter((t) => tileText(t) !== tileText(base)).sort((a, b) => score(a) - score(b) || tileText(a).localeCompare(tileText(b)));
  return [base, ...ranked].slice(0, Math.max(1, max));
}

/** Token buckets where the decode/prefill crossover is measured: those the decode GEMV can serve, above 1 (1 token always decodes). */
export const crossoverBuckets = (tokens: readonly number[]): number[] => tokens.filter((t) => t >= 2 && t <= GEMV_MAX_ROWS);

export { GEMV_MAX_ROWS };
