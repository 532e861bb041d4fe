// Router kinds of the reference interpreter on hand-computed cases. Each token's logits are
// written down directly (see `route` in interpret-helpers.ts); ln values make the softmax exact:
// softmax(ln a_i) = a_i / sum(a). sigmoid(ln(p / (1 - p))) = p likewise.
import { describe, expect, test } from 'vitest';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import { activationImplementations, builtinSemantics, routerImplementations, type RouterImplementation, type Semantics } from '../../ir/interpret/interpret.js';
import { expectRowsClose, kind, route } from './interpret-helpers.js';

const ln = Math.log;
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const router = (name: string, params = {}) => kind('router', name, params);

test('every built-in router and activation kind has a reference implementation', () => {
  expect(defaultRegistry.list('router').map((k) => k.name).filter((n) => !routerImplementations[n])).toEqual([]);
  expect(defaultRegistry.list('activation').map((k) => k.name).filter((n) => !activationImplementations[n])).toEqual([]);
});

describe('softmax_topk', () => {
  // token 0: probs [.1, .2, .3, .4] -> top-2 = experts 3, 2 (.4, .3); renormalized .4/.7, .3/.7.
  // token 1: probs [.4, .1, .4, .1] -> experts 0 and 2 tie at .4: the lower index goes first.
  const logits = [[ln(1), ln(2), ln(3), ln(4)], [ln(4), ln(1), ln(4), ln(1)]];

  test('top-k of the softmax, renormalized (Mixtral)', () => {
    const r = route(router('softmax_topk'), 2, logits);
    expect(r.ids).toEqual([[3, 2], [0, 2]]);
    expectRowsClose(r.weights, [[4 / 7, 3 / 7], [0.5, 0.5]]);
  });

  test('without renormalization the weights are the softmax probabilities (OLMoE, Qwen norm_topk_prob = false)', () => {
    const r = route(router('softmax_topk', { renormalize: false }), 2, logits);
    expect(r.ids).toEqual([[3, 2], [0, 2]]);
    expectRowsClose(r.weights, [[0.4, 0.3], [0.4, 0.4]]);
  });

  test('scale multiplies the final weights (DeepSeek routed_scaling_factor)', () => {
    const r = route(router('softmax_topk', { renormalize: false, scale: 2.5 }), 2, logits);
    expectRowsClose(r.weights, [[1.0, 0.75], [1.0, 1.0]]);
    const renormalized = route(router('softmax_topk', { scale: 2.5 }), 2, logits);
    expectRowsClose(renormalized.weights, [[2.5 * 4 / 7, 2.5 * 3 / 7], [1.25, 1.25]]);
  });

  test('the router bias is added to the logits', () => {
    // logits 0 + bias ln[1, 2, 3, 4] = token 0 above.
    const r = route(router('softmax_topk', { bias: true }), 2, [[0, 0, 0, 0]], { bias: [ln(1), ln(2), ln(3), ln(4)] });
    expect(r.ids).toEqual([[3, 2]]);
    expectRowsClose(r.weights, [[4 / 7, 3 / 7]]);
  });

  test('group-limited selection keeps the groups with the best single expert (DeepSeek-V2)', () => {
    // groups {0, 1} and {2, 3}; keep 1 group.
    // token 0: probs [4, 1, 3, 3] / 11. Plain top-2: experts 0, 2. Group score = max: g0 = 4/11 > g1 = 3/11
    //   (a sum of the top two would pick g1: 6 > 5), so experts 0, 1: renormalized 4/5, 1/5.
    // token 1: probs [2, 3, 1, 4] / 10. Plain top-2: experts 3, 1. g0 = .3 < g1 = .4, so experts 3, 2: 4/5, 1/5.
    const grouped = [[ln(4), ln(1), ln(3), ln(3)], [ln(2), ln(3), ln(1), ln(4)]];
    expect(route(router('softmax_topk'), 2, grouped).ids).toEqual([[0, 2], [3, 1]]);
    const r = route(router('softmax_topk', { groups: 2, topk_groups: 1 }), 2, grouped);
    expect(r.ids).toEqual([[0, 1], [3, 2]]);
    expectRowsClose(r.weights, [[0.8, 0.2], [0.8, 0.2]]);
    // Not renormalized, scale 2: 2 * 4/11, 2 * 1/11 and 2 * .4, 2 * .1.
    const scaled = route(router('softmax_topk', { groups: 2, topk_groups: 1, renormalize: false, scale: 2 }), 2, grouped);
    expectRowsClose(scaled.weights, [[8 / 11, 2 / 11], [0.8, 0.2]]);
    // Keeping both groups is plain top-k.
    expect(route(router('softmax_topk', { groups: 2, topk_groups: 2 }), 2, grouped).ids).toEqual([[0, 2], [3, 1]]);
  });

  test('null experts (AdaMoE) have logit 0, take part in the softmax, top-k and renormalization, and leave an empty slot', () => {
    // 4 real experts + 2 null ones (logit 0, exp = 1).
    // token 0: exps [2, .5, 3, .25 | 1, 1], sum 7.75: experts 2, 0 -> renormalized 3/5, 2/5.
    // token 1: exps [.5, 2, .25, .25 | 1, 1], sum 5: expert 1 then null expert 4 -> 2/3, 1/3, and the null slot is (-1, 0).
    // token 2: exps [.5, .5, .5, .5 | 1, 1]: both null -> no expert at all.
    // token 3: exps [1, .5, .5, .5 | 1, 1]: expert 0 ties the null experts and wins on the lower index; 1/2, then empty.
    const logits = [[ln(2), ln(0.5), ln(3), ln(0.25)], [ln(0.5), ln(2), ln(0.25), ln(0.25)], [ln(0.5), ln(0.5), ln(0.5), ln(0.5)], [0, ln(0.5), ln(0.5), ln(0.5)]];
    const r = route(router('softmax_topk', { null_experts: 2 }), 2, logits);
    expect(r.ids).toEqual([[2, 0], [1, -1], [-1, -1], [0, -1]]);
    expectRowsClose(r.weights, [[0.6, 0.4], [2 / 3, 0], [0, 0], [0.5, 0]]);
    // Not renormalized: the plain probabilities 3/7.75, 2/7.75; 2/5; -; 1/4.5.
    const plain = route(router('softmax_topk', { null_experts: 2, renormalize: false }), 2, logits);
    expectRowsClose(plain.weights, [[3 / 7.75, 2 / 7.75], [0.4, 0], [0, 0], [1 / 4.5, 0]]);
  });

  test('null experts with groups are rejected', () => {
    expect(() => route(router('softmax_topk', { null_experts: 1, groups: 2, topk_groups: 1 }), 2, [[0, 0, 0, 0]])).toThrow(/null_experts with groups > 1 is not defined/);
  });
});

