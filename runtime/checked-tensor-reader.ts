// A checkpoint's tensors as checked f32 values, for hf-weights.ts: a tensor (or rows of its
// leading dim) read as f32 from F32, BF16 or F16; decoded from block-scaled FP8 with a
// `_scale_inv` companion, as DeepSeek-V3 releases its 2-D weights; or decoded from gpt-oss's
// MXFP4 `_blocks` + `_scales` pair. Shapes are checked before a read and only finite values come
// back. Every failure is one line naming the file and the tensor. Browser-safe.
import { DEFAULT_FP8_BLOCK, dequantizeFp8, Fp8ValueError, fp8ScaleName, fp8ScaleRows, fp8ScaleShape } from './hf-fp8.js';
import { decodeMxfp4, MXFP4_BLOCK, mxfp4TensorShapes } from './hf-mxfp4.js';
import { rowsOf, type RowRange } from './plan.js';
import { HfWeightsError, type TensorReader } from './tensor-reader.js';
import { formatShape } from './safetensors.js';

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const rowElementsOf = (shape: readonly number[]): number => shape.slice(1).reduce((n, d) => n * d, 1);

/** `experts` matrices of `rows` x `cols`, as an MXFP4 pair stores them. */
export interface Mxfp4Matrices {
  experts: number;
  rows: number;
  cols: number;
}

export class CheckedTensorReader {
  /**
   * `modelType` names the checkpoint in messages; `configBlock` is config.json's FP8 block size
   * (FP8 weights are read in DeepSeek-V3's 128 x 128 blocks without one).
   */
  constructor(private readonly reader: TensorReader, private readonly modelType: string,
    private readonly configBlock: readonly [number, number] | undefined) {}

  /** Where a missing tensor was looked for, for messages. */
  get location(): string {
    return this.reader.location ?? 'checkpoint';
  }

  /** Throws a HfWeightsError naming the file of tensor `name`, the tensor and `message`. */
  fail(name: string, message: string): never {
    throw new HfWeightsError(`${this.reader.fileOf?.(name) ?? this.location}: tensor "${name}" ${message}`);
  }

  requireShape(name: string, expected: readonly number[], what: string): void {
    const actual = this.reader.shape(name);
    if (!sameShape(actual, expected)) this.fail(name, `has shape ${formatShape(actual)}, expected ${formatShape(expected)} (${what})`);
  }

  /** Checks that `name` is there, not as MXFP4, with shape `expected` (for IR weight `irName`). */
  requireTensor(name: string, expected: readonly number[], irName: string): void {
    if (!this.reader.has(name)) {
      const mxfp4 = this.reader.has(`${name}_blocks`) ? `${name}_blocks` : undefined;
      if (mxfp4) {
        this.fail(mxfp4, `is MXFP4-quantized (_blocks/_scales); moec reads ${irName} from "${name}" in bf16/f32 only: ` +
          'load the checkpoint dequantized and save it again');
      }
      throw new HfWeightsError(`${this.location}: tensor "${name}" not found ` +
        `(needed for ${irName} of a ${this.modelType} checkpoint)`);
    }
    this.requireShape(name, expected, `for ${irName}`);
  }

  /**
   * Whether gpt-oss's fused `name` is stored as MXFP4 (`name`_blocks + `name`_scales) of
   * `matrices`, after checking either form (`dense` the shape of the plain tensor).
   */
  isMxfp4(name: string, irName: string, dense: readonly number[], { experts, rows, cols }: Mxfp4Matrices): boolean {
    const blocks = `${name}_blocks`;
    const scales = `${name}_scales`;
    if (this.reader.has(name) || !this.reader.has(blocks)) {
      if (!this.reader.has(name)) {
        throw new HfWeightsError(`${this.location}: tensor "${name}" (or MXFP4 "${blocks}" + "${scales}") not found ` +
          `(needed for ${irName} of a ${this.modelType} checkpoint)`);
      }
      this.requireShape(name, dense, `for ${irName}`);
      return false;
    }
    if (cols % MXFP4_BLOCK !== 0) this.fail(blocks, `is MXFP4 (blocks of ${MXFP4_BLOCK} inputs), but ${irName} has ${cols} inputs per row, not a multiple of ${MXFP4_BLOCK}`);
    const shapes = mxfp4TensorShapes(experts, rows, cols);
    this.requireShape(blocks, shapes.blocks, `MXFP4 blocks [E, rows, inputs/32, 16] for ${irName}`);
    if (!this.reader.has(scales)) {
      throw new HfWeightsError(`${this.location}: tensor "${scales}" not found (the MXFP4 scales of "${blocks}", needed for ${irName})`);
    }
    this.requireShape(scales, shapes.scales, `MXFP4 scales [E, rows, inputs/32] of "${blocks}", for ${irName}`);
    if (!this.reader.readU8) this.fail(blocks, 'is MXFP4-quantized, and this TensorReader has no readU8 to read its bytes');
    return true;
  }

