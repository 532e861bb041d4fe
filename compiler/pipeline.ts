// The compiler's table of contents: spec -> IR -> passes -> lowered IR. Each pass lives in
// passes/<name>.ts; codegen (codegen/plan/) maps the lowered ops one to one onto kernels.
import { buildModelGraph, buildMoeBlockGraph } from '../ir/build-model.js';
import { moduleOf, type Graph, type Module } from '../ir/graph.js';
import { opDefinitions, type OpDefinition } from '../ir/ops.js';
import type { ModelConfig } from '../ir/model-config.js';
import { printModule } from '../ir/print.js';
import { webgpuTarget, type TargetDescription } from '../ir/target.js';
import { verifyGraph } from '../ir/verify.js';
import { WEBGPU_OPCODES } from '../codegen/plan/supported.js';
import { builtinFormats } from '../runtime/quant/builtin-formats.js';
import { foldSharedExpert } from '../passes/fold-shared-expert.js';
import { fuseAddNorm } from '../passes/fuse-add-norm.js';
import { fuseDecode } from '../passes/fuse-decode.js';
import { groupExpertsByFormat } from '../passes/group-experts-by-format.js';
import { groupSharedExpert } from '../passes/group-shared-expert.js';
import { legalizeWebgpu } from '../passes/legalize-webgpu.js';
import { lowerAttention } from '../passes/lower-attention.js';
import { lowerDenseMlp } from '../passes/lower-dense-mlp.js';
import { lowerLinear } from '../passes/lower-linear.js';
import { lowerRoutedExperts } from '../passes/lower-routed-experts.js';
import { markDequantizedWeights } from '../passes/mark-dequantized-weights.js';
import type { Pass } from '../passes/pass.js';
import { quantizeWeights } from '../passes/quantize-weights.js';
import { roundTokens } from '../passes/round-tokens.js';
import { setActivationDtype } from '../passes/set-activation-dtype.js';
import { shardExperts } from '../passes/shard-experts.js';
import { splitPaths } from '../passes/split-paths.js';
import { defaultRegistry } from './spec/kinds/builtin.js';
import type { KindRegistry } from './spec/kinds/registry.js';
import type { Registry } from './plugins/registry.js';

/** The passes, in order. Plugins insert theirs at named points (by pass name). */
export const defaultPasses: readonly Pass[] = [
  quantizeWeights,
  setActivationDtype,
  splitPaths,
  roundTokens,
  lowerRoutedExperts,
  lowerDenseMlp,
  lowerAttention,
  lowerLinear,
  markDequantizedWeights,
  foldSharedExpert,
  groupExpertsByFormat,
  shardExperts,
  groupSharedExpert,
  fuseDecode,
  fuseAddNorm,
  legalizeWebgpu,
];


export interface PipelineOptions {
  /** Kinds, passes and kernels, a plugin's included (default: the builtin ones). */
  registry?: Registry;
  /** The passes to run instead of the registry's (tests run a prefix of them). */
  passes?: readonly Pass[];
  /** Pass names to leave out (`--disable-pass`). */
  disabledPasses?: readonly string[];
  /** Verify the IR after every pass (always after the build and at the end). */
  verifyEach?: boolean;
  /** Print the IR after the named pass (`build` for the freshly built graph, `all` for every one). */
  printIrAfter?: string;
  print?: (text: string) => void;
  /** The kinds the spec was checked with, when not the registry's: passes read e.g. a quantization kind's storage. */
  kinds?: KindRegistry;
  /** Limits, tiles and supported ops the passes lower for (default: WebGPU's default limits and tiles). */
  target?: TargetDescription;
}

/** WebGPU's default limits and tiles; the ops with a kernel and the weight formats in `registry` (builtin: WEBGPU_OPCODES, builtinFormats). */
export const defaultTarget = (overrides: Partial<TargetDescription> = {}, registry?: Registry): TargetDescription => {
  const opcodes = registry ? [...new Set([...WEBGPU_OPCODES, ...Object.keys(registry.kernels.ops)])] : WEBGPU_OPCODES;
  return webgpuTarget({ opcodes, weightFormats: registry?.formats ?? builtinFormats }, overrides);
};

