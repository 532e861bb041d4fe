// 16-bit floats, 2 per u32 (element i in the low half when i is even): f16 rounds to nearest
// even and must stay finite; bf16 keeps f32's range (the top 16 bits, rounded to nearest even).
import { float16BitToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from '../float16.js';
import type { MatrixCodec } from './matrix-codec.js';

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

function packHalves(halves: Uint16Array, words: Uint32Array, at: number, words16: number): void {
  words.fill(0, at, at + words16);
  for (let i = 0; i < halves.length; i++) words[at + (i >> 1)]! |= halves[i]! << (16 * (i & 1));
}

const halfAt = (words: Uint32Array, at: number, i: number): number => (words[at + (i >> 1)]! >>> (16 * (i & 1))) & 0xffff;

function checkFinite(values: Float32Array, halves: Uint16Array, exponentMask: number, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if ((halves[i]! & exponentMask) === exponentMask) throw new RangeError(`element ${i} is ${values[i]}, which ${what} cannot hold (weights must be finite)`);
  }
}

export const f16Codec: MatrixCodec = {
  encode(values, words, at, layout) {
    const halves = float32ToFloat16Bits(values);
    checkFinite(values, halves, 0x7c00, 'f16 (largest 65504)');
    packHalves(halves, words, at, layout.matrixWords);
  },
  decode(words, at, values) {
    for (let i = 0; i < values.length; i++) values[i] = float16BitToFloat32(halfAt(words, at, i));
  },
};

export const bf16Codec: MatrixCodec = {
  encode(values, words, at, layout) {
    const halves = float32ToBfloat16Bits(values);
    checkFinite(values, halves, 0x7f80, 'bf16');
    packHalves(halves, words, at, layout.matrixWords);
  },
  decode(words, at, values) {
    for (let i = 0; i < values.length; i++) {
      f32Bits[0] = halfAt(words, at, i) << 16;
      values[i] = f32[0]!;
    }
  },
};
