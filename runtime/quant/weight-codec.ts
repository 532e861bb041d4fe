// Packs f32 weights (IR layout, as read from a checkpoint) into the GPU storage of a format, and
// back: `dequantize` gives the CPU reference exactly the values the kernels decode. Browser-safe.
// Each format's codec comes from a FormatTable (default the builtin formats; a plugin adds its own).
import { builtinFormats } from './builtin-formats.js';
import { checkFormatFits, describeFormat, formatEntry, groupOf, matricesOf, matrixLayout, type FormatTable, type WeightFormat } from './weight-format.js';

export class WeightCodecError extends Error {
  override readonly name = 'WeightCodecError';
}

function checkedMatrices(format: WeightFormat, shape: readonly number[], what: string, formats: FormatTable, length?: number) {
  const m = matricesOf(shape);
  let codec;
  try {
    codec = formatEntry(formats, format.format).codec;
  } catch (e) {
    throw new WeightCodecError(`${what}: ${(e as Error).message}`);
  }
  if (length !== undefined && length !== m.count * m.rows * m.cols) throw new WeightCodecError(`${what} [${shape.join(', ')}]: expected ${m.count * m.rows * m.cols} values, got ${length}`);
  try {
    checkFormatFits(format, m.cols, `${what} [${shape.join(', ')}]`);
  } catch (e) {
    throw new WeightCodecError((e as Error).message);
  }
  return { ...m, codec, layout: matrixLayout(format, m.rows, m.cols, formats), group: groupOf(format) ?? 1 };
}

/** `values` (a weight of `shape`, f32, IR layout) in `format`'s GPU words (weight-format.ts). */
export function packWeight(format: WeightFormat, values: Float32Array, shape: readonly number[], what = 'weight', formats: FormatTable = builtinFormats): Uint32Array {
  const { count, rows, cols, codec, layout, group } = checkedMatrices(format, shape, what, formats, values.length);
  if (format.format === 'f32') return new Uint32Array(values.buffer, values.byteOffset, values.length); // already the GPU's bytes
  const words = new Uint32Array(count * layout.matrixWords);
  const n = rows * cols;
  for (let m = 0; m < count; m++) {
    try {
      codec.encode(values.subarray(m * n, (m + 1) * n), words, m * layout.matrixWords, layout, group);
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
export function unpackWeight(format: WeightFormat, words: Uint32Array, shape: readonly number[], what = 'weight', formats: FormatTable = builtinFormats): Float32Array {
  const { count, rows, cols, codec, layout, group } = checkedMatrices(format, shape, what, formats);
  if (words.length !== count * layout.matrixWords) throw new WeightCodecError(`${what}: expected ${count * layout.matrixWords} words of ${describeFormat(format)}, got ${words.length}`);
  const n = rows * cols;
  const values = new Float32Array(count * n);
  for (let m = 0; m < count; m++) codec.decode(words, m * layout.matrixWords, values.subarray(m * n, (m + 1) * n), layout, group);
  return values;
}

/** What the kernels compute with when a weight is stored in `format`: unpack(pack(values)). */
export function dequantize(format: WeightFormat, values: Float32Array, shape: readonly number[], what = 'weight', formats: FormatTable = builtinFormats): Float32Array {
  if (format.format === 'f32') return values;
  return unpackWeight(format, packWeight(format, values, shape, what, formats), shape, what, formats);
}
