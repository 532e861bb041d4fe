// Packs f32 weights (IR layout, as read from a checkpoint) into the GPU storage of a format, and
// back: `dequantize` gives the CPU reference exactly the values the kernels decode. Browser-safe.
import { bf16Codec, f16Codec } from './half-codecs.js';
import { int4Codec, int8Codec } from './int-codecs.js';
import type { MatrixCodec } from './matrix-codec.js';
import { mxfp4Codec } from './mxfp4-codec.js';
import { checkFormatFits, describeFormat, groupOf, matricesOf, matrixLayout, type WeightFormat, type WeightFormatName } from './weight-format.js';

export class WeightCodecError extends Error {
  override readonly name = 'WeightCodecError';
}

const f32Codec: MatrixCodec = {
  encode(values, words, at) {
    words.set(new Uint32Array(values.buffer, values.byteOffset, values.length), at);
  },
  decode(words, at, values) {
    values.set(new Float32Array(words.buffer, words.byteOffset + at * 4, values.length));
  },
};

const codecs: Record<WeightFormatName, MatrixCodec> = { f32: f32Codec, f16: f16Codec, bf16: bf16Codec, int8: int8Codec, int4: int4Codec, mxfp4: mxfp4Codec };

function checkedMatrices(format: WeightFormat, shape: readonly number[], what: string, length?: number) {
  const m = matricesOf(shape);
  if (length !== undefined && length !== m.count * m.rows * m.cols) throw new WeightCodecError(`${what} [${shape.join(', ')}]: expected ${m.count * m.rows * m.cols} values, got ${length}`);
  try {
    checkFormatFits(format, m.cols, `${what} [${shape.join(', ')}]`);
  } catch (e) {
    throw new WeightCodecError((e as Error).message);
  }
  return { ...m, layout: matrixLayout(format, m.rows, m.cols), group: groupOf(format) ?? 1 };
}

/** `values` (a weight of `shape`, f32, IR layout) in `format`'s GPU words (weight-format.ts). */
export function packWeight(format: WeightFormat, values: Float32Array, shape: readonly number[], what = 'weight'): Uint32Array {
  const { count, rows, cols, layout, group } = checkedMatrices(format, shape, what, values.length);
  if (format.format === 'f32') return new Uint32Array(values.buffer, values.byteOffset, values.length); // already the GPU's bytes
  const words = new Uint32Array(count * layout.matrixWords);
  const n = rows * cols;
  for (let m = 0; m < count; m++) {
    try {
      codecs[format.format].encode(values.subarray(m * n, (m + 1) * n), words, m * layout.matrixWords, layout, group);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      // The codec counts elements within one matrix; say where in the weight, [matrix, row, col].
      const message = e.message.replace(/^element (\d+)/, (_, i: string) => `element [${[...(count > 1 ? [m] : []), Math.floor(Number(i) / cols), Number(i) % cols].join(', ')}]`);
      throw new WeightCodecError(`${what}: cannot store as ${describeFormat(format)}: ${message}`);
    }
  }
  return words;
}

/** The values the GPU reads back from `words` (packWeight's output for a weight of `shape`). */
export function unpackWeight(format: WeightFormat, words: Uint32Array, shape: readonly number[], what = 'weight'): Float32Array {
  const { count, rows, cols, layout, group } = checkedMatrices(format, shape, what);
  if (words.length !== count * layout.matrixWords) throw new WeightCodecError(`${what}: expected ${count * layout.matrixWords} words of ${describeFormat(format)}, got ${words.length}`);
  const n = rows * cols;
  const values = new Float32Array(count * n);
  for (let m = 0; m < count; m++) codecs[format.format].decode(words, m * layout.matrixWords, values.subarray(m * n, (m + 1) * n), layout, group);
  return values;
}

/** What the kernels compute with when a weight is stored in `format`: unpack(pack(values)). */
export function dequantize(format: WeightFormat, values: Float32Array, shape: readonly number[], what = 'weight'): Float32Array {
  if (format.format === 'f32') return values;
  return unpackWeight(format, packWeight(format, values, shape, what), shape, what);
}
