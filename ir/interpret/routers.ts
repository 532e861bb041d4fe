// The router kinds of compiler/spec/kinds/routers.ts, one function each, with the semantics of
// shared/moe-reference.md. A router sees one token's float64 logits (x W^T + bias) and returns
// top_k (expert id, weight) slots; id -1 with weight 0 marks an empty slot. Ties in every
// ranking go to the lower index. `moe.route` (runRoute) applies the router to every token.
import { boolParam, numParam, type KindRef } from '../model-config.js';
import { dim, floats, kindAttr, numAttr, optionalFloats, type HostTensor, type OpCall } from './host-tensor.js';
import { dot, sigmoid, softmax } from './math.js';
import { routerProbabilities } from './token-rounding.js';

export interface RouterInput {
  /** x W^T (+ router bias) for one token, one per expert, accumulated in float64. */
  logits: Float64Array;
  /** The router's e_score_correction_bias input, when it has one (sigmoid_topk). */
  correctionBias?: Float32Array;
  topK: number;
  router: KindRef;
}

/** top_k slots, best first: ids (-1 = empty) and weights (0 for an empty slot). */
export interface TokenRoute {
  ids: number[];
  weights: number[];
}

export type RouterImplementation = (input: RouterInput) => TokenRoute;

/** Indices of the k highest scores, best first, ties to the lower index; `allowed` filters candidates. */
export function topKIndices(scores: ArrayLike<number>, k: number, allowed: (i: number) => boolean = () => true): number[] {
  const candidates = Array.from({ length: scores.length }, (_, i) => i).filter(allowed);
  candidates.sort((a, b) => (scores[a]! > scores[b]! ? -1 : scores[a]! < scores[b]! ? 1 : a - b));
  return candidates.slice(0, k);
}

/**
 * Group-limited selection (DeepSeek): experts split into `groups` equal consecutive groups, each
 * scored by `groupScore` over its members' scores; returns which experts lie in the
 * `topk_groups` best groups.
 */
function keptByGroup(scores: ArrayLike<number>, router: KindRef, topK: number, groupScore: (members: number[]) => number): (e: number) => boolean {
  const groups = numParam(router, 'groups');
  const keep = numParam(router, 'topk_groups') || groups;
  const size = scores.length / groups;
  if (!Number.isInteger(size)) throw new Error(`${router.kind}: ${scores.length} experts cannot be split into ${groups} equal groups`);
  if (keep * size < topK) throw new Error(`${router.kind}: top_k = ${topK} cannot be chosen from ${keep} groups of ${size} experts`);
  const groupScores = Array.from({ length: groups }, (_, g) => groupScore(Array.from({ length: size }, (_, i) => scores[g * size + i]!)));
  const kept = new Set(topKIndices(groupScores, keep));
  return (e) => kept.has(Math.floor(e / size));
}

function sumOfTopTwo(members: number[]): number {
  return topKIndices(members, 2).reduce((s, i) => s + members[i]!, 0);
}

/**
 * Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V2, AdaMoE: softmax over all experts, top-k (within the
 * groups whose best probability is highest when groups > 1), renormalized iff `renormalize`, times `scale`.
 * Null experts (AdaMoE): the IR router weight is [E, H], so the N null experts are given logit 0;
 * they join the softmax and the top-k as experts E..E+N-1 and renormalization sums all k chosen
 * weights, then a chosen null expert's slot becomes id -1, weight 0.
 */
function softmaxTopk({ logits, topK, router }: RouterInput): TokenRoute {
  const experts = logits.length;
  const nulls = numParam(router, 'null_experts');
  const probs = softmax([...logits, ...new Array<number>(nulls).fill(0)]);
  let allowed: ((e: number) => boolean) | undefined;
  if (numParam(router, 'groups') > 1) {
    if (nulls > 0) throw new Error('softmax_topk: null_experts with groups > 1 is not defined (null experts belong to no group)');
    allowed = keptByGroup(probs, router, topK, (members) => Math.max(...members));
  }
  const chosen = topKIndices(probs, topK, allowed);
  const sum = chosen.reduce((s, e) => s + probs[e]!, 0);
  const norm = boolParam(router, 'renormalize') ? sum : 1;
  const scale = numParam(router, 'scale');
  return {
    ids: chosen.map((e) => (e < experts ? e : -1)),
    weights: chosen.map((e) => (e < experts ? (probs[e]! / norm) * scale : 0)),
  };
}

/**
 * DeepSeek-V3: s = sigmoid(logits); selection on s + correction_bias (group score = sum of the two
 * best biased scores in the group); weights are the unbiased s, divided by (sum + 1e-20) iff
 * `renormalize`, times `scale`. Experts outside the kept groups can never be chosen (vLLM masks
 * them to -inf; HF's fill with 0.0 differs only when biased scores go negative).
 */
function sigmoidTopk({ logits, correctionBias, topK, router }: RouterInput): TokenRoute {
  if (boolParam(router, 'correction_bias') && !correctionBias) throw new Error('sigmoid_topk: correction_bias = true but the op has no correction_bias input');
  const s = logits.map(sigmoid);
  const biased = s.map((v, e) => v + (correctionBias ? correctionBias[e]! : 0));
  const allowed = numParam(router, 'groups') > 1 ? keptByGroup(biased, router, topK, sumOfTopTwo) : undefined;
  const chosen = topKIndices(biased, topK, allowed);
  const sum = chosen.reduce((acc, e) => acc + s[e]!, 0);
  const norm = boolParam(router, 'renormalize') ? sum + 1e-20 : 1;
  const scale = numParam(router, 'scale');
  return { ids: chosen, weights: chosen.map((e) => (s[e]! / norm) * scale) };
}

