// The storage formats a weight matrix can have on the GPU, and their word layout. A weight of
// shape [..., rows, cols] (IR layout: rows = output features, cols = the reduced input dim) is
// stored as count = prod(leading dims) matrices, each a fixed number of u32 words:
//
//   [ values: rows * cols elements packed in order (element i = r * cols + c), `perWord` per u32 ]
//   [ scales: one per `group` consecutive elements along cols, `scalesPerWord` per u32 ]
//
// Packing the whole matrix as one stream keeps any cols legal (a row may start mid-word); the
// fixed per-matrix size lets a kernel find matrix m at word m * matrixWords in any expert shard.

export type WeightFormat =
  | { format: 'f32' }
  | { format: 'f16' }
  | { format: 'bf16' }
  /** Symmetric int8, q in [-127, 127], one f32 scale per group. */
  | { format: 'int8'; group: number }
  /** MLC q4f16_1: q = clamp(round(w / s + 7), 0, 14), w ~ (q - 7) s, one f16 scale per group. */
  | { format: 'int4'; group: number }
  /** OCP MXFP4: E2M1 values, one E8M0 (power of two) scale per group. */
  | { format: 'mxfp4'; group: number };

export type WeightFormatName = WeightFormat['format'];

export const F32: WeightFormat = { format: 'f32' };

export interface MatrixLayout {
  /** Elements per u32 in the value region (1 for f32). */
  perWord: number;
  /** Scales per u32 (0: no scales). */
  scalesPerWord: number;
  valueWords: number;
  scaleWords: number;
  /** valueWords + scaleWords: matrix m starts at word m * matrixWords. */
  matrixWords: number;
}

const PER_WORD: Record<WeightFormatName, number> = { f32: 1, f16: 2, bf16: 2, int8: 4, int4: 8, mxfp4: 8 };
/** int8: f32 scales; int4: f16 scales (2 per word); mxfp4: E8M0 bytes (4 per word). */
const SCALES_PER_WORD: Record<WeightFormatName, number> = { f32: 0, f16: 0, bf16: 0, int8: 1, int4: 2, mxfp4: 4 };

export function groupOf(format: WeightFormat): number | undefined {
  return 'group' in format ? format.group : undefined;
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

export function matrixLayout(format: WeightFormat, rows: number, cols: number): MatrixLayout {
  const perWord = PER_WORD[format.format];
  const scalesPerWord = SCALES_PER_WORD[format.format];
  const n = rows * cols;
  const valueWords = Math.ceil(n / perWord);
  const group = groupOf(format);
  const scaleWords = group === undefined ? 0 : Math.ceil(n / group / scalesPerWord);
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
export function packedBytes(format: WeightFormat, shape: readonly number[]): number {
  const { count, rows, cols } = matricesOf(shape);
  return count * matrixLayout(format, rows, cols).matrixWords * 4;
}
