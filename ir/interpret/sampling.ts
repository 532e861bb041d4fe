// Token sampling, the reference: the WGSL kernels (codegen/kernels/sample/) must pick the same id,
// so that a seed gives the same tokens on every adapter, in Node and in browsers.
//
// Semantics follow Hugging Face generate's warpers, in its order (generation/logits_process.py):
//   temperature  s_i = x_i * (1 / T) in f32 (WGSL's division is not correctly rounded, so the
//                reciprocal is taken once, in f32, by whoever writes the uniform); T = 0 is greedy:
//                the argmax of the logits, ties to the lowest id.
//   top-k        (k > 0) keeps every token whose s is >= the k-th largest s (ties at the cut all stay,
//                as in HF's `scores < topk(scores, k)[..., -1]`).
//   top-p        (p < 1) keeps, among those, token i when the probability mass of the tokens with a
//                strictly larger s is < p (HF removes tokens whose ascending cumulative mass is
//                <= 1 - p; by value here, so tied tokens stay or go together); the max always stays.
//   sampling     Gumbel-max: argmax over kept i of s_i + g_i, g_i = -ln(-ln u_i), u_i in (0, 1) from
//                a u32 hash of (seed, step, i): an exact draw from softmax over the kept set that
//                needs only an argmax (ties to the lowest id), no prefix sum.
// NaN and -inf logits are masked: never counted by top-k or top-p, never sampled (all masked: id 0).
//
// Bit-equality with the GPU: every float step is one correctly rounded f32 operation (Math.fround
// here; on the GPU each product is fenced so no compiler fuses it into an fma), and exp and ln are
// the polynomials below rather than the platform's, whose last bits differ between drivers. The
// top-p mass is a sum of integers (floor(2^31 exp(s_i - max s)) per token, 64-bit), so its order
// does not matter; the cut compares it exactly with floor(p 2^24) / 2^24 of the total.
import { checkSamplingOptions, inverseTemperature, type SamplingOptions } from '../../runtime/sampling-options.js';

export { checkSamplingOptions, inverseTemperature, type SamplingOptions };


const f32 = Math.fround;
const view = new DataView(new ArrayBuffer(4));

export function f32Bits(x: number): number {
  view.setFloat32(0, x, true);
  return view.getUint32(0, true);
}

export function bitsToF32(bits: number): number {
  view.setUint32(0, bits >>> 0, true);
  return view.getFloat32(0, true);
}

/** The f32 bit patterns of the polynomials' coefficients (fitted on Chebyshev nodes, rounded to f32). */
export const SAMPLING_CONSTANTS = {
  /** 2^f ~ 1 + f q(f) on [0, 1): q's coefficients, constant term first (relative error < 1e-7). */
  exp2: [0x3f317218, 0x3e75fe1a, 0x3d635074, 0x3c1e1cc6, 0x3aa6a123, 0x39596a4d],
  /** ln(1 + t) ~ t r(t) on [sqrt(1/2) - 1, sqrt(2) - 1]: r's coefficients, constant term first. */
  ln1p: [0x3f800000, 0xbefffffc, 0x3eaaaaaf, 0xbe800212, 0x3e4ccefe, 0xbe2a11a8, 0x3e116c32, 0xbe07de2c, 0x3e030a2c, 0xbd984030],
  ln2: 0x3f317218,
  log2e: 0x3fb8aa3b,
  /** Mantissa bits of f32(sqrt 2): ln reduces a mantissa at or above it to [sqrt(1/2), 1). */
  sqrt2Mantissa: 0x3504f3,
} as const;

const EXP2 = SAMPLING_CONSTANTS.exp2.map(bitsToF32);
const LN1P = SAMPLING_CONSTANTS.ln1p.map(bitsToF32);
const LN2 = bitsToF32(SAMPLING_CONSTANTS.ln2);
const LOG2E = bitsToF32(SAMPLING_CONSTANTS.log2e);

/** Horner in f32, highest coefficient first: c_0 + x (c_1 + x (...)). */
function horner(coefficients: number[], x: number): number {
  let r = coefficients[coefficients.length - 1]!;
  for (let k = coefficients.length - 2; k >= 0; k--) r = f32(coefficients[k]! + f32(x * r));
  return r;
}

/** ln x for a normal f32 x > 0, from its exponent and a polynomial in its mantissa. */
export function lnF32(x: number): number {
  const bits = f32Bits(x);
  let exponent = (bits >>> 23) - 127;
  let mantissa = (bits & 0x7fffff) | 0x3f800000;
  if ((bits & 0x7fffff) >= SAMPLING_CONSTANTS.sqrt2Mantissa) {
    mantissa -= 0x800000; // halve: [sqrt 2, 2) -> [sqrt(1/2), 1)
    exponent += 1;
  }
  const t = f32(bitsToF32(mantissa) - 1);
  return f32(f32(exponent * LN2) + f32(t * horner(LN1P, t)));
}

