/// <reference types="@webgpu/types" />
// A plan's weights -> GPU buffers, one weight buffer at a time. Each buffer holds rows
// [rowBegin, rowEnd) of one IR param (an expert shard, or the whole param) and the WeightSource is
// asked for those rows only; a packed shard of stacked matrices is read and packed in pieces of
// whole matrices. So the host holds one buffer's words and one piece of f32 values, never a
// whole param (DeepSeek-V3's experts.gate of one layer alone is 15 GB of f32). Weights the source
// stores in one tensor (WeightSource.sharesStorage: gpt-oss's fused gate_up) are read piece by
// piece in turn, holding one buffer's words of each, so the stored bytes are read once. A source
// that gives buffers already encoded (EncodedWeightSource: a `moec pack` directory) is packed nothing.
import { uploadBytes } from './buffer-pool.js';
import { GpuError, type GpuRuntime } from './device.js';
import { bufferParamRows, checkRowRange, rowsOf, type MoeBlockPlan, type PlanBuffer, type PlanWeight, type RowRange, type WeightSource } from './plan.js';

/** What weight upload reads of a plan (an MoE block's or a whole model's). */
type WeightPlan = Pick<MoeBlockPlan, 'name' | 'weights' | 'buffers'>;
import { builtinFormats } from './quant/builtin-formats.js';
import { dequantize, packWeight } from './quant/weight-codec.js';
import { describeFormat, F32, packedBytes, withFormats, type FormatDefinition, type FormatTable, type WeightFormat } from './quant/weight-format.js';

/** The most f32 bytes asked of a WeightSource at once for a packed shard read in pieces (a piece is at least one matrix). */
export const DEFAULT_MAX_READ_BYTES = 64 * 2 ** 20;

const product = (dims: readonly number[]): number => dims.reduce((n, d) => n * d, 1);
const formatRows = (rows: RowRange): string => `rows [${rows.begin}, ${rows.end})`;

/** Reads rows of plan weights. A source that ignores `rows` is read once per weight (kept for the group) and sliced. */
class RowReader {
  private readonly wholes = new Map<string, Float32Array>();

  constructor(private readonly source: WeightSource) {}

  async read(w: PlanWeight, rows: RowRange): Promise<Float32Array> {
    const rowElements = product(w.shape.slice(1));
    const totalRows = w.shape[0] ?? 1;
    const whole = this.wholes.get(w.name);
    if (whole) return whole.subarray(rows.begin * rowElements, rows.end * rowElements);
    const data = await this.source.readF32(w.name, w.shape, rows);
    const got = data instanceof Float32Array ? rowsOf(data, rowElements, totalRows, rows) : undefined;
    if (!got) {
      throw new GpuError(`weight ${w.name} [${w.shape.join(', ')}] ${formatRows(rows)}: expected ${(rows.end - rows.begin) * rowElements} ` +
        `f32 values (or all ${totalRows * rowElements}), the weight source gave ${data instanceof Float32Array ? data.length : String(data)}`);
    }
    if (got !== data) this.wholes.set(w.name, data); // kept for the weight's other shards
    return got;
  }

  /** The param rows `rows` of `w`, in that order: one read per run of consecutive rows (one in all unless mixed precision reordered them). */
  async readList(w: PlanWeight, rows: readonly number[]): Promise<Float32Array> {
    const runs: RowRange[] = [];
    for (const r of rows) {
      const last = runs.at(-1);
      if (last && last.end === r) last.end++;
      else runs.push({ begin: r, end: r + 1 });
    }
    if (runs.length === 1) return this.read(w, runs[0]!);
    const rowElements = product(w.shape.slice(1));
    const out = new Float32Array(rows.length * rowElements);
    let at = 0;
    for (const run of runs) {
      out.set(await this.read(w, run), at);
      at += (run.end - run.begin) * rowElements;
    }
    return out;
  }

  /** Drops the whole weights kept from a source that ignores `rows`. */
  forget(): void {
    this.wholes.clear();
  }
}

/** f32 values of rows of `w` (shape `shape`) in the plan's storage: packed words, or f32 after a round trip through the format. */
function encodeRows(w: PlanWeight, format: WeightFormat, values: Float32Array, shape: number[], what: string, formats: FormatTable): Uint32Array | Float32Array {
  return w.storage === 'dequantized' ? dequantize(format, values, shape, what, formats) : packWeight(format, values, shape, what, formats);
}

const bufferRows = (buffer: PlanBuffer): RowRange => ({ begin: buffer.weight!.rowBegin, end: buffer.weight!.rowEnd });

