// A compiled MoE block as plain data: finished WGSL, the buffers it needs (sized as functions of
// the token count), the weights to load and the dispatch steps of the prefill and decode paths.
// codegen/moe-block/compile-moe-block.ts writes it; runtime/moe-executor.ts runs it. It is
// JSON-serializable so a bundle can ship it as is.
import type { WeightFormat } from './quant/weight-format.js';

/**
 * A count that grows with the token count T: min(ceil((perToken * T + perPast * past + constant) /
 * (divisor ?? 1)), max ?? inf). `past` is the number of positions already in the KV caches (the
 * call's first position); only a model plan's uniform words use it.
 */
export interface TokenExpr {
  perToken: number;
  constant: number;
  divisor?: number;
  max?: number;
  perPast?: number;
}

export type PlanDType = 'f32' | 'f16' | 'i32' | 'u32';

/** Bytes per element of a plan buffer's dtype. */
export const dtypeBytes = (dtype: PlanDType): number => (dtype === 'f16' ? 2 : 4);

/**
 * input/output: the block's hidden states in and out ([T, hidden] f32).
 * scratch: written and read inside the block; tests poison these before a run.
 * indirect: GPU-written dispatchWorkgroupsIndirect arguments (never poisoned: NaN bits would
 * read as a huge workgroup count).
 * weight: a slice [rowBegin, rowEnd) along dim 0 of one IR param (a shard of stacked experts,
 * or the whole param), in its PlanWeight's storage (u32 words when packed in a non-f32 format).
 * state: kept across calls (a KV cache), zeroed when a session starts; f16 caches as u32 pairs.
 */
export type PlanBufferRole = 'input' | 'output' | 'scratch' | 'indirect' | 'weight' | 'state';

export interface PlanBuffer {
  name: string;
  role: PlanBufferRole;
  dtype: PlanDType;
  /** Elements (of `dtype`) as a function of the token count. Weights: constant (words when packed). */
  elements: TokenExpr;
  weight?: PlanBufferWeight;
}

/**
 * Which rows of which param a weight buffer holds: [rowBegin, rowEnd), or, under mixed precision
 * (experts stored ordered by format), the param rows `rows` in that order (rowBegin/rowEnd are
 * then positions in the reordered weight). `format`: the buffer's own format when its param's
 * experts have several (a buffer always holds one).
 */
export interface PlanBufferWeight {
  param: string;
  rowBegin: number;
  rowEnd: number;
  rows?: number[];
  format?: WeightFormat;
}

/** The param rows a weight buffer holds, in buffer order. */
export const bufferParamRows = (weight: PlanBufferWeight): number[] =>
  weight.rows ?? Array.from({ length: weight.rowEnd - weight.rowBegin }, (_, i) => weight.rowBegin + i);

export interface PlanWeight {
  /** The IR param name, e.g. `layers.3.moe.experts.gate`. */
  name: string;
  /** The IR layout, e.g. [E, I, H]. */
  shape: number[];
  /**
   * The format the spec asked for (runtime/quant/weight-format.ts); the kernels compute with its
   * values. Under mixed precision, expert 0's, and `expertFormats` has each expert's (by param row);
   * each buffer then names its own (PlanBufferWeight.format).
   */
  format: WeightFormat;
  expertFormats?: WeightFormat[];
  /**
   * packed: uploaded in `format`'s words and decoded by the kernels. dequantized: uploaded as the
   * f32 values of a round trip through `format` (small weights read by f32-only kernels).
   * Either way the executor packs from the f32 values a WeightSource gives.
   */
  storage: 'packed' | 'dequantized';
}

export interface PlanKernel {
  name: string;
  wgsl: string;
  entryPoint: string;
  workgroupSize: [number, number, number];
}

export interface PlanBinding {
  binding: number;
  buffer: string;
  access: 'read' | 'read_write';
}

/** The words of a step's `Params` uniform (u32 each): { tokens, expert_begin, expert_end, shard }. */
export interface PlanUniform {
  binding: number;
  words: TokenExpr[];
}

