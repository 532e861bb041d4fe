// SonicMoE token rounding, the reference (ir/interpret/token-rounding.ts): hand-computed cases for
// each mode and rule, then a property test on seeded random routings.
import { describe, expect, test } from 'vitest';
import type { KindRef } from '../../ir/model-config.js';
import { mixRoundedExperts, roundedTokenCount, roundTokens, routerProbabilities, type RoundingMode, type RoundTokensInput } from '../../ir/interpret/token-rounding.js';
import { seededRandom } from '../support/seeded-random.js';

/** Rounds a routing written as rows: ids[t] and weights[t] are token t's K slots, probs[t] its E probabilities. */
function round(ids: number[][], weights: number[][], probs: number[][], mode: RoundingMode, tile: number) {
  const result = roundTokens({ tokens: ids.length, experts: probs[0]!.length, topK: ids[0]!.length, ids: ids.flat(), weights: weights.flat(), probs: probs.flat(), mode, tile });
  const rows = <T>(flat: ArrayLike<T>, width: number): T[][] => Array.from({ length: flat.length / width }, (_, i) => Array.from(flat).slice(i * width, (i + 1) * width));
  return { ...result, idRows: rows(result.ids, ids[0]!.length), weightRows: rows(result.weights, ids[0]!.length), extras: rows(result.extraIds, 2), extraWeightList: Array.from(result.extraWeights) };
}

const uniformProbs = (tokens: number, experts: number): number[][] => Array.from({ length: tokens }, () => new Array<number>(experts).fill(0.5));
const modes: RoundingMode[] = ['nearest', 'up', 'down'];

describe('roundedTokenCount', () => {
  test.each([
    // count, tile, mode, tokens, expected
    [0, 4, 'up', 100, 0],
    [1, 4, 'up', 100, 4],
    [4, 4, 'up', 100, 4],
    [7, 4, 'down', 100, 4],
    [3, 4, 'down', 100, 0],
    [1, 4, 'nearest', 100, 0],
    [2, 4, 'nearest', 100, 4], // an exact half rounds up
    [6, 4, 'nearest', 100, 8], // 1.5 tiles: half up
    [5, 4, 'nearest', 100, 4],
    [1, 2, 'nearest', 100, 2],
    [1, 16, 'up', 7, 7], // clamped at the batch's tokens
    [8, 16, 'nearest', 7, 7],
  ] as const)('%i rows, tile %i, %s, %i tokens -> %i', (count, tile, mode, tokens, expected) => {
    expect(roundedTokenCount(count, tile, mode, tokens)).toBe(expected);
  });
});

