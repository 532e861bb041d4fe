// What a bundle carries, from each MoE layer's lowered module and plan and the whole model's
// (compiler/compile-bundle.ts runs the pipeline): the plans with their WGSL deduplicated across
// layers and the model plan, the weight layout the MoE blocks read, and what each plan's paths
// dispatch (for the manifest).
import { isKindRef, type Module } from '../../ir/graph.js';
import type { ModelConfig } from '../../ir/model-config.js';
import type { TargetDescription } from '../../ir/target.js';
import { dtypeName } from '../../ir/types.js';
import type { BundleData } from '../../runtime/bundle.js';
import { samplingSteps, type ModelPlan, type MoeBlockPlan, type PlanStep } from '../../runtime/plan.js';
import { deduplicateKernels, sha256, type KernelInfo } from './kernel-table.js';
import { storeModelPlan } from './model-plan-store.js';
import { moecVersion } from './package-info.js';

export interface WeightLayout {
  layer: number;
  /** IR name, e.g. layers.0.moe.experts.gate. */
  name: string;
  shape: number[];
  dtype: string;
}

/** One path of one plan as it runs: its steps' kernels, in order, and the tiles its ops used. */
export interface PathSummary {
  dispatches: number;
  kernels: string[];
  tiles: Array<Record<string, number>>;
}

export interface PlanSummary {
  layer: number;
  prefill: PathSummary;
  decode: PathSummary & { maxTokens: number };
}

/** A plugin the bundle was compiled with. */
export interface PluginInfo {
  name: string;
  file: string;
  sha256: string;
  /** The weight formats it gives, each with the runtime module (codec) model.js bundles when a plan uses the format. */
  formats?: FormatModule[];
}

export interface FormatModule {
  name: string;
  /** The module file; its default export is the format's FormatDefinition. */
  runtime: string;
  sha256?: string;
}

/** The whole-model plan as the manifest describes it, or why the bundle has none. */
export type ModelSummary =
  | {
    available: true;
    vocab: number;
    /** Positions the KV caches hold (compile { context = N }), and how they store keys and values. */
    context: number;
    kvCache: 'f32' | 'f16';
    prefill: PathSummary;
    decode: PathSummary & { maxTokens: number };
    /** The GPU sampler's kernels, run once per generated token after the decode path (`greedy`: those greedy sampling runs). */
    sampler: { dispatches: number; greedyDispatches: number; kernels: string[] };
    /** Dispatches per generated token: the decode path for one token, then the sampler (with top-k or top-p; greedy: greedyDispatchesPerToken). */
    dispatchesPerToken: number;
    greedyDispatchesPerToken: number;
    /** Ids (in `kernels`) of the kernels the model plan runs. */
    kernels: string[];
  }
  | { available: false; reason: string };

export interface CompiledBundle {
  data: BundleData;
  kernels: KernelInfo[];
  weights: WeightLayout[];
  plans: PlanSummary[];
  wholeModel: ModelSummary;
  target: TargetDescription;
  plugins: PluginInfo[];
  /** Plugin formats the plans use: their codecs go into model.js. */
  formatModules?: FormatModule[];
}

export interface CompiledBlock {
  layer: number;
  module: Module;
  plan: MoeBlockPlan;
}

/** The whole decoder compiled (compiler/model-plan.ts), or why it could not be. */
export type CompiledModel = { module: Module; plan: ModelPlan } | { error: string };

function summarizePath(module: Module, path: string, steps: PlanStep[]): PathSummary {
  const f = module.functions.find((g) => g.attrs?.['path'] === path) ?? module.functions[0]!;
  // A GEMM's tile (bm, bn, bk, tm, tn) or a GEMV's rows per workgroup, each distinct one once.
  const tiles = f.ops.flatMap((op): Array<Record<string, number>> => {
    const tile = op.attrs['tile'];
    if (tile !== undefined && isKindRef(tile)) return [tile.params as Record<string, number>];
    return typeof op.attrs['rows'] === 'number' ? [{ rows: op.attrs['rows'] }] : [];
  });
  const distinct = [...new Map(tiles.map((t) => [JSON.stringify(t), t])).values()];
  return { dispatches: steps.length, kernels: steps.map((s) => s.kernel), tiles: distinct };
}

function summarizeModel(config: ModelConfig, compiled: CompiledModel, info: readonly KernelInfo[]): ModelSummary {
  if ('error' in compiled) return { available: false, reason: compiled.error };
  const { module, plan } = compiled;
  const sampler = plan.sampler?.steps.map((s) => s.kernel) ?? [];
  const greedy = plan.sampler ? samplingSteps(plan.sampler, { temperature: 0, topK: 0, topP: 1 }).length : 0;
  return {
    available: true,
    vocab: plan.vocab,
    context: plan.context,
    kvCache: config.compile.kvCache,
    prefill: summarizePath(module, 'prefill', plan.prefill),
    decode: { ...summarizePath(module, 'decode', plan.decode), maxTokens: plan.decodeMaxTokens },
    sampler: { dispatches: sampler.length, greedyDispatches: greedy, kernels: sampler },
    dispatchesPerToken: plan.decode.length + sampler.length,
    greedyDispatchesPerToken: plan.decode.length + greedy,
    kernels: info.filter((k) => k.model).map((k) => k.id),
  };
}

export function assembleBundle(config: ModelConfig, specSource: string, blocks: CompiledBlock[], target: TargetDescription, plugins: readonly PluginInfo[] = [],
  model: CompiledModel = { error: 'the whole model was not compiled into this bundle' }): CompiledBundle {
  const plans = new Map(blocks.map((b) => [b.layer, b.plan]));
  const weights: WeightLayout[] = blocks.flatMap(({ layer, module, plan }) => plan.weights.map((w) => {
    const param = module.functions[0]!.params.find((p) => p.name === w.name);
    return { layer, name: w.name, shape: [...w.shape], dtype: param ? dtypeName(param.type.dtype) : 'f32' };
  }));
  const table = deduplicateKernels(plans, 'plan' in model ? model.plan : undefined);
  const data: BundleData = {
    moecVersion: moecVersion(),
    specSha256: sha256(specSource),
    config: JSON.parse(JSON.stringify(config)) as BundleData['config'],
    moeLayers: blocks.map((b) => b.layer),
    plans: table.plans,
    planTemplates: table.planTemplates,
    kernels: table.kernels,
    features: [...new Set([...blocks.flatMap((b) => b.plan.features ?? []), ...('plan' in model ? model.plan.features ?? [] : [])])],
    ...('error' in model ? { modelUnavailable: model.error } : { model: storeModelPlan(table.model as Record<string, unknown>) }),
  };
  const summaries = blocks.map(({ layer, module, plan }) => ({
    layer,
    prefill: summarizePath(module, 'prefill', plan.prefill),
    decode: { ...summarizePath(module, 'decode', plan.decode), maxTokens: plan.decodeMaxTokens },
  }));
  return { data, kernels: table.info, weights, plans: summaries, wholeModel: summarizeModel(config, model, table.info), target, plugins: [...plugins] };
}
