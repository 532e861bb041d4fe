// SonicMoE token rounding on the GPU (see round-tokens.wgsl.hbs): `decide` over grid (E, 1, 1),
// then `apply` over grid (1, 1, 1), both from one module with the same Params uniform.
import type { RoundingMode } from '../../../ir/interpret/token-rounding.js';
import { declareBindings, f32Array, i32Array, u32Array, type KernelBinding, type RenderedKernel } from '../kernel.js';
import { renderTemplate } from '../template.js';

export interface RoundTokensShape {
  experts: number;
  topK: number;
  /** M: every expert's count is moved to a multiple of it (or to the token count). */
  tile: number;
  mode: RoundingMode;
}

const WORKGROUP = 256;
export const ROUND_MAX_EXPERTS = 1024;
const MODE_CODE: Record<RoundingMode, number> = { nearest: 0, up: 1, down: 2 };

/** Words of the `round_stats` output: 4 u32 counts, then 4 f32 (see the template's header). */
export const ROUND_STATS_WORDS = 8;

/** Words of `round_scratch`: E (M - 1) dropped slots, then 5 stats words per expert. */
export function roundScratchWords(experts: number, tile: number): number {
  return experts * (tile - 1) + 5 * experts;
}

/** Entries of `extra_weights` (and pairs of `extra_ids`): M - 1 per expert. */
export function roundExtraEntries(experts: number, tile: number): number {
  return experts * (tile - 1);
}

export interface RoundTokensKernels {
  /** Grid (E, 1, 1). Reads route_ids, route_weights, probs; writes extra_ids, extra_weights, round_scratch. */
  decide: RenderedKernel;
  /** Grid (1, 1, 1), after decide. Writes the drops into route_ids / route_weights, and round_stats. */
  apply: RenderedKernel;
}

export function renderRoundTokensKernels(shape: RoundTokensShape): RoundTokensKernels {
  const { experts, topK, tile, mode } = shape;
  if (experts > ROUND_MAX_EXPERTS) throw new Error(`token rounding handles at most ${ROUND_MAX_EXPERTS} experts, not ${experts}`);
  if (!Number.isInteger(tile) || tile < 1) throw new Error(`token rounding: tile ${tile} must be a positive integer`);
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'route_ids', access: 'read_write', type: i32Array },
    { name: 'route_weights', access: 'read_write', type: f32Array },
    { name: 'probs', access: 'read', type: f32Array },
    { name: 'extra_ids', access: 'read_write', type: i32Array },
    { name: 'extra_weights', access: 'read_write', type: f32Array },
    { name: 'round_scratch', access: 'read_write', type: u32Array },
    { name: 'round_stats', access: 'read_write', type: u32Array },
  ]);
  const wgsl = renderTemplate('round-tokens/round-tokens.wgsl.hbs', {
    header,
    experts,
    topK,
    tile,
    perExpert: tile - 1,
    mode: MODE_CODE[mode],
    workgroupSize: WORKGROUP,
  });
  // A pipeline with layout 'auto' binds only what its entry point uses, so each lists its own.
  const only = (names: string[]): KernelBinding[] => bindings.filter((b) => names.includes(b.name));
  const kernel = (entryPoint: string, names: string[]): RenderedKernel => ({
    name: `round_tokens_${entryPoint}`,
    wgsl,
    entryPoint,
    workgroupSize: [WORKGROUP, 1, 1],
    bindings: only(names),
    uniformBinding,
  });
  return {
    decide: kernel('decide', ['route_ids', 'route_weights', 'probs', 'extra_ids', 'extra_weights', 'round_scratch']),
    apply: kernel('apply', ['route_ids', 'route_weights', 'round_scratch', 'round_stats']),
  };
}
