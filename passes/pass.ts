// What a pass is: a named, pure function from a module to a module. It reads the spec's config,
// the registry's kinds and the target description, and records every decision it makes in the IR.
import type { Graph, Module } from '../ir/graph.js';
import type { OpDefinition } from '../ir/op-checks.js';
import type { ModelConfig, ParamValue } from '../ir/model-config.js';
import type { TargetDescription } from '../ir/target.js';

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
  target: TargetDescription;
  /** Every op's shape rule, a plugin's ops included: what shape inference (GraphRewriter, reinferGraph) checks against. */
  ops: Readonly<Record<string, OpDefinition>>;
}

export interface Pass {
  name: string;
  description: string;
  run(module: Module, context: PassContext): Module;
}

/** A pass that treats every function of the module alike. */
export function forEachFunction(module: Module, rewrite: (f: Graph) => Graph): Module {
  return { ...module, functions: module.functions.map(rewrite) };
}

/** The path a function serves: `main` before split-paths, then `prefill` or `decode`. */
export const pathOf = (f: Graph): string => String(f.attrs?.['path'] ?? 'main');
