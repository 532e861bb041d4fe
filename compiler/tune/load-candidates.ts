// What `load({ tune: 'first-load' })` may choose among, decided at compile time (the runtime cannot
// render kernels): a few grouped-GEMM tile pairs for the prefill path, taken from the head of the
// tuner's search space for this block's shapes under WebGPU's default limits, and optionally lower
// decode/prefill crossovers, each offered with every tile pair (the load-time tuner picks the tiles
// first, then the crossover among the sets with those tiles).
import { moeLayerIndices, type ModelConfig } from '../../ir/model-config.js';
import { normalTile, type GemmTile } from '../../ir/ops-lowered.js';
import { expertGemmTilesOf, type ExpertGemmTiles, type TargetDescription } from '../../ir/target.js';
import { DEFAULT_LIMITS } from '../../runtime/device.js';
import { DEFAULT_LOAD_CANDIDATES, DEFAULT_LOAD_PREFILL_TOKENS, type CandidateParams } from '../../runtime/tuning/load-candidates.js';
import { compileMoeBlock, planTarget, type PlanOptions } from '../moe-block-plan.js';
import { blockDims, familyShapes } from './family-shapes.js';
import { gemmTileCandidates, gemmTileParams, type GemmProblem } from './search-space.js';

export interface LoadCandidateOptions {
  /** Tile pairs besides the default (0: none). */
  count: number;
  /** Decode/prefill crossovers below the default to offer too, each with every tile pair (ignored under sonic rounding, where the paths round differently). */
  crossovers?: readonly number[];
  /** The prefill token count the tiles are chosen for and timed at (default 256). */
  prefillTokens?: number;
  /** Instead of the search space (tests): the tile pairs. */
  tiles?: readonly ExpertGemmTiles[];
}

export interface LoadCandidateTarget {
  id: string;
  params: CandidateParams;
  /** Target overrides the set is compiled with. */
  target: Partial<TargetDescription>;
}

export interface LoadCandidatePlan {
  layer: number;
  prefillTokens: number;
  default: CandidateParams;
  targets: LoadCandidateTarget[];
}

export { DEFAULT_LOAD_CANDIDATES, DEFAULT_LOAD_PREFILL_TOKENS };

const paramsOf = (tiles: ExpertGemmTiles, decodeMaxTokens: number): CandidateParams =>
  ({ gateUp: gemmTileParams(tiles.gateUp), down: gemmTileParams(tiles.down), decodeMaxTokens });

/** The tile pairs most likely to beat the default: gate/up from the search space's head, down its first pick with the same bm. */
function searchedTilePairs(config: ModelConfig, layer: number, plan: PlanOptions, count: number, prefillTokens: number): ExpertGemmTiles[] {
  const base = planTarget(plan);
  const dims = blockDims(compileMoeBlock(config, layer, plan).plan);
  const limits = { ...DEFAULT_LIMITS, maxStorageBufferBindingSize: base.limits.maxStorageBufferBindingSize };
  // Sonic rounding pads experts to its own tile: the GEMMs' bm stays the default's.
  const fixedBm = config.compile.tokenRounding.kind === 'sonic' ? base.gemmTile.bm : undefined;
  const problem = (gateup: boolean, bm?: number): GemmProblem => ({
    kdim: gateup ? dims.hidden : dims.intermediate, ndim: gateup ? dims.intermediate : dims.hidden, gateup,
    rowsPerExpert: (prefillTokens * dims.topK) / dims.experts, limits, ...(bm !== undefined ? { bm } : {}),
  });
  const gateUps = gemmTileCandidates(problem(true, fixedBm), base.gemmTile, count + 1).slice(1);
  return gateUps.map((gateUp) => {
    const baseDown: GemmTile = { ...base.gemmTile, bm: gateUp.bm };
    return { gateUp, down: gemmTileCandidates(problem(false, gateUp.bm), baseDown, 2)[1] ?? normalTile(baseDown) };
  });
}

/** The candidate sets for this spec's bundle (none without a MoE layer or with count 0). */
export function loadCandidateTargets(config: ModelConfig, plan: PlanOptions, options: LoadCandidateOptions): LoadCandidatePlan | undefined {
  const layer = moeLayerIndices(config)[0];
  if (layer === undefined || (options.count <= 0 && !options.tiles?.length)) return undefined;
  const base = planTarget(plan);
  const prefillTokens = options.prefillTokens ?? DEFAULT_LOAD_PREFILL_TOKENS;
  const defaultTiles = expertGemmTilesOf(base);
  const bound = base.decodeMaxTokens;
  const pairs = options.tiles ?? searchedTilePairs(config, layer, plan, options.count, prefillTokens);
  const hasCrossover = familyShapes(compileMoeBlock(config, layer, plan).plan).some((f) => f.family === 'decode_max_tokens');
  const crossovers = config.compile.tokenRounding.kind === 'sonic' || !hasCrossover ? []
    : [...new Set(options.crossovers ?? [])].filter((b) => Number.isInteger(b) && b >= 1 && b < bound).sort((a, b) => a - b);
  const seen = new Set([JSON.stringify(paramsOf(defaultTiles, bound))]);
  const targets: LoadCandidateTarget[] = [];
  for (const tiles of [defaultTiles, ...pairs]) {
    for (const decodeMaxTokens of [bound, ...crossovers]) {
      const params = paramsOf(tiles, decodeMaxTokens);
      if (seen.has(JSON.stringify(params))) continue;
      seen.add(JSON.stringify(params));
      targets.push({ id: `c${targets.length + 1}`, params, target: { expertGemmTiles: { gateUp: normalTile(tiles.gateUp), down: normalTile(tiles.down) }, decodeMaxTokens } });
    }
  }
  return targets.length ? { layer, prefillTokens, default: paramsOf(defaultTiles, bound), targets } : undefined;
}
