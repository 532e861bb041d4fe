// What the two fused decode kernels of an MoE block (decode-gate-up/, decode-down-combine/) are
// rendered from: the block's sizes, its routed and optional shared expert, and the activation
// storage. One value describes the block; each kernel reads the parts it needs.
//
// The two kernels hand over the expert intermediates in ONE buffer, `inter`, token-major
// [T, K*I + Is]: token t's row holds its K slot rows (slot k at t*(K*I + Is) + k*I), then its
// shared-expert row (at t*(K*I + Is) + K*I). One binding instead of two keeps dispatch 3 of a
// Qwen2-MoE block (shared expert with a sigmoid gate) within WebGPU's default 8 storage buffers
// per stage. Without a shared expert (Is = 0) it is the [T*K, I] slot layout of the unfused path.
import type { KindRef } from '../../ir/model-config.js';
import { F32, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { DEFAULT_LIMITS } from '../../runtime/device.js';
import { DEFAULT_DECODE_ROWS } from '../../ir/target.js';
import { GEMV_MAX_ROWS } from './expert-gemv/expert-gemv.js';
import type { ActivationDtype, ActivationKernels, StorageDecl } from './kernel.js';
import { formatTag } from './weights/weight-loads.js';

/** One gated MLP (the routed experts, stacked, or the shared expert). */
export interface DecodeMlpShape {
  /** I (routed) or Is (shared): rows of gate/up, columns of down. */
  intermediate: number;
  activation: KindRef;
  /** gate/up/down biases ([E, I], [E, I], [E, H] routed; [I], [I], [H] shared). */
  bias: boolean;
  /** Storage of the gate, up and down matrices, decoded to f32 as they are read. Default f32. */
  weights?: WeightFormat;
}

/**
 * An MoE block on the fused decode path: at most GEMV_MAX_ROWS tokens, every routed expert
 * matrix in one binding, or in two expert shards (`routedShards`).
 */
export interface DecodeBlockShape {
  hidden: number;
  topK: number;
  routed: DecodeMlpShape;
  shared?: DecodeMlpShape;
  /** Qwen2-MoE: the shared expert's output times sigmoid(x . w_sg). Needs `shared`. */
  sharedGate: boolean;
  /** Where the activations' WGSL comes from (default: the builtin activations). */
  activations?: ActivationKernels;
  /** Storage of x, the intermediates and the output. Default f32. */
  act?: ActivationDtype;
  /**
   * The first expert of each routed-weight shard, ascending from 0 (e.g. [0, 4]): with two, the
   * routed matrices come in two bindings each (`w_gate` [0, s1), `w_gate1` [s1, E); matrix
   * e - s1 of the second), the biases stay whole. At most 2 shards; absent or [0]: one binding.
   */
  routedShards?: number[];
  /** Output features per workgroup, one thread each (the ops' `rows`; default DEFAULT_DECODE_ROWS). */
  rows?: number;
}

/** Elements of one token's row of `inter`: K*I + Is (K slot rows, then the shared-expert row). */
export function decodeInterWidth(shape: DecodeBlockShape): number {
  return shape.topK * shape.routed.intermediate + (shape.shared?.intermediate ?? 0);
}

/**
 * Whether dispatch 3 may read `inter` 4 elements at a time: every row start (t*(K*I + Is) + k*I,
 * t*(K*I + Is) + K*I) a multiple of 4, i.e. I and Is both multiples of 4.
 */
export function decodeInterVec4(shape: DecodeBlockShape): boolean {
  return shape.routed.intermediate % 4 === 0 && decodeInterWidth(shape) % 4 === 0;
}

/** The fused decode kernels serve at most this many tokens per run. */
export const DECODE_FUSED_MAX_TOKENS = GEMV_MAX_ROWS;

/** One activation row of a pass: its index j, and where its offset and id sit in the vec4 pairs (`lo.x` .. `hi.w`). */
export interface DecodePassRow {
  j: number;
  c: string;
}

/**
 * One body of a pass, for passes of `from + 1` .. `width` rows: `test` opens it, `rows` are the
 * rows it accumulates (past rows.count they read row 0's activations and are not stored), `stored`
 * the rows whose stores need `rows.count > j`.
 */
export interface DecodePassWidth {
  width: number;
  test: string;
  rows: DecodePassRow[];
  stored: (DecodePassRow & { always: boolean })[];
}

/** Pass widths: a pass of r rows runs the body of the smallest width >= r. */
export const DECODE_PASS_WIDTHS = [1, 2, 4, 8] as const;

/**
 * The bodies of a pass in both decode kernels, one per width of DECODE_PASS_WIDTHS, each with its
 * own loop over the weight row and no test inside it. Row j's id is `rows.<c>` and its offset
 * `a_<c>` (components of two vec4s, so no accumulator is a dynamically indexed array, which CPU
 * drivers keep in memory). SwiftShader runs every block of a shader whatever its branch (lanes
 * masked off) and only skips loop iterations, so tests around each row inside the loop cost a
 * 1-token pass the work of 8 rows; here an unused width's loop runs one masked step. Four bodies
 * of 1 + 2 + 4 + 8 rows, not one per row count, keep lavapipe's LLVM compile in seconds.
 */
export function decodePassWidths(): DecodePassWidth[] {
  if (GEMV_MAX_ROWS !== DECODE_PASS_WIDTHS[DECODE_PASS_WIDTHS.length - 1]) throw new Error(`internal: the decode pass widths end at ${DECODE_PASS_WIDTHS.at(-1)}, not at GEMV_MAX_ROWS = ${GEMV_MAX_ROWS}`);
  const row = (j: number): DecodePassRow => ({ j, c: `${j < 4 ? 'lo' : 'hi'}.${'xyzw'[j % 4]}` });
  return DECODE_PASS_WIDTHS.map((width, i) => {
    const from = i === 0 ? 0 : DECODE_PASS_WIDTHS[i - 1]!;
    const rows = Array.from({ length: width }, (_, j) => row(j));
    const test = i === 0 ? 'if (rows.count == 1u) {' : i === DECODE_PASS_WIDTHS.length - 1 ? `if (rows.count > ${from}u) {` : `if (rows.count > ${from}u && rows.count <= ${width}u) {`;
    return { width, test, rows, stored: rows.map((r) => ({ ...r, always: r.j <= from })) };
  });
}

/**
 * The workgroup size of both kernels. The shared gate's tree halves it down to one thread, so
 * with a gate it must be a power of two.
 */
export function decodeRows(shape: DecodeBlockShape): number {
  const rows = shape.rows ?? DEFAULT_DECODE_ROWS;
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`decode kernels: rows per workgroup must be a positive integer, not ${rows}`);
  if (shape.sharedGate && (rows & (rows - 1)) !== 0) throw new Error(`decode kernels: the shared-gate sum is a tree over the workgroup's threads: rows per workgroup must be a power of two, not ${rows}`);
  return rows;
}