/** gpt-oss: top-k on the raw logits (bias already added), softmax over the k chosen. */
function topkSoftmax({ logits, topK }: RouterInput): TokenRoute {
  const chosen = topKIndices(logits, topK);
  const probs = softmax(chosen.map((e) => logits[e]!));
  return { ids: chosen, weights: Array.from(probs) };
}

/**
 * PhiMoE sparsemixer, inference path. `candidates` are the scores still in play (-Infinity for an
 * expert already taken); `best` is their argmax m. An expert is masked out where
 * (m - s) / max(|s|, m) > 2 * jitter_eps, with s the original logit; the weight is best's
 * probability in the softmax of what is left.
 */
function sparsemixerChoice(candidates: Float64Array, logits: Float64Array, jitterEps: number): { id: number; weight: number } {
  const best = topKIndices(candidates, 1)[0]!;
  const m = candidates[best]!;
  const masked = candidates.map((c, e) => ((m - logits[e]!) / Math.max(Math.abs(logits[e]!), m) > 2 * jitterEps ? -Infinity : c));
  return { id: best, weight: softmax(masked)[best]! };
}

function sparsemixer({ logits, topK, router }: RouterInput): TokenRoute {
  if (topK !== 2) throw new Error(`sparsemixer routes exactly 2 experts per token, not top_k = ${topK}`);
  if (logits.length < 2) throw new Error('sparsemixer needs at least 2 experts');
  const jitterEps = numParam(router, 'jitter_eps');
  const first = sparsemixerChoice(logits, logits, jitterEps);
  const rest = Float64Array.from(logits);
  rest[first.id] = -Infinity;
  const second = sparsemixerChoice(rest, logits, jitterEps);
  return { ids: [first.id, second.id], weights: [first.weight, second.weight] };
}

/** ReMoE: p = relu(logits); the (at most top_k) largest positive p, weighted by p; the rest empty. */
function reluGate({ logits, topK }: RouterInput): TokenRoute {
  const p = logits.map((l) => Math.max(l, 0));
  const chosen = topKIndices(p, topK, (e) => p[e]! > 0);
  const empty = topK - chosen.length;
  return { ids: [...chosen, ...new Array<number>(empty).fill(-1)], weights: [...chosen.map((e) => p[e]!), ...new Array<number>(empty).fill(0)] };
}

/** Router kind name -> implementation. A plugin's registry adds its router kinds to a copy. */
export const routerImplementations: Readonly<Record<string, RouterImplementation>> = {
  softmax_topk: softmaxTopk,
  sigmoid_topk: sigmoidTopk,
  topk_softmax: topkSoftmax,
  sparsemixer,
  relu_gate: reluGate,
};

/** `moe.route`: logits = x W^T (+ bias) in float64 per token, then the router kind; ids [T, K] i32, weights [T, K] f32. */
export function runRoute(call: OpCall): HostTensor[] {
  const router = kindAttr(call, 'router');
  const route = call.semantics.routers[router.kind];
  if (!route) throw new Error(`the reference interpreter has no router ${router.kind} (known: ${Object.keys(call.semantics.routers).join(', ')}); a plugin adds one`);
  const topK = numAttr(call, 'top_k');
  const x = floats(call, 'x');
  const [tokens, hidden] = [dim(call, 'x', 0), dim(call, 'x', 1)];
  const w = floats(call, 'weight');
  const experts = dim(call, 'weight', 0);
  const bias = optionalFloats(call, 'bias');
  const correctionBias = optionalFloats(call, 'correction_bias');
  const ids = new Int32Array(tokens * topK);
  const weights = new Float32Array(tokens * topK);
  const probs = call.attrs['probs'] === true ? new Float32Array(tokens * experts) : undefined;
  for (let t = 0; t < tokens; t++) {
    const logits = new Float64Array(experts);
    for (let e = 0; e < experts; e++) logits[e] = dot(x, t * hidden, w, e * hidden, hidden) + (bias ? bias[e]! : 0);
    probs?.set(routerProbabilities(router, logits), t * experts);
    const routed = route({ logits, correctionBias, topK, router });
    checkRoute(routed, router.kind, t, topK, experts);
    ids.set(routed.ids, t * topK);
    weights.set(routed.weights, t * topK);
  }
  // Under mixed precision the experts are stored ordered by format (passes/group-experts-by-format.ts):
  // the router writes each chosen expert's position there. Null experts (-1) stay -1.
  const order = call.attrs['expert_order'] as number[] | undefined;
  if (order) ids.forEach((e, i) => (ids[i] = e >= 0 ? order[e]! : e));
  const routing: HostTensor[] = [{ shape: [tokens, topK], data: ids }, { shape: [tokens, topK], data: weights }];
  return probs ? [...routing, { shape: [tokens, experts], data: probs }] : routing;
}

function checkRoute(routed: TokenRoute, kind: string, token: number, topK: number, experts: number): void {
  const where = `router ${kind}, token ${token}`;
  if (routed.ids.length !== topK || routed.weights.length !== topK) throw new Error(`${where}: returned ${routed.ids.length} ids and ${routed.weights.length} weights, top_k is ${topK}`);
  routed.ids.forEach((e, k) => {
    if (!Number.isInteger(e) || e < -1 || e >= experts) throw new Error(`${where}: slot ${k} has expert id ${e}, expected -1..${experts - 1}`);
    if (e === -1 && routed.weights[k] !== 0) throw new Error(`${where}: empty slot ${k} has weight ${routed.weights[k]}, expected 0`);
  });
}
