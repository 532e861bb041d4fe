// What a pass is: a named, pure function from a graph to a graph.
import type { Graph } from '../ir/graph.js';
import type { ModelConfig, ParamValue } from '../ir/model-config.js';

/** How a quantization kind stores a weight matrix: as a float type, or as `bits`-bit values
 *  with one `scaleBits`-bit scale per `group` of them. */
export type WeightStorage =
  | { float: 'f32' | 'f16' | 'bf16' }
  | { bits: number; scaleBits: number; group: number };

/** What passes read from the compiler's kind registry (compiler/spec/kinds/registry.ts). */
export interface PassKinds {
  get(category: 'quant', name: string): { storage?(params: Record<string, ParamValue>): WeightStorage } | undefined;
}

export interface PassContext {
  config: ModelConfig;
  /** The kinds the spec was checked with, a plugin's included. */
  kinds: PassKinds;
}

export interface Pass {
  name: string;
  description: string;
  run(graph: Graph, context: PassContext): Graph;
}
