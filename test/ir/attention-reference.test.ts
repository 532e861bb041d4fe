// The decoder's new reference ops on hand-computed cases: rope frequencies of every scaling kind
// (transformers/modeling_rope_utils.py), half-split vs interleaved rotation, the attention core's
// causal mask, sliding window and sinks, DeepSeek's softmax scale, and MLA's absorbed form equal
// to the form transformers writes.
import { describe, expect, it } from 'vitest';
import { attendToCache } from '../../ir/interpret/attention-core.js';
import { rmsNormGroups, rotate } from '../../ir/interpret/attention.js';
import { mlaAttend, mlaAttendAbsorbed, mlaSoftmaxScale } from '../../ir/interpret/mla.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { ropeCosSin, ropeFrequencies, yarnMscale, type RopeSpec } from '../../runtime/rope-table.js';
import { seededRandom } from '../support/seeded-random.js';

const spec = (kind: string, params: Record<string, unknown>, dim = 8, theta = 10000): RopeSpec => ({ kind, params, theta, dim });
const yarnParams = { factor: 4, original_context: 16, beta_fast: 32, beta_slow: 1, mscale: 0, mscale_all_dim: 0, attention_factor: 0, truncate: true };

describe('rope frequencies', () => {
  it('default: theta^(-2i/d); linear divides them by factor', () => {
    expect([...ropeFrequencies(spec('default', {}), 1).invFreq]).toEqual([1, 0.1, 0.01, 0.001].map(Math.fround));
    expect([...ropeFrequencies(spec('linear', { factor: 4 }), 1).invFreq]).toEqual([0.25, 0.025, 0.0025, 0.00025].map(Math.fround));
  });

  it('yarn: pairs below the correction range extrapolate, those above interpolate by factor', () => {
    // dim 8, theta 1e4, original 16: correction dims 8 ln(16 / (32 * 2pi)) / (2 ln 1e4) = -1.10 -> floor -2 -> 0,
    // and 8 ln(16 / (1 * 2pi)) / (2 ln 1e4) = 0.41 -> ceil 1: ramp [0, 1, 1, 1], so pair 0 keeps 1 / 1, the rest 1 / (4 * base).
    const f = ropeFrequencies(spec('yarn', yarnParams), 1);
    expect([...f.invFreq]).toEqual([1, 0.025, 0.0025, 0.00025].map(Math.fround));
    expect(f.magnitude).toBeCloseTo(0.1 * Math.log(4) + 1, 15);
  });

  it('yarn with truncate = false keeps the correction range unrounded (gpt-oss)', () => {
    // dim 8, theta 100, original 64: low = 8 ln(64 / 64pi) / (2 ln 100) = -0.497 -> 0 either way;
    // high = 8 ln(64 / 2pi) / (2 ln 100) = 2.0159: unrounded, pair 1 (base 100^(1/4)) ramps to 1/2.0159, rounded (3) to 1/3.
    const params = { ...yarnParams, original_context: 64 };
    const high = (8 * Math.log(64 / (2 * Math.PI))) / (2 * Math.log(100));
    const expected = (ramp: number, base: number) => Math.fround((1 / (4 * base)) * ramp + (1 / base) * (1 - ramp));
    const unrounded = ropeFrequencies(spec('yarn', { ...params, truncate: false }, 8, 100), 1).invFreq;
    const rounded = ropeFrequencies(spec('yarn', params, 8, 100), 1).invFreq;
    expect(unrounded[1]).toBe(expected(1 / high, Math.sqrt(10)));
    expect(rounded[1]).toBe(expected(1 / 3, Math.sqrt(10)));
    expect(unrounded[2]).toBe(expected(Math.min(1, 2 / high), 10));
    expect(rounded[2]).toBe(expected(2 / 3, 10));
  });

  it('yarn attention factors: gpt-oss 0.1 ln 32 + 1; DeepSeek mscale ratio; given one wins', () => {
    expect(ropeFrequencies(spec('yarn', { ...yarnParams, factor: 32 }), 1).magnitude).toBeCloseTo(1.3465735902799727, 15);
    expect(ropeFrequencies(spec('yarn', { ...yarnParams, factor: 40, mscale: 1, mscale_all_dim: 1 }), 1).magnitude).toBe(1);
    const ratio = (0.1 * 0.707 * Math.log(40) + 1) / (0.1 * 0.5 * Math.log(40) + 1);
    expect(ropeFrequencies(spec('yarn', { ...yarnParams, factor: 40, mscale: 0.707, mscale_all_dim: 0.5 }), 1).magnitude).toBeCloseTo(ratio, 14);
    expect(ropeFrequencies(spec('yarn', { ...yarnParams, attention_factor: 1.5 }), 1).magnitude).toBe(1.5);
    expect(yarnMscale(1, 5)).toBe(1);
  });

  it('longrope: short factors and mscale while the call fits original_context, long ones past it', () => {
    const params = { short_factor: [1, 2, 4, 8], long_factor: [3, 5, 7, 9], original_context: 16, short_mscale: 1.25, long_mscale: 1.5 };
    const short = ropeFrequencies(spec('longrope', params), 16);
    const long = ropeFrequencies(spec('longrope', params), 17);
    expect([...short.invFreq]).toEqual([1, 1 / 20, 1 / 400, 1 / 8000].map(Math.fround));
    expect([...long.invFreq]).toEqual([1 / 3, 1 / 50, 1 / 700, 1 / 9000].map(Math.fround));
    expect([short.magnitude, long.magnitude]).toEqual([1.25, 1.5]);
  });

  it('cos/sin: f32 angles, scaled by the magnitude', () => {
    const { cos, sin } = ropeCosSin({ invFreq: Float32Array.of(1, 0.5), magnitude: 2 }, [3]);
    expect([...cos]).toEqual([2 * Math.fround(Math.cos(3)), 2 * Math.fround(Math.cos(1.5))].map(Math.fround));
    expect([...sin]).toEqual([2 * Math.fround(Math.sin(3)), 2 * Math.fround(Math.sin(1.5))].map(Math.fround));
  });
});

