// Half-precision conversions for weights stored as F16 / BF16 (no Float16Array in Node 20).

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

let halfToFloatTable: Float32Array | undefined;

function buildHalfToFloatTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    if (exponent === 0) table[bits] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[bits] = mantissa ? NaN : sign * Infinity;
    else table[bits] = sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
  }
  return table;
}

/** Widens IEEE binary16 bit patterns to f32 (exact: every f16 is an f32). */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const table = (halfToFloatTable ??= buildHalfToFloatTable()); // 256 KiB, built on first use
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** One binary16 bit pattern (0..0xffff) as a number. */
export function float16BitToFloat32(bits: number): number {
  return (halfToFloatTable ??= buildHalfToFloatTable())[bits & 0xffff]!;
}

/** Rounds one f32 to the nearest binary16 bit pattern (ties to even; overflow to infinity). */
export function float32ToFloat16Bit(value: number): number {
  scratchF32[0] = value;
  const f32 = scratchU32[0]!;
  const sign = (f32 >>> 16) & 0x8000;
  const exponent = (f32 >>> 23) & 0xff;
  const mantissa = f32 & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 31) return sign | 0x7c00;
  if (halfExponent < -10) return sign; // below half the smallest subnormal
  // Normal results keep the exponent field; subnormal ones shift the full significand further right.
  const significand = halfExponent > 0 ? mantissa : mantissa | 0x800000;
  const shift = halfExponent > 0 ? 13 : 14 - halfExponent;
  let result = significand >>> shift;
  const remainder = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (remainder > halfway || (remainder === halfway && result & 1)) result++;
  return sign | ((halfExponent > 0 ? halfExponent << 10 : 0) + result); // a carry rolls into the exponent
}

export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bit(values[i]!);
  return out;
}

/** Rounds f32 values to bfloat16 bit patterns (the top 16 bits, ties to even). */
export function float32ToBfloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    scratchF32[0] = values[i]!;
    const bits = scratchU32[0]!;
    const isNaN = (bits & 0x7fffffff) > 0x7f800000;
    out[i] = isNaN ? (bits >>> 16) | 0x40 : ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}
