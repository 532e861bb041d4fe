// `moec compile`'s driver: every MoE layer and the whole decoder through the pipeline and codegen,
// then the bundle files (codegen/bundle/), written atomically. A plugin weight format the plans
// use brings its runtime module (codec) into model.js.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { assembleBundle, type CompiledBundle, type CompiledModel, type PluginInfo } from '../codegen/bundle/bundle-data.js';
import type { BundleManifest } from '../codegen/bundle/manifest.js';
import { refuseToReplace, writeBundle } from '../codegen/bundle/write-bundle.js';
import { moeLayerIndices, type ModelConfig } from '../ir/model-config.js';
import { compileModel } from './model-plan.js';
import { compileMoeBlock, planTarget, type PlanOptions } from './moe-block-plan.js';
import { deduplicateKernels } from '../codegen/bundle/kernel-table.js';
import { storeModelPlan } from '../codegen/bundle/model-plan-store.js';
import type { TunedPlans } from '../runtime/bundle.js';
import type { TunedTarget } from './tune/apply-tuning.js';
import { loadCandidateTargets, type LoadCandidateOptions } from './tune/load-candidates.js';

export interface BundleContents {
  /** Also compile the whole decoder (forward / generate); `moec run --layer` needs only its layer's block. */
  wholeModel?: boolean;
  /** `moec compile --tuning`: one more set of plans per tuned adapter, picked at load on that adapter. */
  tuned?: readonly TunedTarget[];
  /** `moec compile --load-candidates N`: plan sets for `load({ tune: 'first-load' })` to time on the user's adapter. */
  loadCandidates?: LoadCandidateOptions;
}

/**
 * The whole decoder's plan, or why there is none: a spec the model plan cannot serve yet (f16
 * activations, an embedding larger than one storage binding) still makes a bundle of MoE blocks.
 */
function compileWholeModel(config: ModelConfig, options: PlanOptions): CompiledModel {
  try {
    return compileModel(config, options);
  } catch (e) {
    if (e instanceof TypeError || e instanceof ReferenceError) throw e; // a bug, not a limit of the spec
    return { error: (e as Error).message };
  }
}

/** Compiles the MoE block of each of `layers` (default: every MoE layer), and with `contents.wholeModel` the decoder, for the bundle. */
export function compileBundleData(config: ModelConfig, specSource: string, layers = moeLayerIndices(config), options: PlanOptions = {},
  contents: BundleContents = {}): CompiledBundle {
  const blocks = layers.map((layer) => ({ layer, ...compileMoeBlock(config, layer, options) }));
  const model = contents.wholeModel ? compileWholeModel(config, options) : undefined;
  const plugins: PluginInfo[] = (options.registry?.plugins ?? []).map((p) => (p.formats
    ? { ...p, formats: p.formats.map((f) => ({ ...f, sha256: createHash('sha256').update(readFileSync(f.runtime)).digest('hex') })) }
    : p));
  const used = new Set([...blocks.flatMap((b) => b.plan.weights), ...(model && 'plan' in model ? model.plan.weights : [])].map((w) => w.format.format));
  const formatModules = plugins.flatMap((p) => p.formats ?? []).filter((f) => used.has(f.name));
  const bundle = { ...assembleBundle(config, specSource, blocks, planTarget(options), plugins, model), formatModules };
  bundle.data.tuningSource = bundle.target.source;
  const wholeModel = contents.wholeModel ?? false;
  for (const tuned of contents.tuned ?? []) {
    const set = compilePlanSet(bundle, config, layers, { ...options, target: { ...options.target, ...tuned.target } }, wholeModel);
    (bundle.data.tuned ??= []).push({ key: tuned.key, adapter: tuned.adapter, requires: tuned.requires, source: tuned.target.source ?? tuned.key, ...set } satisfies TunedPlans);
  }
  const candidates = contents.loadCandidates && loadCandidateTargets(config, options, contents.loadCandidates);
  if (candidates) {
    bundle.data.loadCandidates = {
      layer: candidates.layer, prefillTokens: candidates.prefillTokens, default: candidates.default,
      sets: candidates.targets.map((c) => ({ id: c.id, params: c.params, ...compilePlanSet(bundle, config, layers, { ...options, target: { ...options.target, ...c.target } }, wholeModel) })),
    };
  }
  return bundle;
}

/** The plans compiled under other target overrides, their kernels joined to the bundle's table (ids are content hashes). */
function compilePlanSet(bundle: CompiledBundle, config: ModelConfig, layers: number[], options: PlanOptions, wholeModel: boolean): Pick<TunedPlans, 'plans' | 'planTemplates' | 'model'> {
  const plans = new Map(layers.map((layer) => [layer, compileMoeBlock(config, layer, options).plan]));
  const model = wholeModel ? compileWholeModel(config, options) : undefined;
  const table = deduplicateKernels(plans, model && 'plan' in model ? model.plan : undefined);
  Object.assign(bundle.data.kernels, table.kernels);
  for (const info of table.info) if (!bundle.kernels.some((k) => k.id === info.id)) bundle.kernels.push(info);
  return { plans: table.plans, planTemplates: table.planTemplates, ...(table.model ? { model: storeModelPlan(table.model as Record<string, unknown>) } : {}) };
}

export async function compileBundle(config: ModelConfig, specSource: string, specFile: string, outDir: string, options: PlanOptions = {}, tuned: readonly TunedTarget[] = [],
  loadCandidates?: LoadCandidateOptions): Promise<BundleManifest> {
  refuseToReplace(outDir); // before the work, not after
  return writeBundle(compileBundleData(config, specSource, undefined, options, { wholeModel: true, tuned, ...(loadCandidates ? { loadCandidates } : {}) }), config, specFile, outDir);
}
