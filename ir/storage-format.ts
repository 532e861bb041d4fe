// IR param dtype (set by passes/quantize-weights.ts) -> the runtime's storage format of the
// weight (runtime/quant/weight-format.ts), which sizes expert shards and picks the kernels' loads.
// A quantized dtype names its format; which formats exist is a table passed in (the target's
// weightFormats: the builtin ones plus a plugin's), never a fixed list.
import { quantTargetOfRole, type Value } from './graph.js';
import { dtypeName, isMixed, type DType } from './types.js';
import { builtinFormats } from '../runtime/quant/builtin-formats.js';
import { dequantize } from '../runtime/quant/weight-codec.js';
import { checkFormatFits, type FormatTable, type WeightFormat } from '../runtime/quant/weight-format.js';

/** The formats a weight may be stored in, by name (a FormatTable, the target's weightFormats, a codegen table). */
export type KnownFormats = Readonly<Record<string, object>>;

/** The `quantize <target>` a param's format comes from, for messages. */
export function quantTargetOf(param: Value): string {
  return quantTargetOfRole(param.role) ?? param.role ?? 'weights';
}

/** The format a dtype names, known to any table or not: a float type or { format, group }; undefined for i32 / u32. */
export function storageFormatOf(dtype: DType): WeightFormat | undefined {
  if (dtype === 'f32' || dtype === 'f16' || dtype === 'bf16') return { format: dtype };
  if (typeof dtype === 'string' || isMixed(dtype)) return undefined;
  return { format: dtype.format, group: dtype.group };
}

const listed = (names: string[]): string => (names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)!}` : names.join(''));

/**
 * The storage format of an IR weight; throws for a dtype no kernel can read (one not in
 * `formats`, default the builtin ones) or a group that does not divide the reduced dim.
 */
export function weightFormatOf(param: Value, formats: KnownFormats = builtinFormats): WeightFormat {
  const format = storageFormatOf(param.type.dtype);
  if (!format || !Object.hasOwn(formats, format.format)) {
    throw new Error(`${param.name} is stored as ${dtypeName(param.type.dtype)}, which the WebGPU kernels cannot read; ` +
      `use ${listed(Object.keys(formats))} in \`quantize ${quantTargetOf(param)} = ...\``);
  }
  const shape = param.type.shape;
  const cols = shape[shape.length - 1];
  if (typeof cols === 'number') checkFormatFits(format, cols, `${param.name} (\`quantize ${quantTargetOf(param)} = ...\`)`);
  return format;
}

/** Each expert's storage format of a weight whose experts differ (mixed precision); undefined for one format. */
export function expertFormatsOf(param: Value, formats: KnownFormats = builtinFormats): WeightFormat[] | undefined {
  const dtype = param.type.dtype;
  return isMixed(dtype) ? dtype.experts.map((d) => weightFormatOf({ ...param, type: { ...param.type, dtype: d } }, formats)) : undefined;
}

/**
 * A param's f32 values through its storage format and back: what the kernels compute with, for
 * the reference interpreter. A mixed weight's experts each go through their own format.
 */
export function dequantizeParam(param: Value, values: Float32Array, formats: FormatTable = builtinFormats): Float32Array {
  const shape = param.type.shape as number[];
  const perExpert = expertFormatsOf(param, formats);
  if (!perExpert) return dequantize(weightFormatOf(param, formats), values, shape, param.name, formats);
  const rowElements = shape.slice(1).reduce((a, d) => a * d, 1);
  const out = new Float32Array(values.length);
  perExpert.forEach((format, e) => {
    const rows = values.subarray(e * rowElements, (e + 1) * rowElements);
    out.set(dequantize(format, rows, [1, ...shape.slice(1)], `${param.name}[${e}]`, formats), e * rowElements);
  });
  return out;
}
