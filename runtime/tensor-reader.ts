// What a checkpoint's storage offers the weight loader (hf-weights.ts): a directory of shards in
// Node, in-memory files, or files fetched over HTTP; and the error every such read throws.
// Browser-safe.
import type { RowRange } from './plan.js';
import type { SafetensorsDtype } from './safetensors.js';

/** What a checkpoint offers: a directory of shards in Node, fetched files in a browser. */
export interface TensorReader {
  has(name: string): boolean;
  shape(name: string): readonly number[];
  /**
   * A tensor as f32; with `rows`, only rows [begin, end) of its leading dim. A reader may ignore
   * `rows` and return the whole tensor (it is sliced then).
   */
  readF32(name: string, rows?: RowRange): Float32Array | Promise<Float32Array>;
  /** A U8 tensor's bytes (MXFP4 blocks and scales), `rows` as for readF32. Without it MXFP4 checkpoints cannot be read. */
  readU8?(name: string, rows?: RowRange): Uint8Array | Promise<Uint8Array>;
  /** A tensor's safetensors dtype. Without it and readBytes, FP8 checkpoints cannot be read. */
  dtype?(name: string): SafetensorsDtype;
  /** Any tensor's raw bytes (FP8 codes), `rows` as for readF32. */
  readBytes?(name: string, rows?: RowRange): Uint8Array | Promise<Uint8Array>;
  /** The file that holds `name`, for error messages. */
  fileOf?(name: string): string;
  /** Where a missing tensor was looked for (a directory, a file list), for error messages. */
  location?: string;
}

export class HfWeightsError extends Error {
  override readonly name = 'HfWeightsError';
}
