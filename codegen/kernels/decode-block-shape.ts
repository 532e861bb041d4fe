// What the two fused decode kernels of an MoE block (decode-gate-up/, decode-down-combine/) are
// rendered from: the block's sizes, its routed and optional shared expert, and the activation
// storage. One value describes the block; each kernel reads the parts it needs.
import type { KindRef } from '../../ir/model-config.js';
import { F32, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { GEMV_MAX_ROWS } from './expert-gemv/expert-gemv.js';
import type { ActivationDtype } from './kernel.js';
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
 * matrix in one binding (a sharded block keeps the per-shard GEMVs of the unfused path).
 */
export interface DecodeBlockShape {
  hidden: number;
  topK: number;
  routed: DecodeMlpShape;
  shared?: DecodeMlpShape;
  /** Qwen2-MoE: the shared expert's output times sigmoid(x . w_sg). Needs `shared`. */
  sharedGate: boolean;
  /** Storage of x, the intermediates and the output. Default f32. */
  act?: ActivationDtype;
}

/** The fused decode kernels serve at most this many tokens per run. */
export const DECODE_FUSED_MAX_TOKENS = GEMV_MAX_ROWS;

export function checkDecodeBlockShape(shape: DecodeBlockShape): void {
  if (shape.sharedGate && !shape.shared) throw new Error('a shared-expert gate needs a shared expert');
  for (const [what, n] of [['hidden', shape.hidden], ['top_k', shape.topK], ['intermediate', shape.routed.intermediate], ['shared intermediate', shape.shared?.intermediate ?? 1]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`decode kernels: ${what} must be a positive integer, not ${n}`);
  }
}

/** A kernel-name fragment: intermediate, bias, weight format (e.g. `56_int4g32`). */
export function decodeMlpTag(mlp: DecodeMlpShape): string {
  return `${mlp.intermediate}${mlp.bias ? '_bias' : ''}${formatTag(mlp.weights ?? F32)}`;
}
