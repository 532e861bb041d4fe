// The candidates of each tuned family, pruned before anything runs: tiles the template cannot
// render (tm must divide bm, at least bm threads), that exceed the adapter's workgroup storage or
// invocations, or that are larger than the matrix or the rows an expert gets at the token bucket.
// Each tile shape comes in the kernel's loop variants (scalar, vec4 along K, vec4 read direct).
// The fused decode kernels' rows per workgroup: powers of two up to the adapter's workgroup size.
import { normalTile, type GemmTile } from '../../ir/ops-lowered.js';
import { DEFAULT_GEMM_TILE } from '../../ir/target.js';
import { gemmThreads, gemmTileShapeRefusal } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
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
const BK = [8, 16, 32, 64];
const PER_THREAD = [1, 2, 4, 8];
/** The tile loop's variants (GemmTile kvec / direct), tried in this order for each tile shape. */
const VARIANTS: readonly Pick<GemmTile, 'kvec' | 'direct'>[] = [{ kvec: 4 }, { kvec: 4, direct: 1 }, {}];

/** A tile as tuning-file parameters (variant fields only where not the default), and back. */
export const gemmTileParams = (t: GemmTile): Record<string, number> => ({ ...normalTile(t) });
export function gemmTileOfParams(p: Readonly<Record<string, number>>): GemmTile {
  return normalTile({ bm: p['bm']!, bn: p['bn']!, bk: p['bk']!, tm: p['tm']!, tn: p['tn']!, kvec: p['kvec'] === 4 ? 4 : 1, direct: p['direct'] === 1 ? 1 : 0 });
}
export const gemmTileText = (t: GemmTile): string => `tile(${Object.entries(normalTile(t)).map(([k, v]) => `${k}=${v}`).join(', ')})`;

const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** Workgroup memory of grouped-gemm.wgsl.hbs for a tile: A and weight tiles, row maps, row weights. */
export function gemmWorkgroupBytes(tile: GemmTile, gateup: boolean): number {
  const tiles = tile.direct === 1 ? 0 : tile.bm * tile.bk + tile.bk * tile.bn * (gateup ? 2 : 1);
  return 4 * (tiles + 3 * tile.bm);
}

/** Why `tile` cannot run for `p` (undefined: it can). */
export function gemmTileRefusal(tile: GemmTile, p: GemmProblem): string | undefined {
  const shape = gemmTileShapeRefusal(tile);
  if (shape) return shape;
  const threads = gemmThreads(tile);
  if (threads > p.limits.maxComputeInvocationsPerWorkgroup || threads > p.limits.maxComputeWorkgroupSizeX) return `${threads} threads, more than the adapter's ${Math.min(p.limits.maxComputeInvocationsPerWorkgroup, p.limits.maxComputeWorkgroupSizeX)}`;
  const bytes = gemmWorkgroupBytes(tile, p.gateup);
  if (bytes > p.limits.maxComputeWorkgroupStorageSize) return `${bytes} bytes of workgroup memory, more than the adapter's ${p.limits.maxComputeWorkgroupStorageSize}`;
  if (p.bm !== undefined && tile.bm !== p.bm) return `bm must be ${p.bm} (the gate/up GEMM's)`;
  return undefined;
}

const tileText = (t: GemmTile): string => JSON.stringify(gemmTileParams(t));

/**
 * Candidate tiles for a grouped GEMM, the default first, the rest ordered by how likely they are
 * to win (16..32 outputs per thread, about 64..128 threads, bk about 32 so a barrier pair covers
 * enough work; then fewer loads per multiply-add), at most `max`.
 */
