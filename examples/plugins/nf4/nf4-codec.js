// NF4 (QLoRA 4-bit NormalFloat, Dettmers et al. 2023) as a moec weight format: its layout and codec.
// Browser-safe and self-contained (no imports): model.js bundles this module, so a compiled bundle
// packs NF4 weights without the plugin. Per group of `group` consecutive elements along the reduced
// dim: absmax = max |w| (an f32), each element the index of the level nearest w / absmax.
//
//   matrix words: [ 8 nibbles per u32 (element i at bits 4 (i % 8)) ][ one f32 absmax per group ]
//   decode: w = f32(NF4_LEVELS[q]) * absmax, one f32 multiply, exactly as the WGSL load does.

/** The 16 NF4 levels (bitsandbytes), ascending: quantiles of N(0, 1) scaled to [-1, 1], with an exact 0. */
export const NF4_LEVELS = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];

/** The levels as the GPU holds them (f32). */
export const NF4_LEVELS_F32 = Float32Array.from(NF4_LEVELS);

/** The code of 0.0: what an all-zero group stores. */
const ZERO_CODE = NF4_LEVELS.indexOf(0);

/** Midpoints between neighbouring levels: x goes to the lower level when x <= the midpoint. */
const MIDPOINTS = NF4_LEVELS.slice(1).map((level, q) => (NF4_LEVELS[q] + level) / 2);

/** The code (0..15) of the level nearest x (x in [-1, 1]). */
export function nearestLevel(x) {
  let q = 0;
  while (q < 15 && x > MIDPOINTS[q]) q++;
  return q;
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** @type {import('moec/plugin').MatrixCodec} */
const nf4Codec = {
  encode(values, words, at, layout, group) {
    words.fill(0, at, at + layout.matrixWords);
    for (let begin = 0; begin < values.length; begin += group) {
      let absmax = 0;
      for (let i = begin; i < begin + group; i++) {
        const v = values[i];
        if (!Number.isFinite(v)) throw new RangeError(`element ${i} is ${v}; quantized weights must be finite`);
        absmax = Math.max(absmax, Math.abs(v));
      }
      f32[0] = absmax; // exact: the largest |w| of f32 values
      words[at + layout.valueWords + begin / group] = f32Bits[0];
      for (let i = begin; i < begin + group; i++) {
        const q = absmax > 0 ? nearestLevel(values[i] / absmax) : ZERO_CODE;
        words[at + (i >> 3)] |= q << (4 * (i & 7));
      }
    }
  },
  decode(words, at, values, layout, group) {
    for (let i = 0; i < values.length; i++) {
      f32Bits[0] = words[at + layout.valueWords + Math.floor(i / group)];
      const q = (words[at + (i >> 3)] >>> (4 * (i & 7))) & 0xf;
      values[i] = Math.fround(NF4_LEVELS_F32[q] * f32[0]);
    }
  },
};

/** @type {import('moec/plugin').FormatDefinition} */
export default { name: 'nf4', perWord: 8, scalesPerWord: 1, codec: nf4Codec };
