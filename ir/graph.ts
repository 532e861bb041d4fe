// The IR: a dataflow graph of ops over SSA values. Weights are values too (params), each with
// the role it plays, so passes (quantization, placement) and stats can select them.
import type { KindRef, QuantTarget } from './model-config.js';
import type { TensorType } from './types.js';

/** `rope`: the cos/sin table the runtime computes at load (runtime/rope-table.ts), not a checkpoint tensor. */
export type WeightRole = 'embedding' | 'lm_head' | 'attention' | 'norm' | 'router' | 'expert' | 'shared' | 'dense' | 'rope';

/** The weight role each `quantize <target>` line covers (norms have none: they are never quantized). */
export const roleOfQuantTarget: Readonly<Record<QuantTarget, WeightRole>> = {
  experts: 'expert', shared: 'shared', dense: 'dense', attention: 'attention', router: 'router', embeddings: 'embedding', lm_head: 'lm_head',
};

export function quantTargetOfRole(role: WeightRole | undefined): QuantTarget | undefined {
  return (Object.keys(roleOfQuantTarget) as QuantTarget[]).find((t) => roleOfQuantTarget[t] === role);
}

export interface Value {
  id: number;
  name: string;
  type: TensorType;
  /** Set on params: what the weight is, for passes and stats. */
  role?: WeightRole;
}

export type AttrValue = number | string | boolean | number[] | string[] | KindRef | KindRef[];

export interface Op {
  opcode: string;
  inputs: Value[];
  outputs: Value[];
  attrs: Record<string, AttrValue>;
}

export interface Graph {
  name: string;
  inputs: Value[];
  params: Value[];
  /**
   * Tensors that outlive one call (the KV caches): the runtime allocates them zeroed, ops read them
   * and update them in place (their definitions' `inPlace`), and the next call sees the update.
   */
  state?: Value[];
  ops: Op[];
  outputs: Value[];
  /** Facts about the whole function that passes decided (its path, the token counts it serves, ...). */
  attrs?: Record<string, AttrValue>;
}

/**
 * What the pipeline transforms: one function until split-paths, then one per path (`prefill`,
 * and `decode` for token counts up to a target-given bound), each with its own ops over the same
 * params.
 */
export interface Module {
  name: string;
  functions: Graph[];
}

export const moduleOf = (graph: Graph): Module => ({ name: graph.name, functions: [graph] });

/** The function of a module that serves `path` (`main` before split-paths). */
export function functionOf(module: Module, path: string): Graph | undefined {
  return module.functions.find((f) => (f.attrs?.['path'] ?? 'main') === path);
}

export function isKindRef(v: AttrValue): v is KindRef {
  return typeof v === 'object' && !Array.isArray(v);
}

/** A weight that multiplies activations (quantizable, counted in FLOPs), as opposed to a bias,
 *  norm scale or table row. Routed-expert weights carry a leading [experts] dimension. */
export function isWeightMatrix(p: Value): boolean {
  if (p.role === 'rope') return false;
  const stacked = p.role === 'expert' ? 1 : 0;
  return p.type.shape.length - stacked >= 2;
}
