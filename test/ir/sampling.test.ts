// Token sampling, the reference (ir/interpret/sampling.ts): hand-computed kept sets for top-k and
// top-p (HF's warper order), greedy and its limits, the f32 polynomials against float64, and
// empirical frequencies over many steps against softmax over the kept set.
import { describe, expect, test } from 'vitest';
import { gumbelNoise, keptTokens, lnF32, massWeight, sampleToken, samplingHash, type SamplingOptions } from '../../ir/interpret/sampling.js';
import { seededRandom } from '../support/seeded-random.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`sampling reference: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);

const options = (o: Partial<SamplingOptions>): SamplingOptions => ({ temperature: 1, topK: 0, topP: 1, seed: 7, step: 0, ...o });
/** Distinct logits in [-4, 4). */
const randomLogits = (n: number): Float32Array => Float32Array.from({ length: n }, () => 8 * random() - 4);
/** Logits whose softmax is `probs`. */
const logitsOf = (probs: number[]): Float32Array => Float32Array.from(probs, Math.log);

function softmax(logits: ArrayLike<number>, ids: number[], temperature: number): Map<number, number> {
  const max = Math.max(...ids.map((i) => logits[i]!));
  const e = ids.map((i) => Math.exp((logits[i]! - max) / temperature));
  const total = e.reduce((a, b) => a + b, 0);
  return new Map(ids.map((id, j) => [id, e[j]! / total]));
}

describe('greedy', () => {
  test('temperature 0 picks the argmax, ties to the lowest id, whatever the seed and step', () => {
    const logits = Float32Array.from([0.5, 2, -1, 2, 1.5]);
    for (let step = 0; step < 20; step++) expect(sampleToken(logits, options({ temperature: 0, step, seed: step * 31 }))).toBe(1);
  });

  test('NaN and -inf are never picked; an all-masked row gives id 0', () => {
    expect(sampleToken(Float32Array.from([NaN, -Infinity, -3, NaN]), options({ temperature: 0 }))).toBe(2);
    expect(sampleToken(Float32Array.from([NaN, -Infinity, -3, NaN]), options({ temperature: 1, step: 3 }))).toBe(2);
    expect(sampleToken(Float32Array.from([-Infinity, NaN, -Infinity]), options({ temperature: 0.5 }))).toBe(0);
  });

  test('topK 1, topP near 0 and topP 0 all equal greedy', () => {
    for (let trial = 0; trial < 20; trial++) {
      const logits = randomLogits(50);
      const greedy = sampleToken(logits, options({ temperature: 0 }));
      for (let step = 0; step < 10; step++) {
        expect(sampleToken(logits, options({ topK: 1, step }))).toBe(greedy);
        expect(sampleToken(logits, options({ topP: 1e-6, step, temperature: 3 }))).toBe(greedy);
        expect(sampleToken(logits, options({ topP: 0, step }))).toBe(greedy);
      }
    }
  });
});

describe('kept sets', () => {
  test('top-k keeps exactly the k largest (distinct logits)', () => {
    const logits = randomLogits(200);
    const byValue = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
    for (const k of [1, 2, 5, 50, 199, 200, 500]) {
      const kept = keptTokens(logits, options({ topK: k, temperature: 0.8 }));
      expect(kept).toEqual(byValue.slice(0, k).sort((a, b) => a - b));
    }
  });

  test('top-k keeps every token tied at the cut (as HF does)', () => {
    expect(keptTokens(Float32Array.from([1, 3, 2, 2, 0]), options({ topK: 2 }))).toEqual([1, 2, 3]);
  });

  // probs 0.1, 0.4, 0.2, 0.25, 0.05. Descending: id 1 (mass above it 0), id 3 (0.4), id 2 (0.65),
  // id 0 (0.85), id 4 (0.95); a token stays while the mass above it is < p. HF: ascending cumsum
  // 0.05, 0.15, 0.35, 0.6, 1 removes the entries <= 1 - p.
  const five = logitsOf([0.1, 0.4, 0.2, 0.25, 0.05]);
  test.each([
    [0.3, [1]],
    [0.45, [1, 3]],
    [0.6, [1, 3]],
    [0.7, [1, 2, 3]],
    [0.9, [0, 1, 2, 3]],
    [0.99, [0, 1, 2, 3, 4]],
    [1, [0, 1, 2, 3, 4]],
  ] as const)('top-p %f on a 5-token example keeps %j', (topP, expected) => {
    expect(keptTokens(five, options({ topP }))).toEqual(expected);
  });

  test('top-p follows top-k and renormalises over its survivors', () => {
    // After top-k 3: 0.4, 0.25, 0.2 over 0.85 -> 0.47, 0.29, 0.24; id 3 has 0.47 above it.
    expect(keptTokens(five, options({ topP: 0.45 }))).toEqual([1, 3]);
    expect(keptTokens(five, options({ topK: 3, topP: 0.45 }))).toEqual([1]);
    expect(keptTokens(five, options({ topK: 3, topP: 0.5 }))).toEqual([1, 3]);
    expect(keptTokens(five, options({ topK: 3, topP: 0.99 }))).toEqual([1, 2, 3]);
  });

  test('temperature changes the top-p set: a hotter softmax keeps more', () => {
    // T = 0.25: probs ~ p^4, id 1 holds 0.82; T = 4: probs ~ p^0.25: 0.25, 0.22, 0.21, 0.18, 0.15.
    expect(keptTokens(five, options({ topP: 0.7, temperature: 0.25 }))).toEqual([1]);
    expect(keptTokens(five, options({ topP: 0.7, temperature: 1 }))).toEqual([1, 2, 3]);
    expect(keptTokens(five, options({ topP: 0.7, temperature: 4 }))).toEqual([0, 1, 2, 3]);
  });
});

