// Symmetric integer formats with one scale per group of `group` elements along the reduced dim.
//   int8: q = clamp(round(w / s), -127, 127), s = max|w| / 127 (f32), w ~ q s; 4 bytes per u32.
//   int4 (MLC q4f16_1): s = f16(max|w| / 7), q = clamp(round(w / s + 7), 0, 14), w ~ (q - 7) s;
//   8 nibbles per u32 (element i at bits 4 (i % 8)), 2 f16 scales per u32 (low half first).
//   int2: four levels +-0.5 s, +-1.5 s (no zero: a symmetric 2-bit grid wastes no code on it),
//   s = f16(max|w| / 1.5), q = clamp(floor(w / s + 2), 0, 3) (the nearest level), w ~ (q - 1.5) s;
//   16 crumbs per u32 (element i at bits 2 (i % 16)), 2 f16 scales per u32 as int4.
// Decoding multiplies in f32 exactly as the WGSL does, so the CPU sees the GPU's values.
import { float16BitToFloat32, float32ToFloat16Bit } from '../float16.js';
import { absMax, type MatrixCodec } from './matrix-codec.js';

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

export const int8Codec: MatrixCodec = {
  encode(values, words, at, layout, group) {
    words.fill(0, at, at + layout.matrixWords);
    for (let g = 0; g * group < values.length; g++) {
      const begin = g * group;
      const scale = Math.fround(absMax(values, begin, begin + group) / 127);
      f32[0] = scale;
      words[at + layout.valueWords + g] = f32Bits[0]!;
      for (let i = begin; i < begin + group; i++) {
        const q = scale > 0 ? Math.min(127, Math.max(-127, Math.round(values[i]! / scale))) : 0;
        words[at + (i >> 2)]! |= (q & 0xff) << (8 * (i & 3));
      }
    }
  },
  decode(words, at, values, layout, group) {
    for (let i = 0; i < values.length; i++) {
      f32Bits[0] = words[at + layout.valueWords + Math.floor(i / group)]!;
      const q = (words[at + (i >> 2)]! << (24 - 8 * (i & 3))) >> 24; // sign-extend the byte
      values[i] = Math.fround(q * f32[0]!);
    }
  },
};

/**
 * A format of `bits`-bit codes packed from the low bits of each u32, with one f16 scale per group
 * (two per word, low half first): scale = f16(max|w| / top), w ~ (q - offset) scale.
 */
interface F16ScaledCodes {
  name: string;
  bits: number;
  /** max |w| / scale: the largest level. */
  top: number;
  offset: number;
  /** The code of w / scale (clamped to the codes); `zero`: the code of a group whose scale is 0. */
  code(x: number): number;
  zero: number;
}

function f16ScaledCodec(f: F16ScaledCodes): MatrixCodec {
  const perWord = 32 / f.bits;
  const mask = (1 << f.bits) - 1;
  return {
    encode(values, words, at, layout, group) {
      words.fill(0, at, at + layout.matrixWords);
      for (let g = 0; g * group < values.length; g++) {
        const begin = g * group;
        const max = absMax(values, begin, begin + group);
        let bits = float32ToFloat16Bit(max / f.top);
        if (bits >= 0x7c00) throw new RangeError(`element ${begin}: a group with max |w| = ${max} needs an ${f.name} scale beyond the f16 range`);
        if (bits === 0 && max > 0) bits = 1; // the smallest f16 subnormal: tiny weights stay within half a step
        const scale = float16BitToFloat32(bits);
        words[at + layout.valueWords + (g >> 1)]! |= bits << (16 * (g & 1));
        for (let i = begin; i < begin + group; i++) {
          const q = scale > 0 ? Math.min(mask, Math.max(0, f.code(values[i]! / scale))) : f.zero;
          words[at + Math.floor(i / perWord)]! |= q << (f.bits * (i % perWord));
        }
      }
    },
    decode(words, at, values, layout, group) {
      for (let i = 0; i < values.length; i++) {
        const g = Math.floor(i / group);
        const scale = float16BitToFloat32(words[at + layout.valueWords + (g >> 1)]! >>> (16 * (g & 1)));
        const q = (words[at + Math.floor(i / perWord)]! >>> (f.bits * (i % perWord))) & mask;
        values[i] = Math.fround((q - f.offset) * scale);
      }
    },
  };
}

/** Codes 0..14 (15 unused, as MLC's q4f16_1). */
export const int4Codec = f16ScaledCodec({ name: 'int4', bits: 4, top: 7, offset: 7, code: (x) => Math.min(14, Math.round(x + 7)), zero: 7 });

/** The nearest of the levels -1.5, -0.5, 0.5, 1.5; an all-zero group decodes every code to 0. */
export const int2Codec = f16ScaledCodec({ name: 'int2', bits: 2, top: 1.5, offset: 1.5, code: (x) => Math.floor(x + 2), zero: 0 });
