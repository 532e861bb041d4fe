/// <reference types="@webgpu/types" />
// A plan's weights -> GPU buffers, one weight buffer at a time. Each buffer holds rows
// [rowBegin, rowEnd) of one IR param (an expert shard, or the whole param) and the WeightSource is
// asked for those rows only; a packed shard of stacked matrices is read and packed in pieces of
// whole matrices. So the host holds one buffer's words and one piece of f32 values, never a
// whole param (DeepSeek-V3's experts.gate of one layer alone is 15 GB of f32).
import { uploadBytes } from './buffer-pool.js';
import { GpuError, type GpuRuntime } from './device.js';
import { checkRowRange, rowsOf, type MoeBlockPlan, type PlanBuffer, type PlanWeight, type RowRange, type WeightSource } from './plan.js';
import { dequantize, packWeight } from './quant/weight-codec.js';
import { F32, packedBytes, type WeightFormat } from './quant/weight-format.js';

/** The most f32 bytes asked of a WeightSource at once for a packed shard read in pieces (a piece is at least one matrix). */
export const DEFAULT_MAX_READ_BYTES = 64 * 2 ** 20;

const product = (dims: readonly number[]): number => dims.reduce((n, d) => n * d, 1);
const formatRows = (rows: RowRange): string => `rows [${rows.begin}, ${rows.end})`;

/** Reads rows of plan weights. A source that ignores `rows` is read once per weight and sliced. */
class RowReader {
  private whole: { name: string; data: Float32Array } | undefined;

  constructor(private readonly source: WeightSource) {}

  async read(w: PlanWeight, rows: RowRange): Promise<Float32Array> {
    const rowElements = product(w.shape.slice(1));
    const totalRows = w.shape[0] ?? 1;
    if (this.whole?.name === w.name) return this.whole.data.subarray(rows.begin * rowElements, rows.end * rowElements);
    const data = await this.source.readF32(w.name, w.shape, rows);
    const got = data instanceof Float32Array ? rowsOf(data, rowElements, totalRows, rows) : undefined;
    if (!got) {
      throw new GpuError(`weight ${w.name} [${w.shape.join(', ')}] ${formatRows(rows)}: expected ${(rows.end - rows.begin) * rowElements} ` +
        `f32 values (or all ${totalRows * rowElements}), the weight source gave ${data instanceof Float32Array ? data.length : String(data)}`);
    }
    if (got !== data) this.whole = { name: w.name, data }; // kept for the weight's other shards
    return got;
  }

  /** Drops a whole weight kept from a source that ignores `rows`. */
  forget(): void {
    this.whole = undefined;
  }
}

/** f32 values of rows of `w` (shape `shape`) in the plan's storage: packed words, or f32 after a round trip through the format. */
function encodeRows(w: PlanWeight, format: WeightFormat, values: Float32Array, shape: number[], what: string): Uint32Array | Float32Array {
  return w.storage === 'dequantized' ? dequantize(format, values, shape, what) : packWeight(format, values, shape, what);
}

/** The contents of one weight buffer, read from the source `piece` leading rows at a time. */
async function bufferContents(reader: RowReader, w: PlanWeight, buffer: PlanBuffer, maxReadBytes: number): Promise<Uint32Array | Float32Array> {
  const { rowBegin, rowEnd } = buffer.weight!;
  try {
    checkRowRange({ begin: rowBegin, end: rowEnd }, w.shape[0] ?? 1, buffer.name);
  } catch (e) {
    throw new GpuError((e as Error).message);
  }
  const format = w.format ?? F32; // `?? F32`: plans from before formats
  const inner = w.shape.slice(1);
  const rows = rowEnd - rowBegin;
  // Packed words come per matrix (the last two dims), so only stacked matrices can be packed piecewise.
  const piecewise = w.storage === 'packed' && format.format !== 'f32' && w.shape.length >= 3;
  const piece = piecewise ? Math.max(1, Math.floor(maxReadBytes / Math.max(4, product(inner) * 4))) : rows;
  if (piece >= rows) {
    return encodeRows(w, format, await reader.read(w, { begin: rowBegin, end: rowEnd }), [rows, ...inner], buffer.name);
  }
  const rowWords = packedBytes(format, [1, ...inner]) / 4;
  const words = new Uint32Array(rows * rowWords);
  for (let begin = rowBegin; begin < rowEnd; begin += piece) {
    const end = Math.min(rowEnd, begin + piece);
    const values = await reader.read(w, { begin, end });
    words.set(encodeRows(w, format, values, [end - begin, ...inner], `${w.name}[${begin}:${end}]`), (begin - rowBegin) * rowWords);
  }
  return words;
}

export interface WeightUploadOptions {
  /** The most f32 bytes asked of the WeightSource at once for a packed expert shard (default DEFAULT_MAX_READ_BYTES; at least one matrix). */
  maxReadBytes?: number;
}

/** Uploads every weight buffer of `plan`, reading each from `source` by rows; returns them by buffer name. */
export async function uploadWeights(rt: GpuRuntime, plan: MoeBlockPlan, source: WeightSource, options: WeightUploadOptions = {}): Promise<Map<string, GPUBuffer>> {
  const maxReadBytes = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
  const reader = new RowReader(source);
  const uploaded = new Map<string, GPUBuffer>();
  try {
    for (const w of plan.weights) {
      for (const buffer of plan.buffers) {
        if (buffer.weight?.param !== w.name) continue;
        const contents = await bufferContents(reader, w, buffer, maxReadBytes);
        if (contents.length !== buffer.elements.constant) {
          throw new GpuError(`${buffer.name}: the plan sizes it at ${buffer.elements.constant} words, packing gave ${contents.length}`);
        }
        uploaded.set(buffer.name, uploadBytes(rt.device, contents, GPUBufferUsage.STORAGE, buffer.name));
      }
      reader.forget();
    }
    const missing = plan.buffers.filter((b) => b.role === 'weight' && !uploaded.has(b.name));
    if (missing.length) throw new GpuError(`${plan.name}: weight buffers ${missing.map((b) => b.name).join(', ')} name no weight of the plan`);
  } catch (e) {
    for (const buffer of uploaded.values()) buffer.destroy(); // a failed load holds no GPU memory
    throw e;
  }
  return uploaded;
}
