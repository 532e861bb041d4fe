// The weight codec (runtime/quant) against its own definition, on fresh random weights: every
// element within half a quantization step of its original, for each format, on ragged shapes
// (rows starting mid-word, an odd element count) and groups that straddle a GEMM K tile (16);
// plus the exact bit layout the WGSL decodes, and the errors for what a format cannot hold.
import { describe, expect, it } from 'vitest';
import { float16BitToFloat32 } from '../../runtime/float16.js';
import { dequantize, packWeight, unpackWeight, WeightCodecError } from '../../runtime/quant/weight-codec.js';
import { matricesOf, matrixLayout, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { normals, seededRandom } from './moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`weight-codec: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);

/** Random weights whose groups differ in scale by orders of magnitude, with an all-zero group and a tiny one. */
function weightsOf(shape: number[], group: number): Float32Array {
  const n = shape.reduce((a, d) => a * d, 1);
  const w = normals(random, n, 1);
  for (let g = 0; g * group < n; g++) {
    const scale = g === 1 ? 0 : g === 2 ? 1e-30 : 10 ** (6 * random() - 3);
    for (let i = g * group; i < Math.min(n, (g + 1) * group); i++) w[i] = Math.fround(w[i]! * scale);
  }
  return w;
}

/** The scale of group g of matrix m, read from the packed words as the WGSL does. */
function scaleOf(format: WeightFormat, words: Uint32Array, shape: number[], m: number, g: number): number {
  const { rows, cols } = matricesOf(shape);
  const layout = matrixLayout(format, rows, cols);
  const base = m * layout.matrixWords + layout.valueWords;
  switch (format.format) {
    case 'int8':
      return new Float32Array(Uint32Array.of(words[base + g]!).buffer)[0]!;
    case 'int4':
    case 'int2':
      return float16BitToFloat32(words[base + (g >> 1)]! >>> (16 * (g & 1)));
    case 'mxfp4':
      return 2 ** (((words[base + (g >> 2)]! >>> (8 * (g & 3))) & 0xff) - 127);
    default:
      throw new Error(`${format.format} has no scales`);
  }
}

/** Half the spacing of the grid around w (the largest error round-to-nearest may make). */
function halfStep(format: WeightFormat, w: number, scale: number): number {
  const binade = (x: number) => 2 ** Math.floor(Math.log2(Math.abs(x)));
  switch (format.format) {
    case 'f16':
      return w === 0 ? 0 : Math.max(2 ** -25, binade(w) * 2 ** -11);
    case 'bf16':
      return w === 0 ? 0 : binade(w) * 2 ** -8;
    case 'int8':
      return scale / 2 + Math.abs(w) * 2 ** -23; // plus the f32 rounding of q * scale
    case 'int4':
      return scale / 2;
    case 'int2': // levels +-0.5, +-1.5 scale apart by one scale; past 1.5 scale only the f16 rounding of max / 1.5
      return scale / 2 + Math.abs(w) * 2 ** -10;
    case 'mxfp4': {
      const x = Math.abs(w) / scale; // E2M1 spacing: 0.5 up to 2, 1 up to 4, 2 up to 6
      return (x <= 2 ? 0.25 : x <= 4 ? 0.5 : 1) * scale;
    }
    default:
      return 0;
  }
}

const cases: Array<{ format: WeightFormat; shape: number[] }> = [
  { format: { format: 'int4', group: 32 }, shape: [3, 5, 96] },
  { format: { format: 'int4', group: 4 }, shape: [3, 5, 12] }, // 60 nibbles a matrix: rows start mid-word
  { format: { format: 'int4', group: 24 }, shape: [2, 7, 96] }, // groups straddle a 16-wide K tile
  { format: { format: 'int2', group: 32 }, shape: [3, 5, 96] },
  { format: { format: 'int2', group: 4 }, shape: [3, 5, 12] }, // 60 crumbs a matrix: rows start mid-word
  { format: { format: 'int2', group: 24 }, shape: [2, 7, 96] },
  { format: { format: 'int8', group: 24 }, shape: [2, 7, 96] },
  { format: { format: 'int8', group: 6 }, shape: [3, 5, 42] }, // a group that is not a multiple of 4
  { format: { format: 'int8', group: 128 }, shape: [9, 256] }, // a single 2-D matrix (shared expert)
  { format: { format: 'mxfp4', group: 32 }, shape: [3, 7, 96] },
  { format: { format: 'mxfp4', group: 6 }, shape: [2, 3, 42] },
  { format: { format: 'f16' }, shape: [3, 5, 7] }, // an odd element count: the last word half full
  { format: { format: 'bf16' }, shape: [3, 5, 7] },
];

describe('round trip: |w - deq(q(w))| <= half a quantization step, per element', () => {
  for (const { format, shape } of cases) {
    const group = format.group ?? 7;
    it(`${JSON.stringify(format)} [${shape.join(', ')}]`, () => {
      const w = weightsOf(shape, group);
      const words = packWeight(format, w, shape);
      const { count, rows, cols } = matricesOf(shape);
      expect(words.length).toBe(count * matrixLayout(format, rows, cols).matrixWords);
      const deq = unpackWeight(format, words, shape);
      expect(dequantize(format, w, shape)).toEqual(deq);
      let worst = 0;
      for (let i = 0; i < w.length; i++) {
        const m = Math.floor(i / (rows * cols));
        const g = Math.floor((i % (rows * cols)) / group);
        const scale = 'group' in format ? scaleOf(format, words, shape, m, g) : 1;
        const bound = halfStep(format, w[i]!, scale);
        const error = Math.abs(w[i]! - deq[i]!);
        if (!(error <= bound * (1 + 1e-9))) expect.fail(`element ${i}: w ${w[i]}, deq ${deq[i]}, error ${error} > half step ${bound} (scale ${scale})`);
        worst = Math.max(worst, bound > 0 ? error / bound : 0);
      }
      expect(worst).toBeLessThanOrEqual(1 + 1e-9);
    });
  }

  it('mxfp4 picks the smallest power-of-two scale that holds the group max (no value saturates)', () => {
    const shape = [4, 64];
    const w = weightsOf(shape, 32);
    const words = packWeight({ format: 'mxfp4', group: 32 }, w, shape);
    for (let g = 0; g < 8; g++) {
      const max = Math.max(...w.subarray(g * 32, (g + 1) * 32).map(Math.abs));
      const scale = scaleOf({ format: 'mxfp4', group: 32 }, words, shape, 0, g);
      if (max === 0 || max < 2 ** -120) continue; // zero and tiny groups take the smallest scale
      expect(max / scale).toBeLessThanOrEqual(6);
      expect(max / (scale / 2)).toBeGreaterThan(6);
    }
  });
});

describe('mxfp4 checkpoints survive a round trip', () => {
  it('values dequantized from OCP-scaled MXFP4 (gpt-oss) re-pack to the same values', () => {
    // OCP picks scale 2^(floor(log2 max) - 2); any such group's values are E2M1 multiples of a power of two that this codec's scale also reaches.
    const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
    const shape = [4, 8, 64];
    const w = new Float32Array(4 * 8 * 64);
    for (let g = 0; g * 32 < w.length; g++) {
      const scale = 2 ** Math.floor(40 * random() - 20);
      const top = Math.floor(8 * random()); // groups whose largest code is anything, 0 included
      for (let i = g * 32; i < (g + 1) * 32; i++) w[i] = (random() < 0.5 ? -1 : 1) * E2M1[Math.floor(random() * (top + 1))]! * scale + 0; // + 0: no -0, which decodes as +0
    }
    expect(dequantize({ format: 'mxfp4', group: 32 }, w, shape)).toEqual(w);
  });
});

describe('bit layout (what the WGSL decodes)', () => {
  it('int4: MLC q4f16_1, 8 nibbles per word from the low bits, then f16 scales two per word', () => {
    const w = Float32Array.from([0.7, -0.7, 0.1, 0, 0.3, -0.1, 0.2, -0.3]);
    const words = packWeight({ format: 'int4', group: 8 }, w, [1, 8]);
    // scale = f16(0.7 / 7) = f16(0.1); q = round(w / scale + 7)
    expect(words.length).toBe(2);
    expect([...Array(8)].map((_, i) => (words[0]! >>> (4 * i)) & 0xf)).toEqual([14, 0, 8, 7, 10, 6, 9, 4]);
    expect(words[1]! & 0xffff).toBe(0x2e66); // 0.1 in binary16
  });

  it('int2: 16 crumbs per word from the low bits (levels (q - 1.5) scale), then f16 scales two per word', () => {
    const w = Float32Array.from([0.3, -0.3, 0.05, -0.05, 0.15, -0.2, 0.29, 0.0]);
    const words = packWeight({ format: 'int2', group: 8 }, w, [1, 8]);
    // scale = f16(0.3 / 1.5) = f16(0.2); q = clamp(floor(w / scale + 2), 0, 3): the nearest of -1.5, -0.5, 0.5, 1.5
    expect(words.length).toBe(2);
    expect([...Array(8)].map((_, i) => (words[0]! >>> (2 * i)) & 0x3)).toEqual([3, 0, 2, 1, 2, 0, 3, 2]);
    expect(words[1]! & 0xffff).toBe(0x3266); // 0.2 in binary16
  });

  it('int8: 4 signed bytes per word, then one f32 scale per group', () => {
    const w = Float32Array.from([1.27, -1.27, 0.01, -0.5]);
    const words = packWeight({ format: 'int8', group: 4 }, w, [1, 4]);
    expect([0, 1, 2, 3].map((i) => (words[0]! << (24 - 8 * i)) >> 24)).toEqual([127, -127, 1, -50]);
    expect(new Float32Array(words.buffer, 4, 1)[0]).toBe(Math.fround(1.27 / 127));
  });

  it('mxfp4: E2M1 codes (sign in bit 3) 8 per word, then E8M0 bytes', () => {
    const w = Float32Array.from([6, -3, 0.5, 0, -1.5, 4, 2, -0.25]);
    const words = packWeight({ format: 'mxfp4', group: 8 }, w, [1, 8]);
    // scale 1 (biased 127); -0.25 is a tie between 0 and 0.5: to the even code 0 (+0).
    expect([...Array(8)].map((_, i) => (words[0]! >>> (4 * i)) & 0xf)).toEqual([7, 8 | 5, 1, 0, 8 | 3, 6, 4, 0]);
    expect(words[1]! & 0xff).toBe(127);
  });

  it('f16 and bf16: element 2j in the low half of word j', () => {
    const w = Float32Array.from([1, -2, 0.5]);
    expect([...packWeight({ format: 'f16' }, w, [1, 3])]).toEqual([0xc0003c00, 0x3800]);
    expect([...packWeight({ format: 'bf16' }, w, [1, 3])]).toEqual([0xc0003f80, 0x3f00]);
  });
});

describe('what a format cannot store', () => {
  it('f16 overflow names the element', () => {
    const w = new Float32Array(12).fill(1);
    w[7] = 1e5;
    expect(() => packWeight({ format: 'f16' }, w, [2, 2, 3], 'layers.0.moe.experts.up')).toThrow(
      new WeightCodecError('layers.0.moe.experts.up: cannot store as f16: element [1, 0, 1] is 100000, which f16 (largest 65504) cannot hold (weights must be finite)'),
    );
  });
  it('NaN in a quantized weight', () => {
    const w = new Float32Array(8);
    w[3] = NaN;
    expect(() => packWeight({ format: 'int4', group: 4 }, w, [2, 4], 'w')).toThrow(/^w: cannot store as int4\(group = 4\): element \[0, 3\] is NaN; quantized weights must be finite$/);
  });
  it('a group that does not divide the reduced dimension', () => {
    expect(() => packWeight({ format: 'int8', group: 32 }, new Float32Array(48), [2, 24], 'w')).toThrow(/int8\(group = 32\) needs a group that divides the reduced dimension 24/);
  });
});