/** pcg_hash (Jarzynski and Olano, "Hash Functions for GPU Rendering"): u32 -> u32. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The u32 behind token `id`'s noise: two pcg rounds, so steps' noise vectors are not shifted copies of each other. */
export function samplingHash(seed: number, step: number, id: number): number {
  const seedKey = pcgHash(seed);
  const stepKey = pcgHash((step + pcgHash(seedKey)) >>> 0);
  return pcgHash((pcgHash((id + seedKey) >>> 0) + stepKey) >>> 0);
}

/** g = -ln(-ln u), u = (2 (h >> 9) + 1) 2^-24 in (0, 1): a Gumbel(0, 1) variate in [-2.8, 16.7]. */
export function gumbelNoise(seed: number, step: number, id: number): number {
  const h = samplingHash(seed, step, id);
  const u = (2 * (h >>> 9) + 1) * 2 ** -24; // < 2^24 times a power of two: exact in f32
  return -lnF32(-lnF32(u));
}

/** floor(2^31 exp(s - max)), 0 once below 2^-31; max is the largest scaled logit. */
export function massWeight(s: number, max: number): number {
  if (orderedKey(s) === orderedKey(max)) return 2 ** 31;
  const y = f32(f32(s - max) * LOG2E);
  if (!(y >= -32)) return 0;
  const n = Math.floor(y);
  const f = f32(y - n);
  const p = f32(1 + f32(f * horner(EXP2, f)));
  return Math.floor(p * 2 ** (n + 31)); // a power-of-two scale: exact
}

/** A u32 that orders f32 values as numbers do: NaN counts as -inf, -0 as +0. */
export function orderedKey(x: number): number {
  let bits = f32Bits(x);
  if ((bits & 0x7fffffff) > 0x7f800000) bits = 0xff800000;
  if (bits === 0x80000000) bits = 0;
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

/** orderedKey(-inf): a logit at or below it is masked. */
export const MASKED_KEY = 0x007fffff;

/** fround(1 / T): the uniform's inverse temperature (0 for greedy). */

/** floor(p 2^24): top-p as a 24-bit fraction (2^24 = off). */
export function topPFraction(topP: number): number {
  return Math.floor(f32(topP) * 2 ** 24);
}


/** argmax of the logits, ties (and an all-masked row) to the lowest id. */
export function greedyToken(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (orderedKey(logits[i]!) > orderedKey(logits[best]!)) best = i;
  return best;
}

/** The tokens top-k and top-p keep (ascending ids), from which sampleToken draws; [argmax] when greedy. */
export function keptTokens(logits: Float32Array, options: SamplingOptions): number[] {
  checkSamplingOptions(options);
  const greedy = greedyToken(logits);
  if (options.temperature === 0 || orderedKey(logits[greedy]!) <= MASKED_KEY) return [greedy];
  const inv = inverseTemperature(options.temperature);
  const scaled = Float32Array.from(logits, (x) => x * inv);
  // Unmasked ids, largest scaled logit first.
  const order = Array.from(logits.keys()).filter((i) => orderedKey(logits[i]!) > MASKED_KEY);
  order.sort((a, b) => orderedKey(scaled[b]!) - orderedKey(scaled[a]!) || a - b);
  let cut = 0; // keep ids whose key is >= cut
  const { topK, topP } = options;
  if (topK > 0 && topK < order.length) cut = orderedKey(scaled[order[topK - 1]!]!);
  let kept = order.filter((i) => orderedKey(scaled[i]!) >= cut);
  if (f32(topP) < 1) { // the uniform holds f32(topP): 0.99999999 is off, as on the GPU
    const max = scaled[greedy]!;
    const weights = kept.map((i) => BigInt(massWeight(scaled[i]!, max)));
    const total = weights.reduce((a, b) => a + b, 0n);
    let target = (BigInt(topPFraction(topP)) * total + (1n << 24n) - 1n) >> 24n; // ceil(p24 Z / 2^24)
    if (target < 1n) target = 1n;
    // The largest key whose tokens at or above it carry >= target: above it the mass is < p.
    let mass = 0n;
    for (let j = 0; j < kept.length; j++) {
      mass += weights[j]!;
      const key = orderedKey(scaled[kept[j]!]!);
      const groupEnds = j + 1 === kept.length || orderedKey(scaled[kept[j + 1]!]!) !== key;
      if (groupEnds && mass >= target) {
        cut = key;
        break;
      }
    }
    kept = kept.filter((i) => orderedKey(scaled[i]!) >= cut);
  }
  return kept.sort((a, b) => a - b);
}

/** The sampled token id (see the header for the semantics). */
export function sampleToken(logits: Float32Array, options: SamplingOptions): number {
  const kept = keptTokens(logits, options);
  if (options.temperature === 0 || kept.length === 1) return kept[0]!;
  const inv = inverseTemperature(options.temperature);
  let best = -1;
  let bestKey = 0;
  for (const i of kept) {
    const key = orderedKey(f32(f32(logits[i]! * inv) + gumbelNoise(options.seed, options.step, i)));
    if (best < 0 || key > bestKey) {
      best = i;
      bestKey = key;
    }
  }
  return best;
}