describe('roundTokens on hand-computed cases', () => {
  test.each(modes)('exact tile multiples change nothing (%s)', (mode) => {
    const r = round([[0], [0], [1], [1]], [[0.5], [0.25], [1], [0.75]], uniformProbs(4, 2), mode, 2);
    expect(r.idRows).toEqual([[0], [0], [1], [1]]);
    expect(r.weightRows).toEqual([[0.5], [0.25], [1], [0.75]]);
    expect(r.extras).toEqual([[-1, -1], [-1, -1]]);
    expect(r.stats).toMatchObject({ paddedRowsBefore: 4, paddedRowsAfter: 4, tokensDropped: 0, tokensAdded: 0, weightMassChanged: 0 });
  });

  test('down drops the lowest-weight routed token', () => {
    const r = round([[0], [0], [0]], [[0.5], [0.25], [0.75]], uniformProbs(3, 2), 'down', 2);
    expect(r.idRows).toEqual([[0], [-1], [0]]);
    expect(r.weightRows).toEqual([[0.5], [0], [0.75]]);
    expect(r.stats).toEqual({ paddedRowsBefore: 4, paddedRowsAfter: 2, tokensDropped: 1, tokensAdded: 0, droppedWeight: 0.25, addedWeight: 0, routedWeight: 1.5, weightMassChanged: 0.25 / 1.5 });
  });

  test('up adds the most probable unrouted token, weighted by its probability', () => {
    // Expert 0 has token 0 and adds token 2 (prob .5 beats token 1's .25); expert 1 has 2 already.
    const r = round([[0], [1], [1]], [[1], [0.5], [0.5]], [[0.9, 0.1], [0.25, 0.75], [0.5, 0.5]], 'up', 2);
    expect(r.idRows).toEqual([[0], [1], [1]]);
    expect(r.extras).toEqual([[2, 0], [-1, -1]]);
    expect(r.extraWeightList).toEqual([0.5, 0]);
    expect(r.stats).toMatchObject({ tokensAdded: 1, addedWeight: 0.5, routedWeight: 2, weightMassChanged: 0.25 });
  });

  test('nearest: a half tile rounds up, less than a half rounds down', () => {
    // Tile 4: expert 0 has 2 tokens -> 4 (adds the only two unrouted tokens 2, 3); expert 1 has 1 -> 0.
    const r = round([[0], [0], [1], [-1]], [[1], [1], [0.5], [0]], [[0, 0], [0, 0], [0.25, 0.75], [0.125, 0.5]], 'nearest', 4);
    expect(r.idRows).toEqual([[0], [0], [-1], [-1]]);
    expect(r.extras).toEqual([[2, 0], [3, 0], [-1, -1], [-1, -1], [-1, -1], [-1, -1]]);
    expect(r.extraWeightList).toEqual([0.25, 0.125, 0, 0, 0, 0]);
    expect(r.stats).toMatchObject({ paddedRowsBefore: 8, paddedRowsAfter: 4, tokensDropped: 1, tokensAdded: 2 });
  });

  test('ties go to the lower token index: kept when dropping, added first when adding', () => {
    expect(round([[0], [0], [0]], [[0.5], [0.5], [0.5]], uniformProbs(3, 1), 'down', 2).idRows).toEqual([[0], [0], [-1]]);
    const up = round([[0], [1], [1]], [[1], [1], [1]], [[0, 0], [0.5, 0], [0.5, 0]], 'up', 2);
    expect(up.extras).toEqual([[1, 0], [-1, -1]]);
  });

  test.each(modes)('empty slots (-1) count for no expert (%s)', (mode) => {
    const r = round([[0, -1], [0, -1]], [[0.5, 0], [0.5, 0]], uniformProbs(2, 2), mode, 2);
    expect(r.idRows).toEqual([[0, -1], [0, -1]]);
    expect(r.extras).toEqual([[-1, -1], [-1, -1]]);
  });

  test('a target above the token count is clamped to it: all tokens, not a tile multiple', () => {
    const r = round([[0], [-1], [-1]], [[1], [0], [0]], [[0.5], [0.25], [0.75]], 'up', 4);
    expect(r.extras).toEqual([[1, 0], [2, 0], [-1, -1]]);
    expect(r.extraWeightList).toEqual([0.25, 0.75, 0]);
    expect(r.stats).toMatchObject({ paddedRowsBefore: 4, paddedRowsAfter: 4, tokensAdded: 2 });
  });

  test('an expert adds at most tile - 1 tokens: E (M - 1) extras fill up exactly', () => {
    // 3 experts, tile 4, each with one token of 20: each adds 3 = M - 1.
    const ids = Array.from({ length: 20 }, (_, t) => [t < 3 ? t : -1]);
    const weights = ids.map(([e]) => [e === -1 ? 0 : 1]);
    const r = round(ids, weights, uniformProbs(20, 3), 'up', 4);
    expect(r.extras).toHaveLength(3 * 3);
    expect(r.extras.every(([t]) => t !== -1)).toBe(true);
    expect(r.extras.map(([, e]) => e)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(r.extras.slice(0, 3).map(([t]) => t)).toEqual([1, 2, 3]); // equal probs: the lowest tokens, ascending
  });

  test('stats: padded rows, counts and the changed fraction of routing-weight mass', () => {
    // Experts 0 and 1 have 3 tokens each (routed weight 4 in all); tile 2.
    const ids = [[0, 1], [0, -1], [1, 0], [-1, -1], [1, -1]];
    const weights = [[0.5, 0.5], [1, 0], [0.75, 0.25], [0, 0], [1, 0]];
    const probs = [[0, 0], [0, 0.75], [0, 0], [0.5, 0.5], [0.25, 0]];
    const down = round(ids, weights, probs, 'down', 2); // drops token 2 from expert 0 (.25), token 0 from expert 1 (.5)
    expect(down.idRows).toEqual([[0, -1], [0, -1], [1, -1], [-1, -1], [1, -1]]);
    expect(down.stats).toEqual({ paddedRowsBefore: 8, paddedRowsAfter: 4, tokensDropped: 2, tokensAdded: 0, droppedWeight: 0.75, addedWeight: 0, routedWeight: 4, weightMassChanged: 0.1875 });
    const up = round(ids, weights, probs, 'up', 2); // adds token 3 to expert 0 (.5), token 1 to expert 1 (.75)
    expect(up.extras).toEqual([[3, 0], [1, 1]]);
    expect(up.stats).toEqual({ paddedRowsBefore: 8, paddedRowsAfter: 8, tokensDropped: 0, tokensAdded: 2, droppedWeight: 0, addedWeight: 1.25, routedWeight: 4, weightMassChanged: 0.3125 });
  });
});

describe('mixRoundedExperts', () => {
  test('kept slots in k order, then added experts in ascending expert order', () => {
    const routing = {
      ids: Int32Array.from([1, -1, 0, 2]),
      weights: Float32Array.from([0.5, 0, 0.25, 1]),
      extraIds: Int32Array.from([0, 0, -1, -1, 1, 1, -1, -1, 0, 2, -1, -1]), // tile 3, 3 experts
      extraWeights: Float32Array.from([0.125, 0, 0.75, 0, 2, 0]),
    };
    const calls: string[] = [];
    const y = mixRoundedExperts(routing, { tokens: 2, topK: 2, hidden: 2 }, (t, e) => {
      calls.push(`${t}:${e}`);
      return [10 * t + e, 1];
    });
    expect(calls).toEqual(['0:1', '1:0', '1:2', '0:0', '1:1', '0:2']);
    expect(Array.from(y)).toEqual([0.5 * 1 + 0.125 * 0 + 2 * 2, 0.5 + 0.125 + 2, 0.25 * 10 + 1 * 12 + 0.75 * 11, 0.25 + 1 + 0.75]);
  });
});

describe('routerProbabilities', () => {
  const ln = Math.log;
  const probs = (kind: string, logits: number[], params = {}): number[] => Array.from(routerProbabilities({ kind, params } as KindRef, Float64Array.from(logits)));
  const close = (a: number[], b: number[]) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 12));

  test('softmax over the experts for the softmax routers; null experts stay out', () => {
    for (const kind of ['softmax_topk', 'topk_softmax', 'sparsemixer']) close(probs(kind, [ln(1), ln(2), ln(3), ln(4)]), [0.1, 0.2, 0.3, 0.4]);
    close(probs('softmax_topk', [ln(1), ln(3)], { null_experts: 2 }), [0.25, 0.75]);
  });

  test('sigmoid (unbiased) for sigmoid_topk, relu for relu_gate', () => {
    close(probs('sigmoid_topk', [ln(0.25 / 0.75), 0], { correction_bias: true }), [0.25, 0.5]);
    expect(probs('relu_gate', [-1, 0, 2.5])).toEqual([0, 0, 2.5]);
  });

  test('an unknown router kind is refused', () => {
    expect(() => probs('top_p', [0])).toThrow(/no raw probability for router top_p/);
  });
});

