// SonicMoE token rounding, the reference (../shared/moe-reference.md, "Token rounding"): after
// top-k routing, move every expert's token count f_e to a multiple of the GEMM tile M by dropping
// its lowest-weight routed tokens or adding its most probable unrouted ones, so no tile is padded.
// The WGSL kernel (codegen/kernels/round-tokens/) must match this exactly.
//
// The score rule of the paper (a routed entry scores its weight, any other entry prob - 1) ranks
// every routed token above every unrouted one when weights >= 0 and probs <= 1. This code applies
// that ranking directly: an expert only drops routed tokens or only adds unrouted ones, never
// swaps, which also holds for relu_gate, whose probs can exceed 1.
import type { KindRef } from '../model-config.js';
import { sigmoid, softmax } from './math.js';

export type RoundingMode = 'nearest' | 'up' | 'down';

export interface RoundTokensInput {
  tokens: number;
  experts: number;
  topK: number;
  /** [T, K] expert per slot, -1 for an empty slot. */
  ids: ArrayLike<number>;
  /** [T, K] routing weight per slot (0 for an empty slot). */
  weights: ArrayLike<number>;
  /** [T, E] raw router probabilities (routerProbabilities); an added token's weight is its prob. */
  probs: ArrayLike<number>;
  mode: RoundingMode;
  tile: number;
}

export interface TokenRoundingStats {
  /** Sum over experts of ceil(count_e / M) * M, before and after rounding. */
  paddedRowsBefore: number;
  paddedRowsAfter: number;
  tokensDropped: number;
  tokensAdded: number;
  droppedWeight: number;
  addedWeight: number;
  /** Sum of all routed weights before rounding. */
  routedWeight: number;
  /** (droppedWeight + addedWeight) / routedWeight; 0 when nothing was routed. */
  weightMassChanged: number;
}

export interface RoundedRouting {
  /** [T, K]: the input slots, dropped ones set to id -1. */
  ids: Int32Array;
  /** [T, K]: the input weights, dropped ones set to 0. */
  weights: Float32Array;
  /** [E * (M - 1), 2] (token, expert), expert-major, ascending tokens; unused entries (-1, -1). */
  extraIds: Int32Array;
  /** [E * (M - 1)]: an added pair's router probability; 0 for unused entries. */
  extraWeights: Float32Array;
  stats: TokenRoundingStats;
}

/**
 * Each expert's raw router probability for one token's logits (x W^T + bias): softmax over the E
 * logits for softmax_topk (AdaMoE null experts are not experts and stay out of this softmax; no
 * scale, no group mask), topk_softmax and sparsemixer; sigmoid(logit) for sigmoid_topk (unbiased:
 * no correction bias); relu(logit) for relu_gate.
 */
export function routerProbabilities(router: KindRef, logits: Float64Array): Float64Array {
  switch (router.kind) {
    case 'softmax_topk':
    case 'topk_softmax':
    case 'sparsemixer':
      return softmax(logits);
    case 'sigmoid_topk':
      return logits.map(sigmoid);
    case 'relu_gate':
      return logits.map((l) => Math.max(l, 0));
    default:
      throw new Error(`token rounding has no raw probability for router ${router.kind} (known: softmax_topk, topk_softmax, sparsemixer, sigmoid_topk, relu_gate)`);
  }
}

/**
 * An expert's token count after rounding to a multiple of `tile`. Nearest rounds an exact half
 * up (our choice). Clamped to `tokens`: rounding up cannot add more tokens than the batch has.
 */
export function roundedTokenCount(count: number, tile: number, mode: RoundingMode, tokens: number): number {
  const multiples = mode === 'up' ? Math.ceil(count / tile) : mode === 'down' ? Math.floor(count / tile) : Math.floor((2 * count + tile) / (2 * tile));
  return Math.min(multiples * tile, tokens);
}

const paddedRows = (counts: number[], tile: number): number => counts.reduce((sum, c) => sum + Math.ceil(c / tile) * tile, 0);

