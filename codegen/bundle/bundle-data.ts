// Spec -> what a bundle carries: each MoE layer's plan (IR -> passes -> kernels), the WGSL
// deduplicated across layers, and the weight layout the plans read.
import type { ModelConfig } from '../../ir/model-config.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { dtypeName } from '../../ir/types.js';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import type { BundleData } from '../../runtime/bundle.js';
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { compileMoeBlockPlan } from '../moe-block/compile-moe-block.js';
import { deduplicateKernels, sha256, type KernelInfo } from './kernel-table.js';
import { moecVersion } from './package-info.js';

export interface WeightLayout {
  layer: number;
  /** IR name, e.g. layers.0.moe.experts.gate. */
  name: string;
  shape: number[];
  dtype: string;
}

export interface CompiledBundle {
  data: BundleData;
  kernels: KernelInfo[];
  weights: WeightLayout[];
}

/** Compiles the MoE block of each of `layers` (default: every MoE layer) for the bundle. */
export function compileBundleData(config: ModelConfig, specSource: string, layers = moeLayerIndices(config)): CompiledBundle {
  const plans = new Map<number, MoeBlockPlan>();
  const weights: WeightLayout[] = [];
  for (const layer of layers) {
    const graph = compileMoeBlockGraph(config, layer);
    const plan = compileMoeBlockPlan(graph, config);
    plans.set(layer, plan);
    for (const w of plan.weights) {
      const param = graph.params.find((p) => p.name === w.name);
      weights.push({ layer, name: w.name, shape: [...w.shape], dtype: param ? dtypeName(param.type.dtype) : 'f32' });
    }
  }
  const table = deduplicateKernels(plans);
  const data: BundleData = {
    moecVersion: moecVersion(),
    specSha256: sha256(specSource),
    config: JSON.parse(JSON.stringify(config)) as BundleData['config'],
    moeLayers: layers,
    plans: table.plans,
    planTemplates: table.planTemplates,
    kernels: table.kernels,
    features: [...new Set([...plans.values()].flatMap((p) => p.features ?? []))],
  };
  return { data, kernels: table.info, weights };
}