export type PlanGrid =
  | { kind: 'fixed'; x: TokenExpr; y: TokenExpr; z: TokenExpr }
  /** Three u32 workgroup counts written by an earlier step at byte `offset` of `buffer`. */
  | { kind: 'indirect'; buffer: string; offset: number };

export interface PlanStep {
  label: string;
  kernel: string;
  bindings: PlanBinding[];
  uniform: PlanUniform;
  grid: PlanGrid;
}

export interface MoeBlockPlan {
  format: 'moec.moe-block-plan';
  version: 1;
  /** The IR graph's name, e.g. `mixtral.moe_block_0`. */
  name: string;
  hidden: number;
  experts: number;
  topK: number;
  /** Buffer names of the block's input and output hidden states. */
  input: string;
  output: string;
  weights: PlanWeight[];
  buffers: PlanBuffer[];
  kernels: PlanKernel[];
  /** Grouped-GEMM path (router, GPU bookkeeping, indirect grouped GEMMs, combine). */
  prefill: PlanStep[];
  /** GEMV over the selected experts only; used when tokens <= decodeMaxTokens. */
  decode: PlanStep[];
  decodeMaxTokens: number;
  /** The largest token count one run may have (buffer binding and grid limits). */
  maxTokens: number;
  /** Device limits the plan was compiled against; the executor checks the device meets them. */
  requires: { maxStorageBufferBindingSize: number; maxStorageBuffersPerShaderStage: number; maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number };
  /** Adapter features the kernels need: `shader-f16` when activations are stored in f16 (compile `dtype = f16`). */
  features?: string[];
}

/** Rows [begin, end) of a weight's leading dimension (the experts, for stacked expert weights). */
export interface RowRange {
  begin: number;
  end: number;
}

/** Where the executor gets weights from (a checkpoint reader, a test's random arrays, ...). */
export interface WeightSource {
  /**
   * The f32 values of IR weight `name` of `shape`, row-major. With `rows`, only rows [begin, end)
   * of the leading dimension, (end - begin) x prod(shape[1:]) values: the executor asks for one
   * expert shard (or part of one) at a time, so a source can read just those bytes. A source that
   * ignores `rows` and returns the whole weight still works; the executor slices it.
   */
  readF32(name: string, shape: number[], rows?: RowRange): Float32Array | Promise<Float32Array>;
  /**
   * Optional: whether IR weights `a` and `b` are made from the same stored tensors (gpt-oss's
   * fused gate_up_proj holds both experts.gate and experts.up). The executor then reads them piece
   * by piece in turn, each piece's rows of `a` right before the same rows of `b`, so a source that
   * keeps its last read serves the second from it instead of reading the bytes again.
   */
  sharesStorage?(a: string, b: string): boolean;
}

/**
 * Rows `rows` of a row-major array with `rowElements` values per row and `totalRows` rows, given
 * `data` holding either just those rows or all of them (from a reader that ignores ranges);
 * undefined when it holds neither.
 */
export function rowsOf<T extends Float32Array | Uint8Array>(data: T, rowElements: number, totalRows: number, rows: RowRange): T | undefined {
  if (data.length === (rows.end - rows.begin) * rowElements) return data;
  if (data.length === totalRows * rowElements) return data.subarray(rows.begin * rowElements, rows.end * rowElements) as T;
  return undefined;
}

/** Throws a RangeError unless `rows` is a range of whole rows within [0, totalRows]. */
export function checkRowRange(rows: RowRange, totalRows: number, what: string): void {
  const { begin, end } = rows;
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || begin > end || end > totalRows) {
    throw new RangeError(`${what}: rows [${begin}, ${end}) are not a range within its ${totalRows} rows`);
  }
}

export function tokenExpr(perToken: number, constant = 0, divisor = 1, max?: number): TokenExpr {
  const e: TokenExpr = { perToken, constant };
  if (divisor !== 1) e.divisor = divisor;
  if (max !== undefined) e.max = max;
  return e;
}