export function checkDecodeBlockShape(shape: DecodeBlockShape): void {
  if (shape.sharedGate && !shape.shared) throw new Error('a shared-expert gate needs a shared expert');
  decodeRows(shape);
  for (const [what, n] of [['hidden', shape.hidden], ['top_k', shape.topK], ['intermediate', shape.routed.intermediate], ['shared intermediate', shape.shared?.intermediate ?? 1]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`decode kernels: ${what} must be a positive integer, not ${n}`);
  }
  routedShardSplit(shape);
}

/** The first expert of the second routed-weight shard, or undefined for one binding. */
export function routedShardSplit(shape: DecodeBlockShape): number | undefined {
  const shards = shape.routedShards;
  if (!shards || shards.length === 1 && shards[0] === 0) return undefined;
  if (shards.length > 2) throw new Error(`decode kernels: ${shards.length} routed-expert shards (${shards.join(', ')}); the fused decode kernels read at most 2`);
  if (shards[0] !== 0 || !shards.every((s) => Number.isInteger(s)) || !(shards[1]! > 0)) {
    throw new Error(`decode kernels: routed-expert shards must start at expert 0 and ascend, not [${shards.join(', ')}]`);
  }
  return shards[1];
}

/**
 * Throws when a kernel reading the routed experts from two shards binds more storage buffers
 * than WebGPU's default per stage (the unsharded kernels keep their own, older rule).
 */
export function checkShardedBindings(kernel: string, storage: readonly StorageDecl[]): void {
  const limit = DEFAULT_LIMITS.maxStorageBuffersPerShaderStage;
  if (storage.length <= limit) return;
  throw new Error(`the fused decode ${kernel} kernel over 2 routed-expert shards needs ${storage.length} storage buffers per shader stage (${storage.map((b) => b.name).join(', ')}), more than WebGPU's default ${limit}: keep this block on the per-shard path`);
}

/** A kernel-name fragment: intermediate, bias, weight format (e.g. `56_int4g32`). */
export function decodeMlpTag(mlp: DecodeMlpShape): string {
  return `${mlp.intermediate}${mlp.bias ? '_bias' : ''}${formatTag(mlp.weights ?? F32)}`;
}