describe('rotation', () => {
  const [c0, s0, c1, s1] = [Math.cos(0.3), Math.sin(0.3), Math.cos(0.7), Math.sin(0.7)];
  const cos = Float32Array.of(c0, c1);
  const sin = Float32Array.of(s0, s1);
  const slice = { rowWidth: 4, offset: 0, headStride: 4, heads: 1, dim: 4 };

  it('half-split (rotate_half) turns (x_i, x_{i + d/2})', () => {
    const x = Float32Array.of(1, 2, 3, 4);
    rotate(x, 1, { ...slice, interleaved: false }, cos, sin);
    const expected = [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1];
    expect(relativeError(x, Float32Array.from(expected))).toBeLessThan(1e-7);
  });

  it('interleaved turns (x_2i, x_2i+1)', () => {
    const x = Float32Array.of(1, 2, 3, 4);
    rotate(x, 1, { ...slice, interleaved: true }, cos, sin);
    const expected = [1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3 * c1 - 4 * s1, 4 * c1 + 3 * s1];
    expect(relativeError(x, Float32Array.from(expected))).toBeLessThan(1e-7);
  });

  it('only the slice: MLA rotates the last rope dims of each head', () => {
    const x = Float32Array.of(9, 9, 1, 2, 8, 8, 3, 4);
    rotate(x, 1, { rowWidth: 8, offset: 2, headStride: 4, heads: 2, dim: 2, interleaved: true }, Float32Array.of(c0), Float32Array.of(s0));
    expect([x[0], x[1], x[4], x[5]]).toEqual([9, 9, 8, 8]);
    expect(x[2]).toBeCloseTo(1 * c0 - 2 * s0, 6);
    expect(x[7]).toBeCloseTo(4 * c0 + 3 * s0, 6);
  });
});

describe('RMSNorm groups', () => {
  it('per head (Qwen3-MoE) and over the whole projection (OLMoE) differ', () => {
    const perHead = Float32Array.of(1, 1, 3, 3);
    rmsNormGroups(perHead, 2, Float32Array.of(1, 1), 0);
    expect([...perHead]).toEqual([1, 1, 1, 1]);
    const whole = Float32Array.of(1, 1, 3, 3);
    rmsNormGroups(whole, 4, Float32Array.of(1, 1, 1, 1), 0);
    const r = Math.sqrt((1 + 1 + 9 + 9) / 4);
    expect([...whole]).toEqual([1 / r, 1 / r, 3 / r, 3 / r].map(Math.fround));
  });
});

