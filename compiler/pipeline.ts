// The compiler's table of contents: spec -> IR -> passes -> lowered IR. Each pass lives in
// passes/<name>.ts; codegen (codegen/plan/) maps the lowered ops one to one onto kernels.
import { buildModelGraph, buildMoeBlockGraph } from '../ir/build-model.js';
import { moduleOf, type Graph, type Module } from '../ir/graph.js';
import type { ModelConfig } from '../ir/model-config.js';
import { printModule } from '../ir/print.js';
import { webgpuTarget, type TargetDescription } from '../ir/target.js';
import { verifyGraph } from '../ir/verify.js';
import { WEBGPU_OPCODES, WEBGPU_WEIGHT_FORMATS } from '../codegen/plan/supported.js';
import { foldSharedExpert } from '../passes/fold-shared-expert.js';
import { legalizeWebgpu } from '../passes/legalize-webgpu.js';
import { lowerDenseMlp } from '../passes/lower-dense-mlp.js';
import { lowerRoutedExperts } from '../passes/lower-routed-experts.js';
import { markDequantizedWeights } from '../passes/mark-dequantized-weights.js';
import type { Pass } from '../passes/pass.js';
import { quantizeWeights } from '../passes/quantize-weights.js';
import { setActivationDtype } from '../passes/set-activation-dtype.js';
import { shardExperts } from '../passes/shard-experts.js';
import { splitPaths } from '../passes/split-paths.js';
import { defaultRegistry } from './spec/kinds/builtin.js';
import type { KindRegistry } from './spec/kinds/registry.js';

/** The passes, in order. Plugins insert theirs at named points (by pass name). */
export const defaultPasses: readonly Pass[] = [
  quantizeWeights,
  setActivationDtype,
  splitPaths,
  lowerRoutedExperts,
  lowerDenseMlp,
  markDequantizedWeights,
  foldSharedExpert,
  shardExperts,
  legalizeWebgpu,
];

/** The whole decoder has ops with no WebGPU kernel yet (attention, norms): its IR stops before legalization. */
const analysisPasses = defaultPasses.filter((p) => p !== legalizeWebgpu);

export interface PipelineOptions {
  passes?: readonly Pass[];
  /** Pass names to leave out (`--disable-pass`). */
  disabledPasses?: readonly string[];
  /** Verify the IR after every pass (always after the build and at the end). */
  verifyEach?: boolean;
  /** Print the IR after the named pass (`build` for the freshly built graph, `all` for every one). */
  printIrAfter?: string;
  print?: (text: string) => void;
  /** The kinds the spec was checked with (a plugin's registry): passes read e.g. a quantization kind's storage. */
  kinds?: KindRegistry;
  /** Limits, tiles and supported ops the passes lower for (default: WebGPU's default limits and tiles). */
  target?: TargetDescription;
}

export const defaultTarget = (overrides: Partial<TargetDescription> = {}): TargetDescription =>
  webgpuTarget({ opcodes: WEBGPU_OPCODES, weightFormats: WEBGPU_WEIGHT_FORMATS }, overrides);

const verifyModule = (module: Module) => module.functions.forEach(verifyGraph);

export function runPasses(module: Module, config: ModelConfig, options: PipelineOptions = {}): Module {
  const print = options.print ?? ((t: string) => process.stdout.write(t));
  const wants = (name: string) => options.printIrAfter === name || options.printIrAfter === 'all';
  const context = { config, kinds: options.kinds ?? defaultRegistry, target: options.target ?? defaultTarget() };
  const disabled = new Set(options.disabledPasses ?? []);
  for (const name of disabled) if (!(options.passes ?? defaultPasses).some((p) => p.name === name)) throw new Error(`--disable-pass: unknown pass \`${name}\`; passes: ${passNames(options.passes).slice(1).join(', ')}`);
  verifyModule(module);
  if (wants('build')) print(`// IR after build\n${printModule(module)}`);
  let current = module;
  for (const pass of (options.passes ?? defaultPasses).filter((p) => !disabled.has(p.name))) {
    current = pass.run(current, context);
    if (options.verifyEach) verifyModule(current);
    if (wants(pass.name)) print(`// IR after ${pass.name}\n${printModule(current)}`);
  }
  if (!options.verifyEach) verifyModule(current);
  return current;
}

/** The whole decoder, lowered as far as the WebGPU kernels go (MoE blocks and dense MLPs). */
export function compileModelModule(config: ModelConfig, options: PipelineOptions = {}): Module {
  return runPasses(moduleOf(buildModelGraph(config)), config, { passes: analysisPasses, ...options });
}

/** Layer `layer`'s MoE block, lowered for the target: what codegen turns into a plan. */
export function compileMoeBlockModule(config: ModelConfig, layer: number, options: PipelineOptions = {}): Module {
  return runPasses(moduleOf(buildMoeBlockGraph(config, layer)), config, options);
}

/** The passes that decide storage but keep the model-level ops: what stats and the reference interpreter read. */
const modelLevelPasses = defaultPasses.slice(0, defaultPasses.indexOf(quantizeWeights) + 1);

/** The whole decoder before lowering (weights in their storage formats): what `moec stats` counts. */
export function compileModelGraph(config: ModelConfig, options: PipelineOptions = {}): Graph {
  return runPasses(moduleOf(buildModelGraph(config)), config, { passes: modelLevelPasses, ...options }).functions[0]!;
}

/** Layer `layer`'s MoE block before lowering: what the CPU reference interpreter runs against a plan. */
export function compileMoeBlockGraph(config: ModelConfig, layer: number, options: PipelineOptions = {}): Graph {
  return runPasses(moduleOf(buildMoeBlockGraph(config, layer)), config, { passes: modelLevelPasses, ...options }).functions[0]!;
}

export function passNames(passes: readonly Pass[] = defaultPasses): string[] {
  return ['build', ...passes.map((p) => p.name)];
}