describe('property: counts land on the mode\'s multiple of the tile', () => {
  const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
  const random = seededRandom(seed);
  const int = (n: number) => Math.floor(random() * n);

  function randomInput(): RoundTokensInput {
    const [tokens, experts, tile] = [1 + int(120), 1 + int(12), 1 + int(16)];
    const topK = 1 + int(Math.min(experts, 4));
    const ids: number[] = [];
    for (let t = 0; t < tokens; t++) {
      const order = Array.from({ length: experts }, (_, e) => e).sort(() => random() - 0.5);
      for (let k = 0; k < topK; k++) ids.push(random() < 0.15 ? -1 : order[k]!);
    }
    const weights = ids.map((e) => (e === -1 ? 0 : Math.fround((1 + int(8)) / 8))); // few levels: ties
    const probs = Array.from({ length: tokens * experts }, () => int(16) / 16);
    return { tokens, experts, topK, ids, weights, probs, mode: modes[int(3)]!, tile };
  }

  test(`200 random routings (seed ${seed}; rerun with MOEC_TEST_SEED=${seed})`, () => {
    for (let trial = 0; trial < 200; trial++) {
      const input = randomInput();
      const { tokens, experts, topK, tile, mode } = input;
      const r = roundTokens(input);
      const where = `trial ${trial}: T ${tokens}, E ${experts}, K ${topK}, tile ${tile}, ${mode}`;
      const before = new Array<number>(experts).fill(0);
      const after = new Array<number>(experts).fill(0);
      Array.from(input.ids).forEach((e) => e !== -1 && before[e]!++);
      r.ids.forEach((e) => e !== -1 && after[e]!++);
      for (let i = 0; i < r.extraWeights.length; i++) {
        const [t, e] = [r.extraIds[2 * i]!, r.extraIds[2 * i + 1]!];
        if (t === -1) continue;
        expect(Math.floor(i / (tile - 1)), where).toBe(e); // expert-major
        expect(Array.from(input.ids).slice(t * topK, (t + 1) * topK), where).not.toContain(e);
        after[e]!++;
      }
      r.ids.forEach((e, s) => {
        if (e !== -1) expect([e, r.weights[s]], where).toEqual([input.ids[s], input.weights[s]]); // kept slots unchanged
      });
      for (let e = 0; e < experts; e++) {
        const [f, n] = [before[e]!, after[e]!];
        expect(n % tile === 0 || n === tokens, `${where}, expert ${e}: ${f} -> ${n}`).toBe(true);
        if (mode === 'up') expect(n).toBeGreaterThanOrEqual(f);
        if (mode === 'down') expect(n).toBeLessThanOrEqual(f);
        if (mode === 'nearest') expect(Math.abs(n - f)).toBeLessThanOrEqual(tile / 2);
        expect(n, where).toBe(roundedTokenCount(f, tile, mode, tokens));
      }
      // Drops take an expert's lowest weights, adds its highest probabilities among unrouted tokens.
      for (let e = 0; e < experts; e++) {
        const slotsOf = (ids: ArrayLike<number>) => Array.from(ids).flatMap((id, s) => (id === e ? [s] : []));
        const kept = slotsOf(r.ids).map((s) => input.weights[s]!);
        const gone = slotsOf(input.ids).filter((s) => r.ids[s] === -1).map((s) => input.weights[s]!);
        if (gone.length > 0 && kept.length > 0) expect(Math.max(...gone), where).toBeLessThanOrEqual(Math.min(...kept));
        const unrouted = Array.from({ length: tokens }, (_, t) => t).filter((t) => !Array.from(input.ids).slice(t * topK, (t + 1) * topK).includes(e));
        const chosen = new Set(Array.from({ length: tile - 1 }, (_, i) => r.extraIds[2 * (e * (tile - 1) + i)]!).filter((t) => t !== -1));
        const prob = (t: number) => input.probs[t * experts + e]!;
        const [inside, outside] = [unrouted.filter((t) => chosen.has(t)).map(prob), unrouted.filter((t) => !chosen.has(t)).map(prob)];
        if (inside.length > 0 && outside.length > 0) expect(Math.min(...inside), where).toBeGreaterThanOrEqual(Math.max(...outside));
      }
      const dropped = r.ids.filter((e, s) => e === -1 && input.ids[s] !== -1).length;
      const added = r.extraIds.filter((t, i) => i % 2 === 0 && t !== -1).length;
      expect([r.stats.tokensDropped, r.stats.tokensAdded], where).toEqual([dropped, added]);
    }
  });
});
