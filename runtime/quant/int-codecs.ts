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

export const int4Codec: MatrixCodec = {
  encode(values, words, at, layout, group) {
    words.fill(0, at, at + layout.matrixWords);
    for (let g = 0; g * group < values.length; g++) {
      const begin = g * group;
      const max = absMax(values, begin, begin + group);
      let bits = float32ToFloat16Bit(max / 7);
      if (bits >= 0x7c00) throw new RangeError(`element ${begin}: a group with max |w| = ${max} needs an int4 scale beyond the f16 range`);
      if (bits === 0 && max > 0) bits = 1; // the smallest f16 subnormal: tiny weights stay within half a step
      const scale = float16BitToFloat32(bits);
      words[at + layout.valueWords + (g >> 1)]! |= bits << (16 * (g & 1));
      for (let i = begin; i < begin + group; i++) {
        const q = scale > 0 ? Math.min(14, Math.max(0, Math.round(values[i]! / scale + 7))) : 7;
        words[at + (i >> 3)]! |= q << (4 * (i & 7));
      }
    }
  },
  decode(words, at, values, layout, group) {
    for (let i = 0; i < values.length; i++) {
      const g = Math.floor(i / group);
      const scale = float16BitToFloat32(words[at + layout.valueWords + (g >> 1)]! >>> (16 * (g & 1)));
      const q = (words[at + (i >> 3)]! >>> (4 * (i & 7))) & 0xf;
      values[i] = Math.fround((q - 7) * scale);
    }
  },
};

export const int2Codec: MatrixCodec = {
  encode(values, words, at, layout, group) {
    words.fill(0, at, at + layout.matrixWords);
    for (let g = 0; g * group < values.length; g++) {
      const begin = g * group;
      const max = absMax(values, begin, begin + group);
      let bits = float32ToFloat16Bit(max / 1.5);
      if (bits >= 0x7c00) throw new RangeError(`element ${begin}: a group with max |w| = ${max} needs an int2 scale beyond the f16 range`);
      if (bits === 0 && max > 0) bits = 1; // the smallest f16 subnormal, as int4
      const scale = float16BitToFloat32(bits);
      words[at + layout.valueWords + (g >> 1)]! |= bits << (16 * (g & 1));
      for (let i = begin; i < begin + group; i++) {
        // A zero scale (an all-zero group) decodes every code to 0.
        const q = scale > 0 ? Math.min(3, Math.max(0, Math.floor(values[i]! / scale + 2))) : 0;
        words[at + (i >> 4)]! |= q << (2 * (i & 15));
      }
    }
  },
  decode(words, at, values, layout, group) {
    for (let i = 0; i < values.length; i++) {
      const g = Math.floor(i / group);
      const scale = float16BitToFloat32(words[at + layout.valueWords + (g >> 1)]! >>> (16 * (g & 1)));
      const q = (words[at + (i >> 4)]! >>> (2 * (i & 15))) & 0x3;
      values[i] = Math.fround((q - 1.5) * scale);
    }
  },
};
