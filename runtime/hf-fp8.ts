// Block-scaled FP8 weights as DeepSeek-V3/R1 checkpoints store them (the release's
// README_WEIGHTS.md and inference/kernel.py weight_dequant; transformers'
// integrations/finegrained_fp8.py): a Linear weight [R, C] in F8_E4M3 (OCP E4M3FN codes) and a
// companion `<name>_scale_inv` F32 [ceil(R / bR), ceil(C / bC)] holding one scale per bR x bC
// block, where [bR, bC] is config.json's quantization_config.weight_block_size ([128, 128] as
// released); blocks at the bottom and right edges are partial. Dequantized, in f32:
//   w[r, c] = e4m3(code[r, c]) * scale_inv[floor(r / bR), floor(c / bC)]
// Browser-safe.
import type { RowRange } from './plan.js';

/** transformers' FineGrainedFP8Config default, and DeepSeek-V3's released block size. */
export const DEFAULT_FP8_BLOCK: readonly [number, number] = [128, 128];

/** The name of the block scales stored beside FP8 weight `name`. */
export const fp8ScaleName = (name: string): string => `${name}_scale_inv`;

/**
 * E4M3FN code -> value, exactly (every one is an f32): sign, 4 exponent bits (bias 7), 3 mantissa
 * bits; exponent 0 holds subnormals m * 2^-9; no infinities; only S.1111.111 (0x7f, 0xff) is NaN,
 * so S.1111.110 = +-448 is the largest value.
 */
export const E4M3_VALUES: Float32Array = Float32Array.from({ length: 256 }, (_, code) => {
  const sign = code & 0x80 ? -1 : 1;
  const exponent = (code >> 3) & 0xf;
  const mantissa = code & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -9;
  return sign * (8 + mantissa) * 2 ** (exponent - 10); // (1 + m/8) * 2^(e - 7)
});

const isPositiveInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/**
 * The FP8 block size a config.json declares: quantization_config.weight_block_size when its
 * quant_method is "fp8", else undefined. Throws an Error (the caller names config.json) for an
 * FP8 config moec cannot read: a format other than e4m3, or a block size that is not two
 * positive integers.
 */
export function fp8BlockSizeOf(config: Record<string, unknown> | undefined): readonly [number, number] | undefined {
  const q = config?.quantization_config;
  if (typeof q !== 'object' || q === null || (q as Record<string, unknown>).quant_method !== 'fp8') return undefined;
  const { fmt, weight_block_size: block } = q as Record<string, unknown>;
  if (fmt !== undefined && fmt !== 'e4m3') {
    throw new Error(`quantization_config.fmt is ${JSON.stringify(fmt)}; moec reads FP8 weights in e4m3 only`);
  }
  if (block === undefined || block === null) return DEFAULT_FP8_BLOCK;
  if (!Array.isArray(block) || block.length !== 2 || !block.every(isPositiveInteger)) {
    throw new Error(`quantization_config.weight_block_size ${JSON.stringify(block)} is not two positive integers [rows, cols]`);
  }
  return [block[0], block[1]];
}

/** The shape of `<name>_scale_inv` for a [rows, cols] weight in blocks of `block`. */
export function fp8ScaleShape(rows: number, cols: number, block: readonly [number, number]): [number, number] {
  return [Math.ceil(rows / block[0]), Math.ceil(cols / block[1])];
}

/** The rows of the scale tensor that weight rows `rows` need. */
export function fp8ScaleRows(rows: RowRange, blockRows: number): RowRange {
  const begin = Math.floor(rows.begin / blockRows);
  return { begin, end: rows.end > rows.begin ? Math.ceil(rows.end / blockRows) : begin };
}

/** A value dequantizeFp8 refuses: a NaN code in the weight, or a scale that is not finite. */
export class Fp8ValueError extends RangeError {
  override readonly name = 'Fp8ValueError';
  constructor(message: string, readonly inScales: boolean) {
    super(message);
  }
}

export interface Fp8Rows {
  /** Rows and columns of the codes given, and the first row's index in the weight. */
  rows: number;
  cols: number;
  firstRow: number;
  block: readonly [number, number];
}

/**
 * Dequantizes rows [firstRow, firstRow + rows) of an FP8 weight: `codes` are those rows' bytes,
 * `scales` the scale rows fp8ScaleRows() names. Each product is rounded to f32 once, as an f32
 * multiply does (both factors are f32 values, so the double product is exact). Throws an
 * Fp8ValueError naming [row, col] for a NaN code, or [block row, block col] for a scale that is
 * not finite.
 */
export function dequantizeFp8(codes: Uint8Array, scales: Float32Array, layout: Fp8Rows): Float32Array {
  const { rows, cols, firstRow, block: [blockRows, blockCols] } = layout;
  const scaleCols = Math.ceil(cols / blockCols);
  const { begin: scaleRow0, end: scaleRowEnd } = fp8ScaleRows({ begin: firstRow, end: firstRow + rows }, blockRows);
  const out = new Float32Array(rows * cols);
  const scaled = new Float32Array(256); // code -> value * this block's scale, rounded to f32
  for (let i = scaleRow0; i < scaleRowEnd; i++) {
    const rowBegin = Math.max(i * blockRows, firstRow) - firstRow;
    const rowEnd = Math.min((i + 1) * blockRows, firstRow + rows) - firstRow;
    for (let j = 0; j < scaleCols; j++) {
      const scale = scales[(i - scaleRow0) * scaleCols + j]!;
      if (!Number.isFinite(scale)) throw new Fp8ValueError(`block scale ${scale} at [${i}, ${j}] is not finite`, true);
      for (let code = 0; code < 256; code++) scaled[code] = E4M3_VALUES[code]! * scale;
      const colEnd = Math.min((j + 1) * blockCols, cols);
      for (let r = rowBegin; r < rowEnd; r++) {
        for (let c = j * blockCols; c < colEnd; c++) {
          const code = codes[r * cols + c]!;
          if ((code & 0x7f) === 0x7f) throw new Fp8ValueError(`code 0x${code.toString(16)} (NaN in E4M3FN) at [${firstRow + r}, ${c}]`, false);
          out[r * cols + c] = scaled[code]!;
        }
      }
    }
  }
  return out;
}