const verifyModule = (module: Module, ops: Readonly<Record<string, OpDefinition>>) => module.functions.forEach((f) => verifyGraph(f, ops));

export function runPasses(module: Module, config: ModelConfig, options: PipelineOptions = {}): Module {
  const print = options.print ?? ((t: string) => process.stdout.write(t));
  const wants = (name: string) => options.printIrAfter === name || options.printIrAfter === 'all';
  const ops = options.registry?.semantics.opDefinitions ?? opDefinitions;
  const kernelOpcodes = new Set(Object.keys(options.registry?.kernels.ops ?? {}));
  const context = { config, kinds: options.kinds ?? options.registry?.kinds ?? defaultRegistry, target: options.target ?? defaultTarget({}, options.registry), ops };
  const passes = options.passes ?? options.registry?.passes ?? defaultPasses;
  const disabled = new Set(options.disabledPasses ?? []);
  for (const name of disabled) if (!passes.some((p) => p.name === name)) throw new Error(`--disable-pass: unknown pass \`${name}\`; passes: ${passNames(passes).slice(1).join(', ')}`);
  verifyModule(module, ops);
  if (wants('build')) print(`// IR after build\n${printModule(module, kernelOpcodes)}`);
  let current = module;
  for (const pass of passes.filter((p) => !disabled.has(p.name))) {
    current = pass.run(current, context);
    if (options.verifyEach) verifyModule(current, ops);
    if (wants(pass.name)) print(`// IR after ${pass.name}\n${printModule(current, kernelOpcodes)}`);
  }
  if (!options.verifyEach) verifyModule(current, ops);
  return current;
}

/** The whole decoder, lowered (embed, norm and add have no WebGPU kernel yet: it stops before legalization). */
export function compileModelModule(config: ModelConfig, options: PipelineOptions = {}): Module {
  const passes = (options.registry?.passes ?? defaultPasses).filter((p) => p !== legalizeWebgpu);
  return runPasses(moduleOf(buildModelGraph(config)), config, { passes, ...options });
}

/** Layer `layer`'s MoE block, lowered for the target: what codegen turns into a plan. */
export function compileMoeBlockModule(config: ModelConfig, layer: number, options: PipelineOptions = {}): Module {
  return runPasses(moduleOf(buildMoeBlockGraph(config, layer)), config, options);
}

/**
 * The registry's passes before `end`, activations left in f32: what stats (before split-paths:
 * quantize-weights and a plugin's passes placed there) and the reference interpreter (through
 * round-tokens) read.
 */
function passesBefore(options: PipelineOptions, end: Pass): readonly Pass[] {
  const passes = options.registry?.passes ?? defaultPasses;
  return passes.slice(0, passes.indexOf(end)).filter((p) => p !== setActivationDtype);
}

/** The whole decoder before lowering (weights in their storage formats): what `moec stats` counts. */
export function compileModelGraph(config: ModelConfig, options: PipelineOptions = {}): Graph {
  return runPasses(moduleOf(buildModelGraph(config)), config, { passes: passesBefore(options, splitPaths), ...options }).functions[0]!;
}

/**
 * Layer `layer`'s MoE block through token rounding, before lowering (activations in f32): what
 * the reference interpreter runs against a plan (interpretModule picks the path by token count;
 * with `token_rounding = sonic` the prefill path rounds, decode does not).
 */
export function compileReferenceModule(config: ModelConfig, layer: number, options: PipelineOptions = {}): Module {
  return runPasses(moduleOf(buildMoeBlockGraph(config, layer)), config, { ...options, passes: passesBefore(options, lowerRoutedExperts) });
}

/** Layer `layer`'s MoE block before lowering, activations in f32: what the CPU reference interpreter runs against a plan. */
export function compileMoeBlockGraph(config: ModelConfig, layer: number, options: PipelineOptions = {}): Graph {
  return runPasses(moduleOf(buildMoeBlockGraph(config, layer)), config, { passes: passesBefore(options, splitPaths), ...options }).functions[0]!;
}

export function passNames(passes: readonly Pass[] = defaultPasses): string[] {
  return ['build', ...passes.map((p) => p.name)];
}