describe('determinism', () => {
  const logits = new Float32Array(100); // flat: every token equally likely
  test('the same seed and step give the same id; steps and seeds vary it', () => {
    const run = (s: number) => Array.from({ length: 40 }, (_, step) => sampleToken(logits, options({ seed: s, step })));
    expect(run(5)).toEqual(run(5));
    expect(new Set(run(5)).size).toBeGreaterThan(25); // 40 draws of 100: ~33 distinct
    expect(run(6)).not.toEqual(run(5));
  });

  test('the hash and the noise are pure functions of (seed, step, id)', () => {
    expect(samplingHash(1, 2, 3)).toBe(samplingHash(1, 2, 3));
    expect(samplingHash(1, 2, 3)).not.toBe(samplingHash(1, 2, 4));
    expect(gumbelNoise(1, 2, 3)).toBe(gumbelNoise(1, 2, 3));
  });
});

describe('f32 arithmetic', () => {
  test('lnF32 is within 3e-7 of ln over the noise range', () => {
    for (let j = 0; j < 5000; j++) {
      const x = Math.fround(Math.exp(-17 + 20 * random()));
      expect(Math.abs(lnF32(x) - Math.log(x))).toBeLessThanOrEqual(3e-7 * Math.max(1, Math.abs(Math.log(x))));
    }
    expect(lnF32(1)).toBe(0);
  });

  test('massWeight is floor(2^31 exp(s - max)) to 1e-6, 2^31 at the max, 0 past 2^-31', () => {
    expect(massWeight(1.5, 1.5)).toBe(2 ** 31);
    expect(massWeight(-Infinity, 0)).toBe(0);
    expect(massWeight(-30, 0)).toBe(0);
    for (let j = 0; j < 5000; j++) {
      const d = Math.fround(-20 * random());
      const want = 2 ** 31 * Math.exp(d);
      expect(Math.abs(massWeight(d, 0) - want)).toBeLessThanOrEqual(1e-6 * want + 1);
    }
  });

  test('the noise is Gumbel(0, 1): mean ~ 0.5772, variance ~ pi^2 / 6', () => {
    const n = 100_000;
    const g = Array.from({ length: n }, (_, i) => gumbelNoise(3, i >> 8, i & 255));
    const mean = g.reduce((a, b) => a + b, 0) / n;
    const variance = g.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    expect(Math.abs(mean - 0.5772157)).toBeLessThan(0.02);
    expect(Math.abs(variance - Math.PI ** 2 / 6)).toBeLessThan(0.05);
  });
});

describe('empirical frequencies match softmax over the kept set', () => {
  const logits = Float32Array.from([1.2, -0.3, 0.4, 2.0, 0.9, -1.5]);
  const steps = 20_000;
  test.each([
    [{ temperature: 1 }, [0, 1, 2, 3, 4, 5]],
    [{ temperature: 0.6 }, [0, 1, 2, 3, 4, 5]],
    [{ temperature: 2.5 }, [0, 1, 2, 3, 4, 5]],
    [{ temperature: 1, topK: 3 }, [0, 3, 4]],
    [{ temperature: 1, topP: 0.8 }, [0, 3, 4]],
    [{ temperature: 1.5, topK: 4, topP: 0.9 }, [0, 2, 3, 4]],
  ] as const)('%j', (o, kept) => {
    const opts = options({ ...o, seed: 1234 });
    expect(keptTokens(logits, opts)).toEqual(kept);
    const counts = new Map<number, number>();
    for (let step = 0; step < steps; step++) {
      const id = sampleToken(logits, { ...opts, step });
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const want = softmax(logits, [...kept], opts.temperature);
    for (let id = 0; id < logits.length; id++) {
      const p = want.get(id) ?? 0;
      const f = (counts.get(id) ?? 0) / steps;
      expect(Math.abs(f - p), `id ${id}: frequency ${f}, softmax ${p}`).toBeLessThanOrEqual(4.5 * Math.sqrt((p * (1 - p)) / steps) + 1e-9);
    }
  });
});

describe('options', () => {
  test.each([
    [{ temperature: -1 }, /temperature/],
    [{ temperature: Infinity }, /temperature/],
    [{ temperature: 1e-300 }, /temperature/], // 1 / T overflows f32
    [{ temperature: 1e300 }, /temperature/], // 1 / T rounds to 0 in f32: it would read as greedy
    [{ topK: 1.5 }, /topK/],
    [{ topP: 1.1 }, /topP/],
    [{ topP: NaN }, /topP/],
    [{ seed: -1 }, /seed/],
    [{ step: 2 ** 32 }, /step/],
  ] as const)('%j is refused', (o, message) => {
    expect(() => sampleToken(Float32Array.from([0, 1]), options(o))).toThrow(message);
  });
});