describe('sigmoid_topk', () => {
  // logits [ln 3, 0, ln 1/3, ln 4] -> s = [.75, .5, .25, .8].
  const logits = [[ln(3), 0, ln(1 / 3), ln(4)]];

  test('without correction bias: top-2 on s, renormalized', () => {
    const r = route(router('sigmoid_topk'), 2, logits, { correctionBias: [0, 0, 0, 0] });
    expect(r.ids).toEqual([[3, 0]]);
    expectRowsClose(r.weights, [[0.8 / 1.55, 0.75 / 1.55]]);
  });

  test('the correction bias changes the choice but not the weights', () => {
    // biased = s + [0, 0, .6, -.1] = [.75, .5, .85, .7] -> experts 2, 0; weights from the unbiased s: .25, .75 (sum 1).
    const r = route(router('sigmoid_topk'), 2, logits, { correctionBias: [0, 0, 0.6, -0.1] });
    expect(r.ids).toEqual([[2, 0]]);
    expectRowsClose(r.weights, [[0.25, 0.75]]);
    const scaled = route(router('sigmoid_topk', { renormalize: false, scale: 2 }), 2, logits, { correctionBias: [0, 0, 0.6, -0.1] });
    expectRowsClose(scaled.weights, [[0.5, 1.5]]);
  });

  test('without a correction_bias input it selects on s alone', () => {
    const r = route(router('sigmoid_topk', { correction_bias: false, renormalize: false }), 2, logits);
    expect(r.ids).toEqual([[3, 0]]);
    expectRowsClose(r.weights, [[0.8, 0.75]]);
  });

  test('group-limited selection scores a group by the sum of its two best biased scores (DeepSeek-V3)', () => {
    // groups {0, 1}, {2, 3}; keep 1; correction bias [0, 0, .1, .2].
    // token 0: s = [.8, .25, .75, .5], biased [.8, .25, .85, .7]: g0 = 1.05, g1 = 1.55 -> experts 2, 3
    //   (plain top-2 on the biased scores would be 2, 0);
    //   weights from s: .75, .5 -> renormalized .6, .4, times scale 2.5 -> 1.5, 1.
    // token 1: s = [.8, .8, .75, .75], biased [.8, .8, .85, .95]: g0 = 1.6 < g1 = 1.8 -> experts 3, 2;
    //   .75, .75 -> .5, .5 -> 1.25, 1.25. Without the bias g0 = 1.6 > 1.5 keeps experts 0, 1 instead.
    const grouped = [[ln(4), ln(1 / 3), ln(3), 0], [ln(4), ln(4), ln(3), ln(3)]];
    const kindWithGroups = router('sigmoid_topk', { groups: 2, topk_groups: 1, scale: 2.5 });
    const r = route(kindWithGroups, 2, grouped, { correctionBias: [0, 0, 0.1, 0.2] });
    expect(r.ids).toEqual([[2, 3], [3, 2]]);
    expectRowsClose(r.weights, [[1.5, 1.0], [1.25, 1.25]]);
    const unbiased = route(kindWithGroups, 2, grouped, { correctionBias: [0, 0, 0, 0] });
    expect(unbiased.ids).toEqual([[2, 3], [0, 1]]);
    expectRowsClose(unbiased.weights, [[1.5, 1.0], [1.25, 1.25]]);
  });

  test('a group score uses the top two, not the max: the group with the single best expert can lose', () => {
    // s = [.8, .25, .75, .75] (no bias): g0 = 1.05, g1 = 1.5 -> experts 2, 3 although expert 0 is the best.
    const r = route(router('sigmoid_topk', { groups: 2, topk_groups: 1, correction_bias: false }), 2, [[ln(4), ln(1 / 3), ln(3), ln(3)]]);
    expect(r.ids).toEqual([[2, 3]]);
    expectRowsClose(r.weights, [[0.5, 0.5]]);
  });
});