  /**
   * Rows `range` of tensor `name` of `shape` as f32: read as f32 (from F32, BF16, F16), or decoded
   * from FP8; never NaN or infinite. `rows` is what the caller asked for (undefined: the whole
   * tensor, which a reader may then read whole).
   */
  async readF32(name: string, shape: readonly number[], range: RowRange, rows: RowRange | undefined): Promise<Float32Array> {
    const fp8Block = this.fp8BlockOf(name, shape);
    const data = fp8Block
      ? await this.readFp8(name, shape, fp8Block, range, rows)
      : await this.readRows((n, r) => this.reader.readF32(n, r), name, shape, range, rows);
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      this.fail(name, `holds ${data[bad]} at ${formatShape(elementIndex(shape, range.begin * rowElementsOf(shape) + bad))}; moec loads only finite weights`);
    }
    return data;
  }

  /** Experts `range` of an MXFP4 pair of `matrices`, decoded; stored row r * rowStep + rowOffset -> output row r. */
  async readMxfp4(name: string, irName: string, matrices: Mxfp4Matrices, range: RowRange, rows: RowRange | undefined,
    rowStep = 1, rowOffset = 0): Promise<Float32Array> {
    const { experts, rows: storedRows, cols } = matrices;
    const tensorShapes = mxfp4TensorShapes(experts, storedRows, cols);
    const readU8 = (n: string, r?: RowRange) => this.reader.readU8!(n, r);
    const blocks = await this.readRows(readU8, `${name}_blocks`, tensorShapes.blocks, range, rows);
    const scales = await this.readRows(readU8, `${name}_scales`, tensorShapes.scales, range, rows);
    try {
      return decodeMxfp4(blocks, scales, { experts: range.end - range.begin, firstExpert: range.begin, storedRows, cols, rowStep, rowOffset });
    } catch (e) {
      return this.fail(`${name}_scales`, `${(e as Error).message} (for ${irName})`);
    }
  }

  /** Rows `range` of tensor `name` of `shape` through `read`, asking it for those rows only when the caller asked for rows. */
  private async readRows<T extends Float32Array | Uint8Array>(read: (name: string, rows?: RowRange) => T | Promise<T>,
    name: string, shape: readonly number[], range: RowRange, rows: RowRange | undefined): Promise<T> {
    const rowElements = rowElementsOf(shape);
    const data = await read(name, rows && range);
    const got = rowsOf(data, rowElements, shape[0] ?? 1, range);
    if (!got) this.fail(name, `was read as ${data.length} values for rows [${range.begin}, ${range.end}), expected ${(range.end - range.begin) * rowElements}`);
    return got!;
  }

  /**
   * The block size of `name` when it is stored as FP8, after checking it is F8_E4M3 and 2-D with a
   * `_scale_inv` of the matching shape; undefined for a tensor that is not FP8.
   */
  private fp8BlockOf(name: string, shape: readonly number[]): readonly [number, number] | undefined {
    const { reader, configBlock } = this;
    const scale = fp8ScaleName(name);
    const scaled = reader.has(scale);
    const dtype = reader.dtype?.(name);
    if (!scaled && dtype !== 'F8_E4M3' && dtype !== 'F8_E5M2') return undefined;
    if (dtype === 'F8_E5M2') this.fail(name, `is F8_E5M2; moec reads FP8 weights as F8_E4M3 (E4M3FN) codes with "${scale}" block scales only`);
    if (dtype !== undefined && dtype !== 'F8_E4M3') this.fail(scale, `holds FP8 block scales, but "${name}" is ${dtype}, not F8_E4M3`);
    if (!scaled) this.fail(name, `is F8_E4M3 without its block scales: tensor "${scale}" not found`);
    if (!reader.dtype || !reader.readBytes) this.fail(name, `has FP8 block scales "${scale}", and this TensorReader has no dtype and readBytes to read its codes`);
    if (shape.length !== 2) this.fail(name, `is FP8 with block scales "${scale}", which moec reads for 2-D weights only, not shape ${formatShape(shape)}`);
    const block = configBlock ?? DEFAULT_FP8_BLOCK;
    const [rows, cols] = shape as [number, number];
    this.requireShape(scale, fp8ScaleShape(rows, cols, block), `block scales of "${name}" ${formatShape(shape)} in ${block[0]} x ${block[1]} blocks, ` +
      (configBlock ? 'config.json\'s weight_block_size' : 'the default: config.json has no fp8 quantization_config'));
    return block;
  }

  /** Rows `range` of FP8 weight `name` [rows, cols], decoded: only those rows' codes and their blocks' scale rows are read. */
  private async readFp8(name: string, [storedRows, cols]: readonly number[], block: readonly [number, number], range: RowRange,
    rows: RowRange | undefined): Promise<Float32Array> {
    const scale = fp8ScaleName(name);
    const scaleRange = fp8ScaleRows(range, block[0]);
    const codes = await this.readRows((n, r) => this.reader.readBytes!(n, r), name, [storedRows!, cols!], range, rows);
    const scales = await this.readRows((n, r) => this.reader.readF32(n, r), scale, fp8ScaleShape(storedRows!, cols!, block), scaleRange, rows && scaleRange);
    try {
      return dequantizeFp8(codes, scales, { rows: range.end - range.begin, cols: cols!, firstRow: range.begin, block });
    } catch (e) {
      if (!(e instanceof Fp8ValueError)) throw e;
      return this.fail(e.inScales ? scale : name, e.message);
    }
  }
}

/** The index of the first NaN or infinite value, or -1 (a plain loop: weights run to gigabytes). */
function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) return i;
  }
  return -1;
}

/** The index in `shape` of flat (row-major) element `flat`. */
function elementIndex(shape: readonly number[], flat: number): number[] {
  const index = shape.map(() => 0);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return index;
}
