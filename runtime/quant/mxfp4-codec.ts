// OCP microscaling FP4: E2M1 values {0, 0.5, 1, 1.5, 2, 3, 4, 6} x sign, one E8M0 scale 2^(e - 127)
// per group. Codes: bit 3 sign, bits 0..2 the magnitude's index in that list; 8 per u32 (element
// i at bits 4 (i % 8)); scales are bytes, 4 per u32 (group g at bits 8 (g % 4)).
// The scale is the smallest power of two with max|w| / scale <= 6, so no value saturates and each
// lands within half a grid step (OCP's floor(log2 max) - 2 would clip the top of a group to 6).
import { absMax, type MatrixCodec } from './matrix-codec.js';

export const E2M1_VALUES = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
/** Midpoints between neighbouring E2M1 magnitudes. */
const MIDPOINTS = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5];
/** Biased exponents 2..254: the scale and half of it stay normal f32 (no subnormal flush on GPUs). */
const MIN_BIASED = 2;
const MAX_BIASED = 254;

/** The smallest biased exponent e with max / 2^(e - 127) <= 6. */
function scaleExponent(max: number): number {
  if (max === 0) return 127;
  let e = Math.ceil(Math.log2(max / 6)) + 127;
  while (e < MAX_BIASED && max / 2 ** (e - 127) > 6) e++; // log2 may land one off at powers of two
  while (e > MIN_BIASED && max / 2 ** (e - 128) <= 6) e--;
  return Math.min(MAX_BIASED, Math.max(MIN_BIASED, e));
}

/** Round to nearest E2M1 magnitude code, ties to the even code (OCP). */
function magnitudeCode(x: number): number {
  let code = 0;
  while (code < 7 && (x > MIDPOINTS[code]! || (x === MIDPOINTS[code] && (code & 1) === 1))) code++;
  return code;
}

export const mxfp4Codec: MatrixCodec = {
  encode(values, words, at, layout, group) {
    words.fill(0, at, at + layout.matrixWords);
    for (let g = 0; g * group < values.length; g++) {
      const begin = g * group;
      const e = scaleExponent(absMax(values, begin, begin + group));
      const scale = 2 ** (e - 127);
      words[at + layout.valueWords + (g >> 2)]! |= e << (8 * (g & 3));
      for (let i = begin; i < begin + group; i++) {
        const v = values[i]!;
        const magnitude = magnitudeCode(Math.abs(v) / scale);
        const code = magnitude | (v < 0 && magnitude > 0 ? 8 : 0);
        words[at + (i >> 3)]! |= code << (4 * (i & 7));
      }
    }
  },
  decode(words, at, values, layout, group) {
    for (let i = 0; i < values.length; i++) {
      const g = Math.floor(i / group);
      const e = (words[at + layout.valueWords + (g >> 2)]! >>> (8 * (g & 3))) & 0xff;
      const code = (words[at + (i >> 3)]! >>> (4 * (i & 7))) & 0xf;
      const magnitude = E2M1_VALUES[code & 7]! * 2 ** (e - 127);
      values[i] = Math.fround(code & 8 ? -magnitude : magnitude);
    }
  },
};