describe('topk_softmax', () => {
  test('top-k on the raw logits plus bias, softmax over the chosen k only (gpt-oss)', () => {
    // token 0: [1, 3, 2, 0] + bias [0, -1, .5, .2] = [1, 2, 2.5, .2] -> experts 2, 1; softmax of [2.5, 2] = sigmoid(.5), sigmoid(-.5).
    // token 1: [5, 5, 5, 5] + bias = [5, 4, 5.5, 5.2] -> experts 2, 3; sigmoid(.3), sigmoid(-.3).
    const bias = [0, -1, 0.5, 0.2];
    const r = route(router('topk_softmax'), 2, [[1, 3, 2, 0], [5, 5, 5, 5]], { bias });
    expect(r.ids).toEqual([[2, 1], [2, 3]]);
    expectRowsClose(r.weights, [[sigmoid(0.5), sigmoid(-0.5)], [sigmoid(0.3), sigmoid(-0.3)]]);
    // Without the bias token 0 picks experts 1, 2: softmax of [3, 2].
    const unbiased = route(router('topk_softmax'), 2, [[1, 3, 2, 0]], { bias: [0, 0, 0, 0] });
    expect(unbiased.ids).toEqual([[1, 2]]);
    expectRowsClose(unbiased.weights, [[sigmoid(1), sigmoid(-1)]]);
  });
});

