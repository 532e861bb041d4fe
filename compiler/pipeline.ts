// The compiler's table of contents: spec -> IR -> passes. Each pass lives in passes/<name>.ts.
import { buildModelGraph, buildMoeBlockGraph } from '../ir/build-model.js';
import type { Graph } from '../ir/graph.js';
import type { ModelConfig } from '../ir/model-config.js';
import { printGraph } from '../ir/print.js';
import { verifyGraph } from '../ir/verify.js';
import type { Pass } from '../passes/pass.js';
import { quantizeWeights } from '../passes/quantize-weights.js';
import { defaultRegistry } from './spec/kinds/builtin.js';
import type { KindRegistry } from './spec/kinds/registry.js';

/** The passes, in order. Plugins insert theirs at named points (by pass name). */
export const defaultPasses: readonly Pass[] = [
  quantizeWeights,
];

export interface PipelineOptions {
  passes?: readonly Pass[];
  /** Verify the graph after every pass (always after the build). */
  verifyEach?: boolean;
  /** Print the IR after the named pass (`build` for the freshly built graph, `all` for every one). */
  printIrAfter?: string;
  print?: (text: string) => void;
  /** The kinds the spec was checked with (a plugin's registry): passes read e.g. a quantization kind's storage. */
  kinds?: KindRegistry;
}

export function runPasses(graph: Graph, config: ModelConfig, options: PipelineOptions = {}): Graph {
  const print = options.print ?? ((t: string) => process.stdout.write(t));
  const wants = (name: string) => options.printIrAfter === name || options.printIrAfter === 'all';
  verifyGraph(graph);
  if (wants('build')) print(`// IR after build\n${printGraph(graph)}`);
  let current = graph;
  for (const pass of options.passes ?? defaultPasses) {
    current = pass.run(current, { config, kinds: options.kinds ?? defaultRegistry });
    if (options.verifyEach) verifyGraph(current);
    if (wants(pass.name)) print(`// IR after ${pass.name}\n${printGraph(current)}`);
  }
  if (!options.verifyEach) verifyGraph(current);
  return current;
}

export function compileModelGraph(config: ModelConfig, options: PipelineOptions = {}): Graph {
  return runPasses(buildModelGraph(config), config, options);
}

export function compileMoeBlockGraph(config: ModelConfig, layer: number, options: PipelineOptions = {}): Graph {
  return runPasses(buildMoeBlockGraph(config, layer), config, options);
}

export function passNames(passes: readonly Pass[] = defaultPasses): string[] {
  return ['build', ...passes.map((p) => p.name)];
}