/** The format a weight buffer is stored in: its own (one run of a mixed weight's experts), else its weight's. */
export const bufferFormat = (w: PlanWeight, buffer: PlanBuffer): WeightFormat => buffer.weight?.format ?? w.format ?? F32; // `?? F32`: plans from before formats

/** One weight buffer to fill: rows of plan weight `w`. */
export interface ShardJob {
  w: PlanWeight;
  buffer: PlanBuffer;
}

/** Words of one weight buffer: `words` go at word `offset` of the buffer of job `job`, which has `total` words in all. */
export interface EncodedPiece {
  job: number;
  offset: number;
  total: number;
  words: Uint32Array | Float32Array;
}

/**
 * The contents of weight buffers over the same rows of same-shaped weights, read from the source
 * `piece` leading rows at a time; with several, each piece of every buffer in turn (so a source
 * storing them in one tensor can serve the later ones from its last read). Yields each piece's
 * words as they are packed, so the caller holds one piece at a time if it writes them out.
 */
async function* encodedPieces(reader: RowReader, jobs: ShardJob[], maxReadBytes: number, formats: FormatTable): AsyncGenerator<EncodedPiece> {
  const { w, buffer } = jobs[0]!;
  const paramRows = bufferParamRows(buffer.weight!);
  try {
    if (buffer.weight!.rows) paramRows.forEach((r) => checkRowRange({ begin: r, end: r + 1 }, w.shape[0] ?? 1, buffer.name));
    else checkRowRange(bufferRows(buffer), w.shape[0] ?? 1, buffer.name);
  } catch (e) {
    throw new GpuError((e as Error).message);
  }
  const format = bufferFormat(w, buffer);
  const inner = w.shape.slice(1);
  const rows = paramRows.length;
  // Packed words come per matrix (the last two dims), so only stacked matrices can be packed piecewise.
  const piecewise = w.storage === 'packed' && format.format !== 'f32' && w.shape.length >= 3;
  const piece = piecewise ? Math.max(1, Math.floor(maxReadBytes / Math.max(4, product(inner) * 4))) : rows;
  if (piece >= rows) {
    for (const [i, job] of jobs.entries()) {
      const words = encodeRows(job.w, format, await reader.readList(job.w, paramRows), [rows, ...inner], job.buffer.name, formats);
      yield { job: i, offset: 0, total: words.length, words };
    }
    return;
  }
  const rowWords = packedBytes(format, [1, ...inner], formats) / 4;
  for (let begin = 0; begin < rows; begin += piece) {
    const end = Math.min(rows, begin + piece);
    const pieceRows = paramRows.slice(begin, end);
    for (const [i, job] of jobs.entries()) {
      const values = await reader.readList(job.w, pieceRows);
      const words = encodeRows(job.w, format, values, [end - begin, ...inner], `${job.w.name}[${pieceRows[0]}:${pieceRows.at(-1)! + 1}]`, formats);
      yield { job: i, offset: begin * rowWords, total: rows * rowWords, words };
    }
  }
}

/** The whole contents of each job's buffer, assembled from encodedPieces (a buffer in one piece is not copied). */
async function shardContents(reader: RowReader, jobs: ShardJob[], maxReadBytes: number, formats: FormatTable): Promise<(Uint32Array | Float32Array)[]> {
  const contents: (Uint32Array | Float32Array)[] = [];
  for await (const { job, offset, total, words } of encodedPieces(reader, jobs, maxReadBytes, formats)) {
    if (offset === 0 && words.length === total) contents[job] = words;
    else (contents[job] ??= new Uint32Array(total)).set(words, offset);
  }
  return contents;
}

/**
 * Encodes one read unit (weightReadUnits) piece by piece, as uploadWeights would: `moec pack`'s
 * workers write each piece out as it comes, so they hold one piece, never a whole buffer.
 */
export async function* encodeWeightBuffers(source: WeightSource, jobs: ShardJob[], options: WeightUploadOptions = {}): AsyncGenerator<EncodedPiece> {
  yield* encodedPieces(new RowReader(source), jobs, options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES, withFormats(builtinFormats, options.formats));
}

/** The weight buffers of `w`, in plan order. */
const buffersOf = (plan: WeightPlan, w: PlanWeight): PlanBuffer[] => plan.buffers.filter((b) => b.weight?.param === w.name);

/** Whether `a` and `b` can be read piece by piece in turn: same shape, storage, format and shards. */
function sameLayout(plan: WeightPlan, a: PlanWeight, b: PlanWeight): boolean {
  const rowsOfBuffers = (w: PlanWeight) => JSON.stringify(buffersOf(plan, w).map((b) => [bufferParamRows(b.weight!), b.weight!.format]));
  return JSON.stringify([a.shape, a.storage, a.format]) === JSON.stringify([b.shape, b.storage, b.format]) && rowsOfBuffers(a) === rowsOfBuffers(b);
}

