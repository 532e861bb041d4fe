// The plan sets `moec compile --load-candidates N` puts in a bundle for `load({ tune: 'first-load' })`
// to time on the user's adapter: each is the whole bundle's plans compiled with other grouped-GEMM
// tiles (and, optionally, another decode/prefill crossover), in the stored form of the default
// plans, their WGSL in BundleData.kernels. The runtime cannot render kernels, so what it may choose
// among is decided here, at compile time.
import type { StoredModelPlan } from '../bundle-plans.js';
import { fnv1a } from './adapter-identity.js';

/** `moec compile`'s defaults: tile sets offered, and the prefill token count they are timed at (here, so the CLI reads them without loading the compiler). */
export const DEFAULT_LOAD_CANDIDATES = 2;
export const DEFAULT_LOAD_PREFILL_TOKENS = 256;

/** A grouped GEMM tile as numbers (bm, bn, bk, tm, tn, and kvec / direct when not the default). */
export type TileParams = Record<string, number>;

/** What a plan set was compiled with: the routed experts' GEMM tiles and the decode/prefill crossover. */
export interface CandidateParams {
  gateUp: TileParams;
  down: TileParams;
  decodeMaxTokens: number;
}

export interface LoadCandidate {
  /** Unique within the bundle: `c1`, `c2`, ... */
  id: string;
  params: CandidateParams;
  plans: Record<string, unknown>;
  planTemplates: unknown[];
  model?: StoredModelPlan;
}

export interface LoadCandidates {
  /** The MoE layer timed (its block, on random weights of its shapes). */
  layer: number;
  /** The token count the prefill tiles are timed at. */
  prefillTokens: number;
  /** What the default plans were compiled with. */
  default: CandidateParams;
  sets: LoadCandidate[];
}

/** `gate/up 16x64x16 4x4 kvec4, down ..., decode <= 8` for reports. */
export function describeParams(p: CandidateParams): string {
  const tile = (t: TileParams): string => `${t['bm']}x${t['bn']}x${t['bk']} ${t['tm']}x${t['tn']}${t['kvec'] === 4 ? ' kvec4' : ''}${t['direct'] === 1 ? ' direct' : ''}`;
  return `gate/up ${tile(p.gateUp)}, down ${tile(p.down)}, decode <= ${p.decodeMaxTokens}`;
}

export const sameTiles = (a: CandidateParams, b: CandidateParams): boolean => JSON.stringify([a.gateUp, a.down]) === JSON.stringify([b.gateUp, b.down]);

/**
 * 16 hex digits naming this bundle's candidates: the spec's sha256 and every set (params, plans,
 * kernel ids, which are content hashes), so a choice stored for other kernels is never reused.
 */
export function candidatesHash(specSha256: string, candidates: LoadCandidates): string {
  const text = JSON.stringify([specSha256, candidates]);
  return fnv1a(text) + fnv1a(text, 0x9e3779b9);
}