export function gemmTileCandidates(p: GemmProblem, base: GemmTile = DEFAULT_GEMM_TILE, max = 32): GemmTile[] {
  const out: GemmTile[] = [];
  const bmCap = Math.max(BM[0]!, nextPow2(p.rowsPerExpert));
  for (const bm of p.bm !== undefined ? [p.bm] : BM.filter((b) => b <= bmCap)) {
    for (const bn of BN.filter((b) => b <= Math.max(BN[0]!, nextPow2(p.ndim)))) {
      for (const bk of BK.filter((b) => b <= Math.max(BK[0]!, nextPow2(p.kdim)))) {
        for (const tm of PER_THREAD) {
          for (const tn of PER_THREAD) {
            for (const variant of VARIANTS) {
              const tile = normalTile({ bm, bn, bk, tm, tn, ...variant });
              if (tm * tn > 32 || gemmTileRefusal(tile, p)) continue;
              out.push(tile);
            }
          }
        }
      }
    }
  }
  // A tile shape's variants stay next to each other (the order of VARIANTS), so a cut keeps whole shapes.
  const variantRank = (t: GemmTile): number => VARIANTS.findIndex((v) => (v.kvec ?? 1) === (t.kvec ?? 1) && (v.direct ?? 0) === (t.direct ?? 0));
  const score = (t: GemmTile): number =>
    Math.abs(Math.log2(t.tm * t.tn) - 4.5) + 0.5 * Math.abs(Math.log2(gemmThreads(t)) - 6.5) + (t.tm > t.bm / 2 ? 1 : 0) + (t.bk < 16 ? 0.5 : 0.25 * Math.abs(Math.log2(t.bk) - 5));
  // Per thread and step of K: tm rows of a and tn weight rows loaded for tm x tn multiply-adds.
  const loadsPerFma = (t: GemmTile): number => (t.tm + t.tn) / (t.tm * t.tn);
  const shapeText = (t: GemmTile): string => `${t.bm}/${t.bn}/${t.bk}/${t.tm}/${t.tn}`;
  const pool = out.filter((t) => tileText(t) !== tileText(base))
    .sort((a, b) => score(a) - score(b) || loadsPerFma(a) - loadsPerFma(b) || shapeText(a).localeCompare(shapeText(b)) || variantRank(a) - variantRank(b));
  // A budget measures only the first few: each pick counts against later tiles of the same rows,
  // per-thread tile and variant, so the list spreads over kinds of tile instead of bk and bn steps of one.
  const kind = (t: GemmTile): string => `${t.bm}/${t.tm}/${t.tn}/${variantRank(t)}`;
  const picked: GemmTile[] = [];
  const kinds = new Map<string, number>();
  while (picked.length < max - 1 && pool.length) {
    let at = 0;
    const cost = (t: GemmTile): number => score(t) + 0.75 * (kinds.get(kind(t)) ?? 0);
    for (let i = 1; i < pool.length; i++) if (cost(pool[i]!) < cost(pool[at]!)) at = i;
    const [tile] = pool.splice(at, 1);
    picked.push(tile!);
    kinds.set(kind(tile!), (kinds.get(kind(tile!)) ?? 0) + 1);
  }
  return [base, ...picked].slice(0, Math.max(1, max));
}

/** Rows per workgroup tried for the fused decode kernels (one thread per row). */
const DECODE_ROWS = [8, 16, 32, 64, 128, 256];

export interface DecodeRowsProblem {
  /** The widest output of the two kernels: max(I, Is) of gate/up, H of down. */
  widest: number;
  /** The shared gate keeps MAX_ROWS x rows partial sums in workgroup memory. */
  sharedGate: boolean;
  limits: KernelLimits;
}

/** Workgroup memory of decode-down-combine.wgsl.hbs: the shared gate's MAX_ROWS x rows partial sums. */
export const decodeWorkgroupBytes = (rows: number, sharedGate: boolean): number => (sharedGate ? 4 * GEMV_MAX_ROWS * rows : 0);

/** Why `rows` cannot run for `p` (undefined: it can). */
export function decodeRowsRefusal(rows: number, p: DecodeRowsProblem): string | undefined {
  const threads = Math.min(p.limits.maxComputeInvocationsPerWorkgroup, p.limits.maxComputeWorkgroupSizeX);
  if (rows > threads) return `${rows} threads, more than the adapter's ${threads}`;
  const bytes = decodeWorkgroupBytes(rows, p.sharedGate);
  if (bytes > p.limits.maxComputeWorkgroupStorageSize) return `${bytes} bytes of workgroup memory, more than the adapter's ${p.limits.maxComputeWorkgroupStorageSize}`;
  return undefined;
}

/**
 * Candidate rows per workgroup for the fused decode kernels, the default first, then the others
 * nearest it (in octaves) first; none wider than the widest output rounded up to a power of two
 * (the extra threads would only return).
 */
export function decodeRowsCandidates(p: DecodeRowsProblem, base: number): number[] {
  const cap = Math.max(DECODE_ROWS[0]!, nextPow2(p.widest));
  const others = DECODE_ROWS.filter((r) => r !== base && r <= cap && !decodeRowsRefusal(r, p))
    .sort((a, b) => Math.abs(Math.log2(a / base)) - Math.abs(Math.log2(b / base)) || a - b);
  return [base, ...others];
}

/** Token buckets where the decode/prefill crossover is measured: those the decode GEMV can serve, above 1 (1 token always decodes). */
export const crossoverBuckets = (tokens: readonly number[]): number[] => tokens.filter((t) => t >= 2 && t <= GEMV_MAX_ROWS);

export { GEMV_MAX_ROWS };