/** The plan's weights in upload order, those the source stores together (and laid out alike) in one group. */
function uploadGroups(plan: WeightPlan, source: WeightSource): PlanWeight[][] {
  const groups: PlanWeight[][] = [];
  for (const w of plan.weights) {
    const group = source.sharesStorage && groups.find((g) => source.sharesStorage!(g[0]!.name, w.name) && sameLayout(plan, g[0]!, w));
    if (group) group.push(w);
    else groups.push([w]);
  }
  return groups;
}

/** A group's buffers as read units: for each shard s, the s-th buffer of every weight of the group. */
function groupUnits(plan: WeightPlan, group: PlanWeight[]): ShardJob[][] {
  const shards = group.map((w) => buffersOf(plan, w));
  return shards[0]!.map((_, s) => group.map((w, i) => ({ w, buffer: shards[i]![s]! })));
}

/**
 * The plan's weight buffers in upload order, as read units: the same rows of the weights the
 * source stores together (one buffer each), or one buffer. What `moec pack` hands its workers.
 */
export function weightReadUnits(plan: WeightPlan, source: WeightSource): ShardJob[][] {
  return uploadGroups(plan, source).flatMap((group) => groupUnits(plan, group));
}

/**
 * A WeightSource that also gives weight buffers' contents as the plan stores them (packed words, or
 * dequantized f32), already encoded: a packed directory (runtime/packed/). Loading from one packs
 * nothing; a buffer it does not hold (the rope table, computed at load) is read with readF32.
 */
export interface EncodedWeightSource extends WeightSource {
  /** The contents of weight buffer `buffer` (rows of `weight`), or undefined when the source does not hold it. */
  readBufferWords(buffer: PlanBuffer, weight: PlanWeight): Promise<Uint32Array | Float32Array | undefined>;
}

export const isEncodedSource = (source: WeightSource): source is EncodedWeightSource =>
  typeof (source as Partial<EncodedWeightSource>).readBufferWords === 'function';

/** The units' contents from an EncodedWeightSource; undefined for another source or a buffer it does not hold. */
async function storedContents(source: WeightSource, jobs: ShardJob[]): Promise<(Uint32Array | Float32Array)[] | undefined> {
  if (!isEncodedSource(source)) return undefined;
  const contents: (Uint32Array | Float32Array)[] = [];
  for (const { w, buffer } of jobs) {
    const words = await source.readBufferWords(buffer, w);
    if (!words) return undefined;
    contents.push(words);
  }
  return contents;
}

export interface WeightUploadOptions {
  /** The most f32 bytes asked of the WeightSource at once for a packed expert shard (default DEFAULT_MAX_READ_BYTES; at least one matrix). */
  maxReadBytes?: number;
  /** Formats besides the builtin ones (a plugin's FormatDefinition; a bundle passes those it was compiled with). */
  formats?: readonly FormatDefinition[];
}

/** Uploads every weight buffer of `plan`, reading each from `source` by rows; returns them by buffer name. */
export async function uploadWeights(rt: GpuRuntime, plan: WeightPlan, source: WeightSource, options: WeightUploadOptions = {}): Promise<Map<string, GPUBuffer>> {
  const maxReadBytes = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
  const formats = withFormats(builtinFormats, options.formats);
  for (const w of plan.weights) {
    const format = [w.format ?? F32, ...(w.expertFormats ?? [])].find((f) => !Object.hasOwn(formats, f.format));
    if (format) {
      throw new GpuError(`${plan.name}: weight ${w.name} is stored as ${describeFormat(format)}, a format this runtime does not know ` +
        `(known: ${Object.keys(formats).join(', ')}); pass the plugin's FormatDefinition in \`formats\` (a bundle compiled with the plugin carries it)`);
    }
  }
  const reader = new RowReader(source);
  const uploaded = new Map<string, GPUBuffer>();
  try {
    for (const group of uploadGroups(plan, source)) {
      for (const jobs of groupUnits(plan, group)) {
        const contents = (await storedContents(source, jobs)) ?? (await shardContents(reader, jobs, maxReadBytes, formats));
        for (const [i, { buffer }] of jobs.entries()) {
          if (contents[i]!.length !== buffer.elements.constant) {
            throw new GpuError(`${buffer.name}: the plan sizes it at ${buffer.elements.constant} words, packing gave ${contents[i]!.length}`);
          }
          uploaded.set(buffer.name, uploadBytes(rt.device, contents[i]!, GPUBufferUsage.STORAGE, buffer.name));
        }
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