export function roundTokens(input: RoundTokensInput): RoundedRouting {
  const { tokens, experts, topK, mode, tile } = input;
  if (!Number.isInteger(tile) || tile < 1) throw new Error(`token rounding: tile ${tile} must be a positive integer`);
  if (input.ids.length !== tokens * topK || input.weights.length !== tokens * topK) throw new Error(`token rounding: ids and weights must hold ${tokens} x ${topK} slots`);
  if (input.probs.length !== tokens * experts) throw new Error(`token rounding: probs must hold ${tokens} x ${experts} values`);
  const ids = Int32Array.from(input.ids);
  const weights = Float32Array.from(input.weights);
  const perExpert = tile - 1; // an expert drops or adds at most M - 1 tokens
  const extraIds = new Int32Array(experts * perExpert * 2).fill(-1);
  const extraWeights = new Float32Array(experts * perExpert);

  // slotOf[t * E + e]: the slot where token t chose expert e, or -1.
  const slotOf = new Int32Array(tokens * experts).fill(-1);
  const countsBefore = new Array<number>(experts).fill(0);
  let routedWeight = 0;
  for (let s = 0; s < tokens * topK; s++) {
    const e = ids[s]!;
    if (e === -1) continue;
    const t = Math.floor(s / topK);
    if (!Number.isInteger(e) || e < 0 || e >= experts) throw new Error(`token rounding: slot ${s} has expert id ${e}, expected -1..${experts - 1}`);
    if (slotOf[t * experts + e] !== -1) throw new Error(`token rounding: token ${t} chose expert ${e} twice`);
    slotOf[t * experts + e] = s;
    countsBefore[e]!++;
    routedWeight += weights[s]!;
  }

  const countsAfter = countsBefore.map((f) => roundedTokenCount(f, tile, mode, tokens));
  let [tokensDropped, tokensAdded, droppedWeight, addedWeight] = [0, 0, 0, 0];
  for (let e = 0; e < experts; e++) {
    const [f, target] = [countsBefore[e]!, countsAfter[e]!];
    const all = Array.from({ length: tokens }, (_, t) => t);
    if (target < f) {
      // Drop the lowest weights; among equal weights the higher token index goes, the lower one stays.
      const routed = all.filter((t) => slotOf[t * experts + e] !== -1).map((t) => slotOf[t * experts + e]!);
      routed.sort((a, b) => weights[a]! - weights[b]! || b - a);
      for (const s of routed.slice(0, f - target)) {
        droppedWeight += weights[s]!;
        ids[s] = -1;
        weights[s] = 0;
      }
      tokensDropped += f - target;
    } else if (target > f) {
      // Add the highest probabilities; among equal probabilities the lower token index first.
      const unrouted = all.filter((t) => slotOf[t * experts + e] === -1);
      unrouted.sort((a, b) => input.probs[b * experts + e]! - input.probs[a * experts + e]! || a - b);
      const added = unrouted.slice(0, target - f).sort((a, b) => a - b);
      if (added.length > perExpert) throw new Error(`token rounding: expert ${e} would add ${added.length} tokens, more than tile - 1 = ${perExpert}`);
      added.forEach((t, i) => {
        const entry = e * perExpert + i;
        extraIds[2 * entry] = t;
        extraIds[2 * entry + 1] = e;
        extraWeights[entry] = input.probs[t * experts + e]!;
        addedWeight += extraWeights[entry]!;
      });
      tokensAdded += added.length;
    }
  }

  const stats: TokenRoundingStats = {
    paddedRowsBefore: paddedRows(countsBefore, tile),
    paddedRowsAfter: paddedRows(countsAfter, tile),
    tokensDropped,
    tokensAdded,
    droppedWeight,
    addedWeight,
    routedWeight,
    weightMassChanged: routedWeight > 0 ? (droppedWeight + addedWeight) / routedWeight : 0,
  };
  return { ids, weights, extraIds, extraWeights, stats };
}

/**
 * The MoE output of a rounded routing, [T, hidden] in float64: per token, its kept slots in k
 * order, then its added experts in ascending expert order, each weight * expertOutput(t, e).
 */
export function mixRoundedExperts(
  routing: Pick<RoundedRouting, 'ids' | 'weights' | 'extraIds' | 'extraWeights'>,
  shape: { tokens: number; topK: number; hidden: number },
  expertOutput: (token: number, expert: number) => ArrayLike<number>,
): Float64Array {
  const { tokens, topK, hidden } = shape;
  const y = new Float64Array(tokens * hidden);
  const accumulate = (t: number, e: number, w: number): void => {
    const out = expertOutput(t, e);
    for (let h = 0; h < hidden; h++) y[t * hidden + h]! += w * out[h]!;
  };
  for (let s = 0; s < tokens * topK; s++) {
    if (routing.ids[s]! !== -1) accumulate(Math.floor(s / topK), routing.ids[s]!, routing.weights[s]!);
  }
  // Extras are expert-major, so each token meets its added experts in ascending expert order.
  for (let i = 0; i < routing.extraWeights.length; i++) {
    const [t, e] = [routing.extraIds[2 * i]!, routing.extraIds[2 * i + 1]!];
    if (t !== -1) accumulate(t, e, routing.extraWeights[i]!);
  }
  return y;
}
