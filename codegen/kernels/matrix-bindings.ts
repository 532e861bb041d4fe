// The bindings the GEMM and the GEMV share: activation rows, the kernel's own routing tables,
// the weight matrices (w0, and w1 for gate/up) with their decode functions, biases, routing
// weights and the output. weightBindings() is the weight part alone, for kernels that read
// several weight groups (the fused decode kernels: routed and shared expert).
import type { KindRef } from '../../ir/model-config.js';
import { F32, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { activationArray, f32Array, type ActivationDtype, type ActivationKernels, type StorageDecl } from './kernel.js';
import { builtinWeightLoads, renderWeightLoads, weightArrayType, type WeightLoads } from './weights/weight-loads.js';

/** What the GEMM and the GEMV have in common: one matrix (or gate/up + activation) of K x N. */
export interface MatrixKernelShape {
  /** gate/up with the activation (`activation` set) or a single matrix. */
  gateup: boolean;
  /** Rows come from routed (token, k) slots, one expert per block, instead of all tokens. */
  grouped: boolean;
  bias: boolean;
  /** Multiply each output row by its slot's routing weight (grouped down projection). */
  weighted: boolean;
  kdim: number;
  ndim: number;
  topK: number;
  activation?: KindRef;
  /** Where `activation`'s WGSL comes from (default: the builtin activations). */
  activations?: ActivationKernels;
  /** Storage of w0 (and w1), decoded to f32 as it is read. Default f32. */
  weights?: WeightFormat;
  /** Storage of the activation rows read (`a`) and written (`out`). Default f32. */
  act?: ActivationDtype;
}

export interface MatrixBindings {
  storage: StorageDecl[];
  /** WGSL `fn w0_at(m, i)` (and w1) decoding the weight format. */
  weightLoads: string;
  format: WeightFormat;
}

/** `loads`: each weight format's decode (the registry's kernels.weightLoads). */
export function matrixBindings(shape: MatrixKernelShape, vec4: boolean, routing: readonly StorageDecl[], loads: WeightLoads = builtinWeightLoads): MatrixBindings {
  const format = shape.weights ?? F32;
  const weights = weightBindings({
    names: shape.gateup ? ['w0', 'w1'] : ['w0'],
    biases: shape.bias ? (shape.gateup ? ['b0', 'b1'] : ['b0']) : [],
    format,
    rows: shape.ndim,
    cols: shape.kdim,
  }, vec4, loads);
  const storage: StorageDecl[] = [
    { name: 'a', access: 'read', type: activationArray(shape.act ?? 'f32', vec4) },
    ...routing,
    ...weights.storage,
    ...(shape.weighted ? [{ name: 'routing_weights', access: 'read', type: f32Array } as const] : []),
    { name: 'out', access: 'read_write', type: activationArray(shape.act ?? 'f32') },
  ];
  return { storage, weightLoads: weights.weightLoads, format };
}

/** Matrices of one format and size read through `<name>_at` (and `_at4`), and their f32 biases. */
export interface WeightGroup {
  names: readonly string[];
  /** Bias bindings (f32), in order after the matrices; none when empty. */
  biases: readonly string[];
  format: WeightFormat;
  /** One matrix: rows (output features) x cols (the reduced dim). */
  rows: number;
  cols: number;
}

/** The bindings of a weight group (matrices, then biases) and the WGSL that decodes its matrices. */
export function weightBindings(group: WeightGroup, vec4: boolean, loads: WeightLoads = builtinWeightLoads): { storage: StorageDecl[]; weightLoads: string } {
  const { names, biases, format, rows, cols } = group;
  const weightType = weightArrayType(format, vec4);
  return {
    storage: [
      ...names.map((name): StorageDecl => ({ name, access: 'read', type: weightType })),
      ...biases.map((name): StorageDecl => ({ name, access: 'read', type: f32Array })),
    ],
    weightLoads: names.map((name) => renderWeightLoads({ name, format, rows, cols }, vec4, loads)).join('\n'),
  };
}
