// MXFP4 expert tensors as gpt-oss checkpoints store them (transformers' integrations/mxfp4.py,
// convert_moe_packed_tensors): `<name>_blocks` uint8 [E, R, C/32, 16] and `<name>_scales` uint8
// [E, R, C/32] for per-expert matrices of R output rows and C input columns (row = output
// feature, already the IR's orientation). Byte j of a block holds elements 2j (low nibble) and
// 2j + 1 (high nibble), each an E2M1 code (bit 3 the sign, bits 0..2 the index into 0, 0.5, 1,
// 1.5, 2, 3, 4, 6); the block's 32 values are code x 2^(scale - 127). Decoding to f32 is exact.
// Browser-safe.
import { E2M1_VALUES } from './quant/mxfp4-codec.js';

/** Elements per block (one E8M0 scale each). */
export const MXFP4_BLOCK = 32;
const BLOCK_BYTES = MXFP4_BLOCK / 2;

/** The shapes of `<name>_blocks` and `<name>_scales` for `experts` matrices of rows x cols (cols a multiple of 32). */
export function mxfp4TensorShapes(experts: number, rows: number, cols: number): { blocks: number[]; scales: number[] } {
  const groups = cols / MXFP4_BLOCK;
  return { blocks: [experts, rows, groups, BLOCK_BYTES], scales: [experts, rows, groups] };
}

/** E2M1 code -> value; code 8 (-0) reads as +0, as the GPU codec stores it. */
const E2M1_BY_CODE = Float64Array.from({ length: 16 }, (_, code) => (code & 8 ? -1 : 1) * E2M1_VALUES[code & 7]! + 0);

export interface Mxfp4Rows {
  /** Experts in the given bytes, and the first one's index in the tensor (for messages). */
  experts: number;
  firstExpert?: number;
  /** Rows per expert as stored, and the input columns (a multiple of 32). */
  storedRows: number;
  cols: number;
  /** Output row r is stored row r * rowStep + rowOffset (gpt-oss gate_up: gate rows 2i, up rows 2i + 1). Default 1, 0. */
  rowStep?: number;
  rowOffset?: number;
}

/**
 * Decodes experts' blocks and scales (already cut to those experts) to f32 [experts, outRows,
 * cols]. Throws a RangeError naming [expert, row, block] for a scale of 255, which E8M0 reserves
 * for NaN.
 */
export function decodeMxfp4(blocks: Uint8Array, scales: Uint8Array, layout: Mxfp4Rows): Float32Array {
  const { experts, storedRows, cols, rowStep = 1, rowOffset = 0, firstExpert = 0 } = layout;
  const groups = cols / MXFP4_BLOCK;
  const outRows = Math.floor((storedRows - rowOffset + rowStep - 1) / rowStep);
  const out = new Float32Array(experts * outRows * cols);
  for (let e = 0; e < experts; e++) {
    for (let r = 0; r < outRows; r++) {
      const stored = e * storedRows + r * rowStep + rowOffset;
      const dst = (e * outRows + r) * cols;
      for (let g = 0; g < groups; g++) {
        const biased = scales[stored * groups + g]!;
        if (biased === 255) throw new RangeError(`scale byte 255 (NaN in E8M0) at [${firstExpert + e}, ${r * rowStep + rowOffset}, ${g}]`);
        const scale = 2 ** (biased - 127);
        const src = (stored * groups + g) * BLOCK_BYTES;
        const at = dst + g * MXFP4_BLOCK;
        for (let j = 0; j < BLOCK_BYTES; j++) {
          const byte = blocks[src + j]!;
          out[at + 2 * j] = E2M1_BY_CODE[byte & 0xf]! * scale;
          out[at + 2 * j + 1] = E2M1_BY_CODE[byte >> 4]! * scale;
        }
      }
    }
  }
  return out;
}