export function evalTokenExpr(e: TokenExpr, tokens: number, past = 0): number {
  const n = Math.ceil((e.perToken * tokens + (e.perPast ?? 0) * past + e.constant) / (e.divisor ?? 1));
  return e.max === undefined ? n : Math.min(n, e.max);
}

export function pathSteps(plan: MoeBlockPlan, tokens: number): PlanStep[] {
  return tokens <= plan.decodeMaxTokens ? plan.decode : plan.prefill;
}

/** Buffers a step reads (read bindings and its indirect-argument buffer). */
export function stepReads(step: PlanStep): string[] {
  const reads = step.bindings.filter((b) => b.access === 'read').map((b) => b.buffer);
  return step.grid.kind === 'indirect' ? [...reads, step.grid.buffer] : reads;
}

export function stepWrites(step: PlanStep): string[] {
  return step.bindings.filter((b) => b.access === 'read_write').map((b) => b.buffer);
}

/** What the runtime computes itself at load: the rotary cos/sin table (runtime/rope-table.ts buildRopeTable). */
export interface PlanRope {
  /** The plan weight (role rope in the IR) that holds it. */
  weight: string;
  kind: string;
  params: Record<string, unknown>;
  theta: number;
  dim: number;
  context: number;
}

/**
 * A compiled decoder: token ids in, logits out, the KV caches (state buffers) kept between calls.
 * One call handles at most maxTokens new tokens; the prefill path serves calls of more than
 * decodeMaxTokens, the decode path the others.
 */
export interface ModelPlan {
  format: 'moec.model-plan';
  version: 1;
  name: string;
  vocab: number;
  hidden: number;
  /** Positions the KV caches hold (compile.context). */
  context: number;
  /** Buffer names: token ids [T] i32 and positions [T] i32 in; logits [T, vocab] f32 out. */
  tokenIds: string;
  positions: string;
  logits: string;
  weights: PlanWeight[];
  buffers: PlanBuffer[];
  kernels: PlanKernel[];
  prefill: PlanStep[];
  decode: PlanStep[];
  decodeMaxTokens: number;
  maxTokens: number;
  rope?: PlanRope;
  /** Absent when the logits are not f32 (the sampler reads f32). */
  sampler?: PlanSampler;
  requires: MoeBlockPlan['requires'];
  features?: string[];
}

/** The GPU sampler (codegen/kernels/sample): its dispatches over the logits row, in one compute pass. */
export interface PlanSampler {
  kernels: PlanKernel[];
  /**
   * Each dispatch: its kernel, the bindings it uses (logits 0, sample_scratch 1, sampled 2), its
   * uniform binding and grid, and when it does anything (absent: always; `truncate`: with top-k or
   * top-p; `draw`: when not greedy; otherwise it returns early and samplingSteps leaves it out).
   */
  steps: { kernel: string; bindings: { binding: number; name: 'logits' | 'sample_scratch' | 'sampled'; access: 'read' | 'read_write' }[]; uniformBinding: number; grid: [number, number, number]; phase?: 'truncate' | 'draw' }[];
  /** u32 words of sample_scratch. */
  scratchWords: number;
}

/** The sampler's steps that do anything for these options (the indices into `steps`). */
export function samplingSteps(sampler: { steps: readonly { phase?: 'truncate' | 'draw' | undefined }[] }, options: { temperature: number; topK: number; topP: number }): number[] {
  const greedy = options.temperature === 0;
  const truncate = !greedy && (options.topK > 0 || options.topP < 1);
  return sampler.steps.flatMap((s, i) => ((s.phase === 'truncate' && !truncate) || (s.phase === 'draw' && greedy) ? [] : [i]));
}

export function modelPathSteps(plan: ModelPlan, tokens: number): PlanStep[] {
  return tokens <= plan.decodeMaxTokens ? plan.decode : plan.prefill;
}