describe('attention core', () => {
  const shape = { heads: 1, kvHeads: 1, keyDim: 1, valueDim: 1, scale: 1, window: 0 };
  const keys = Float32Array.of(1, 2, 0.5);
  const values = Float32Array.of(10, 20, 40);

  it('causal: position p sees keys 0..p', () => {
    const out = attendToCache(Float32Array.of(1, 1), keys, values, [0, 1], shape);
    expect(out[0]).toBeCloseTo(10, 12);
    expect(out[1]).toBeCloseTo((10 * Math.E + 20 * Math.E ** 2) / (Math.E + Math.E ** 2), 12);
  });

  it('sliding window w: the token and the w - 1 before it', () => {
    const out = attendToCache(Float32Array.of(1), keys, values, [2], { ...shape, window: 2 });
    expect(out[0]).toBeCloseTo((20 * Math.E ** 2 + 40 * Math.E ** 0.5) / (Math.E ** 2 + Math.E ** 0.5), 12);
  });

  it('a sink logit joins the denominator and takes no value', () => {
    const out = attendToCache(Float32Array.of(1), keys, values, [1], shape, Float32Array.of(3));
    expect(out[0]).toBeCloseTo((10 * Math.E + 20 * Math.E ** 2) / (Math.E ** 3 + Math.E + Math.E ** 2), 12);
  });

  it('GQA: query head h reads kv head h / (heads / kv_heads)', () => {
    const q = Float32Array.of(0, 0, 0, 0); // uniform weights: each head averages its kv head's values
    const v = Float32Array.of(1, 100, 3, 300);
    const out = attendToCache(q, Float32Array.of(0, 0, 0, 0), v, [1], { ...shape, heads: 4, kvHeads: 2 });
    expect([...out]).toEqual([2, 2, 200, 200]);
  });
});

describe('MLA', () => {
  it('softmax scale: qk_head_dim^-0.5 times mscale(factor, mscale_all_dim)^2 under YaRN', () => {
    const mla = { kind: 'mla', params: { qk_nope_head_dim: 128, qk_rope_head_dim: 64 } };
    const m = 0.1 * 1 * Math.log(40) + 1;
    expect(mlaSoftmaxScale(mla, { kind: 'yarn', params: { factor: 40, mscale_all_dim: 1 } })).toBeCloseTo(m * m / Math.sqrt(192), 15);
    expect(mlaSoftmaxScale(mla, { kind: 'default', params: {} })).toBe(1 / Math.sqrt(192));
    const plain = { kind: 'mla', params: { ...mla.params, softmax_mscale: false } };
    expect(mlaSoftmaxScale(plain, { kind: 'yarn', params: { factor: 40, mscale_all_dim: 1 } })).toBe(1 / Math.sqrt(192));
  });

  it('the absorbed form equals the decompressed one', () => {
    const random = seededRandom(7);
    const s = { heads: 3, nope: 5, rope: 4, kvRank: 7, valueDim: 6, scale: 0.3, window: 0 };
    const positions = Int32Array.of(4, 5, 6);
    const q = Float32Array.from({ length: 3 * s.heads * (s.nope + s.rope) }, () => random() * 2 - 1);
    const cache = Float32Array.from({ length: 10 * (s.kvRank + s.rope) }, () => random() * 2 - 1);
    const kvB = Float32Array.from({ length: s.heads * (s.nope + s.valueDim) * s.kvRank }, () => random() * 2 - 1);
    const plain = mlaAttend(q, cache, positions, kvB, s);
    const absorbed = mlaAttendAbsorbed(q, cache, positions, kvB, s);
    expect(relativeError(absorbed, plain)).toBeLessThan(1e-6);
    expect(relativeError(mlaAttendAbsorbed(q, cache, positions, kvB, { ...s, window: 3 }), mlaAttend(q, cache, positions, kvB, { ...s, window: 3 }))).toBeLessThan(1e-6);
  });
});
