// The storage formats a weight matrix can have on the GPU, and their word layout. A weight of
// shape [..., rows, cols] (IR layout: rows = output features, cols = the reduced input dim) is
// stored as count = prod(leading dims) matrices, each a fixed number of u32 words:
//
//   [ values: rows * cols elements packed in order (element i = r * cols + c), `perWord` per u32 ]
//   [ scales: one per `group` consecutive elements along cols, `scalesPerWord` per u32 ]
//
// Packing the whole matrix as one stream keeps any cols legal (a row may start mid-word); the
// fixed per-matrix size lets a kernel find matrix m at word m * matrixWords in any expert shard.
// The formats are a table passed explicitly (builtin-formats.ts by default), so a plugin adds one.
import { builtinFormats } from './builtin-formats.js';
import type { MatrixCodec } from './matrix-codec.js';

/**
 * A weight's storage format: a name from a FormatTable and, for scaled formats, the elements per
 * scale. Builtin: f32, f16, bf16; int8 (symmetric, q in [-127, 127], one f32 scale per group);
 * int4 (MLC q4f16_1: q = clamp(round(w / s + 7), 0, 14), w ~ (q - 7) s, one f16 scale per group);
 * mxfp4 (OCP MXFP4: E2M1 values, one E8M0 scale per group). A plugin adds its own by name.
 */
export interface WeightFormat {
  format: string;
  group?: number;
}

export const F32: WeightFormat = { format: 'f32' };

/** How a format fills a matrix's words: elements per value word, scales per scale word. */
export interface FormatLayout {
  /** Elements per u32 in the value region (1 for f32). */
  perWord: number;
  /** Scales per u32 (0: no scales). */
  scalesPerWord: number;
}

/** A storage format: its layout and the codec that packs f32 values into it and back (browser-safe). */
export interface FormatDefinition extends FormatLayout {
  /** The IR dtype's format name (a quantization kind's name). */
  name: string;
  codec: MatrixCodec;
}

/** Formats by name; the builtin ones are builtin-formats.ts, a plugin's are added with withFormats. */
export type FormatTable = Readonly<Record<string, FormatDefinition>>;
/** What sizing needs of a FormatTable (the target description carries one). */
export type FormatLayouts = Readonly<Record<string, FormatLayout>>;

/** `table[name]`, or a message naming the known formats. */
export function formatEntry<T>(table: Readonly<Record<string, T>>, name: string): T {
  if (Object.hasOwn(table, name)) return table[name]!;
  throw new Error(`weight format ${name} is unknown here (known: ${Object.keys(table).join(', ')}); ` +
    "a plugin's format needs its FormatDefinition passed as `formats`");
}

/** Throws unless `definition` is a usable format: a name, a layout that packs whole elements per u32, a codec. */
export function checkFormatDefinition(definition: FormatDefinition, what = 'format'): void {
  const d = definition as Partial<FormatDefinition> | undefined;
  const fail = (message: string): never => {
    throw new TypeError(`${what}: ${message}`);
  };
  if (typeof d !== 'object' || d === null) fail('is not a FormatDefinition { name, perWord, scalesPerWord, codec }');
  if (typeof d!.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(d!.name)) fail(`name ${String(d!.name)} must be an identifier`);
  if (!Number.isInteger(d!.perWord) || d!.perWord! < 1 || d!.perWord! > 32) fail(`perWord must be a whole number 1..32, not ${String(d!.perWord)}`);
  if (!Number.isInteger(d!.scalesPerWord) || d!.scalesPerWord! < 0 || d!.scalesPerWord! > 32) fail(`scalesPerWord must be a whole number 0..32, not ${String(d!.scalesPerWord)}`);
  if (typeof d!.codec?.encode !== 'function' || typeof d!.codec?.decode !== 'function') fail('codec must have encode() and decode()');
}

/** A copy of `base` with `extras` added; the same definition twice is fine, another under a taken name is not. */
export function withFormats(base: FormatTable, extras: readonly FormatDefinition[] = []): FormatTable {
  const table: Record<string, FormatDefinition> = { ...base };
  for (const definition of extras) {
    checkFormatDefinition(definition);
    const existing = Object.hasOwn(table, definition.name) ? table[definition.name] : undefined;
    if (existing && existing !== definition) throw new TypeError(`weight format ${definition.name} is defined twice`);
    table[definition.name] = definition;
  }
  return table;
}

export interface MatrixLayout extends FormatLayout {
  valueWords: number;
  scaleWords: number;
  /** valueWords + scaleWords: matrix m starts at word m * matrixWords. */
  matrixWords: number;
}

export function groupOf(format: WeightFormat): number | undefined {
  return format.group;
}

export function describeFormat(format: WeightFormat): string {
  const group = groupOf(format);
  return group === undefined ? format.format : `${format.format}(group = ${group})`;
}

/** Throws unless `format` can store matrices of `cols` reduced elements. */
export function checkFormatFits(format: WeightFormat, cols: number, what: string): void {
  const group = groupOf(format);
  if (group !== undefined && (!Number.isInteger(group) || group < 1 || cols % group !== 0)) {
    throw new RangeError(`${what}: ${describeFormat(format)} needs a group that divides the reduced dimension ${cols}`);
  }
}

/** `formats`: where the format's layout is looked up (default the builtin formats; a plugin's registry adds its own). */
export function matrixLayout(format: WeightFormat, rows: number, cols: number, formats: FormatLayouts = builtinFormats): MatrixLayout {
  const { perWord, scalesPerWord } = formatEntry(formats, format.format);
  const n = rows * cols;
  const valueWords = Math.ceil(n / perWord);
  const group = groupOf(format);
  const scaleWords = group === undefined || scalesPerWord === 0 ? 0 : Math.ceil(n / group / scalesPerWord);
  return { perWord, scalesPerWord, valueWords, scaleWords, matrixWords: valueWords + scaleWords };
}

/** Rows and cols of the matrices of a weight of `shape` ([..., rows, cols]; a vector is one row), and how many there are. */
export function matricesOf(shape: readonly number[]): { count: number; rows: number; cols: number } {
  const cols = shape[shape.length - 1] ?? 1;
  const rows = shape.length >= 2 ? shape[shape.length - 2]! : 1;
  const count = shape.slice(0, -2).reduce((n, d) => n * d, 1);
  return { count, rows, cols };
}

/** Bytes a weight of `shape` takes on the GPU in `format`. */
export function packedBytes(format: WeightFormat, shape: readonly number[], formats: FormatLayouts = builtinFormats): number {
  const { count, rows, cols } = matricesOf(shape);
  return count * matrixLayout(format, rows, cols, formats).matrixWords * 4;
}