describe('sparsemixer', () => {
  test('masked softmax for each of the two choices (PhiMoE inference)', () => {
    // jitter_eps = .01, so an expert is masked where (m - s) / max(|s|, m) > .02.
    // token 0: [1, .99, .5, .975]. First: m = 1 (expert 0); .99 is within .01, .5 and .975 (.025) are masked:
    //   softmax of [1, .99] -> sigmoid(.01). Second: expert 0 out, m = .99 (expert 1); .975 is within
    //   .015 / .99 = .01515 and kept, .5 masked: softmax of [.99, .975] -> sigmoid(.015).
    // token 1: [-1, 2, 1, 0]. First: m = 2, every other relative gap is >= .5: weight 1. Second: m = 1
    //   (expert 2), 0 and -1 are masked (gaps 1 and 2): weight 1.
    // token 2: [-1, -2, -1.01, -3], a negative best: factor = max(|s|, m) = |s|. First: m = -1 (expert 0);
    //   -1.01 is within .01 / 1.01, the rest masked: sigmoid(.01). Second: m = -1.01 (expert 2); -2 (.99 / 2)
    //   and -3 masked, expert 0 stays out although its gap is negative: weight 1.
    const r = route(router('sparsemixer'), 2, [[1, 0.99, 0.5, 0.975], [-1, 2, 1, 0], [-1, -2, -1.01, -3]]);
    expect(r.ids).toEqual([[0, 1], [1, 2], [0, 2]]);
    expectRowsClose(r.weights, [[sigmoid(0.01), sigmoid(0.015)], [1, 1], [sigmoid(0.01), 1]]);
  });

  test('a wider jitter_eps lets more experts into the softmax', () => {
    // jitter_eps = .3 (window .6): token [1, .99, .5, .975] keeps all four for the first choice:
    //   e^1 / (e^1 + e^.99 + e^.5 + e^.975). Second: m = .99, (.99 - .5) / .99 = .495 <= .6, all three kept.
    const r = route(router('sparsemixer', { jitter_eps: 0.3 }), 2, [[1, 0.99, 0.5, 0.975]]);
    const e = [1, 0.99, 0.5, 0.975].map(Math.exp);
    expect(r.ids).toEqual([[0, 1]]);
    expectRowsClose(r.weights, [[e[0]! / (e[0]! + e[1]! + e[2]! + e[3]!), e[1]! / (e[1]! + e[2]! + e[3]!)]]);
  });

  test('needs top_k = 2', () => {
    expect(() => route(router('sparsemixer'), 3, [[1, 2, 3, 4]])).toThrow(/sparsemixer routes exactly 2 experts per token, not top_k = 3/);
  });
});

describe('relu_gate', () => {
  test('keeps the (at most top_k) largest positive relu(logits), weighted by them; a variable number of experts per token (ReMoE)', () => {
    // token 0: relu [.5, 0, 2, 0] -> experts 2, 0 and one empty slot.
    // token 1: relu [1, 3, 2, 4] -> the top 3: experts 3, 1, 2 (expert 0 is positive but capped by top_k).
    // token 2: every logit negative -> no expert.
    const r = route(router('relu_gate'), 3, [[0.5, -1, 2, 0], [1, 3, 2, 4], [-1, -2, -0.5, -3]]);
    expect(r.ids).toEqual([[2, 0, -1], [3, 1, 2], [-1, -1, -1]]);
    expectRowsClose(r.weights, [[2, 0.5, 0], [4, 3, 2], [0, 0, 0]]);
  });
});

/** The builtin semantics plus one router kind, as a plugin's registry hands them to the interpreter. */
const withRouter = (name: string, implementation: RouterImplementation): Semantics => ({ ...builtinSemantics, routers: { ...builtinSemantics.routers, [name]: implementation } });

test('a plugin adds a router kind to a copy of the semantics, not to the builtin ones', () => {
  const semantics = withRouter('first_expert', ({ topK }) => ({ ids: [0, ...new Array<number>(topK - 1).fill(-1)], weights: [1, ...new Array<number>(topK - 1).fill(0)] }));
  const r = route({ kind: 'first_expert', params: {} }, 2, [[1, 2, 3]], {}, semantics);
  expect(r.ids).toEqual([[0, -1]]);
  expect(r.weights).toEqual([[1, 0]]);
  expect(routerImplementations['first_expert']).toBeUndefined();
  expect(() => route({ kind: 'first_expert', params: {} }, 2, [[1, 2, 3]])).toThrow(/has no router first_expert \(known: softmax_topk, sigmoid_topk/);
});

test('a router that returns an invalid slot is reported', () => {
  const semantics = withRouter('broken', () => ({ ids: [7, -1], weights: [1, 0.5] }));
  expect(() => route({ kind: 'broken', params: {} }, 2, [[1, 2, 3]], {}, semantics)).toThrow(/router broken, token 0: slot 0 has expert id 7, expected -1..2/);
});
