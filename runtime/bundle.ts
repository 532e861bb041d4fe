/// <reference types="@webgpu/types" />
// What a compiled bundle (model.js) runs: the model's data (config, one plan per MoE layer,
// the deduplicated WGSL kernels) and `load`, which opens a device and builds an executor per
// MoE layer on first use. Browser-safe; in Node the caller passes `gpu` from the `webgpu` package.
import { inflatePlan } from './bundle-plans.js';
import { openDevice, requireFeatures, type AdapterSummary, type GpuRuntime } from './device.js';
import { hfWeightsFromSafetensors, hfWeightsFromUrl, type FetchCheckpointOptions, type SafetensorsBytes } from './hf-checkpoint.js';
import type { HfWeightSource } from './hf-weights.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from './moe-executor.js';
import type { MoeBlockPlan, WeightSource } from './plan.js';
import { builtinFormats } from './quant/builtin-formats.js';
import { withFormats, type FormatDefinition } from './quant/weight-format.js';

export interface BundleData {
  moecVersion: string;
  specSha256: string;
  /** The resolved model config the bundle was compiled from (the compiler's ModelConfig, as JSON). */
  config: { name: string; hidden: number; compile: { dtype: 'f32' | 'f16' } } & Record<string, unknown>;
  moeLayers: number[];
  /** Layer index -> its MoE block's plan, in the stored form of bundle-plans.ts. */
  plans: Record<string, unknown>;
  /** Plans shared by several layers, with `{layer}` for the layer number. */
  planTemplates: unknown[];
  /** Kernel id -> finished WGSL. */
  kernels: Record<string, string>;
  /** Adapter features any layer's kernels need (every plan's `features`). */
  features: string[];
}

/** A checkpoint's safetensors files in memory, with its config.json's model_type. */
export interface HfSafetensorsWeights {
  modelType: string;
  files: SafetensorsBytes[];
}

export interface LoadOptions {
  /** The GPU: in Node, `create([])` from the `webgpu` package (keep it referenced); default navigator.gpu. */
  gpu?: GPU;
  /** The weights: a WeightSource, safetensors bytes, or the URL of a Hugging Face checkpoint directory to fetch. */
  weights: WeightSource | HfSafetensorsWeights | string | URL;
  /** How a checkpoint URL is read (Range requests): the fetch to use, a warning callback, the largest request. */
  fetchOptions?: FetchCheckpointOptions;
  /** Request WebGPU's default limits only, as the smallest devices have. */
  defaultLimits?: boolean;
}

export interface Model<Layer extends number = number> {
  /** The adapter the model runs on. */
  readonly adapter: AdapterSummary;
  /** MoE layer `layer` on `tokens` rows of hidden states [tokens, hidden] (row-major f32); returns the block's output, same shape. */
  runMoeBlock(layer: Layer, hiddenStates: Float32Array, tokens: number): Promise<Float32Array>;
  /** Reads a layer's weights and builds its pipelines now rather than on its first run. */
  prepare(layer: Layer): Promise<void>;
  /** GPU dispatches one run of `layer` makes for `tokens` tokens. */
  dispatchCount(layer: Layer, tokens: number): Promise<number>;
  /** For checks: fills `layer`'s scratch and output buffers with NaN, so an element the next run leaves unwritten shows. */
  poisonScratch(layer: Layer, tokens: number): Promise<void>;
  /** Frees the device and every buffer. */
  destroy(): void;
}

export class ModelError extends Error {
  override readonly name = 'ModelError';
}

function isWeightSource(w: LoadOptions['weights']): w is WeightSource {
  return typeof w === 'object' && w !== null && typeof (w as WeightSource).readF32 === 'function';
}

async function resolveWeights(weights: LoadOptions['weights'], fetchOptions: FetchCheckpointOptions | undefined): Promise<WeightSource> {
  if (typeof weights === 'string' || weights instanceof URL) return hfWeightsFromUrl(weights, fetchOptions);
  if (isWeightSource(weights)) return weights;
  if (typeof weights === 'object' && weights !== null && Array.isArray(weights.files)) {
    return hfWeightsFromSafetensors(weights.modelType, weights.files);
  }
  throw new ModelError('load: `weights` must be a WeightSource, { modelType, files } or a checkpoint URL');
}

/**
 * Opens a device and returns the model; layers are set up on first use (or by prepare). `formats`:
 * weight formats besides the builtin ones, the plugins' codecs model.js was compiled with.
 */
export async function loadModel(data: BundleData, options: LoadOptions, formats: readonly FormatDefinition[] = []): Promise<Model> {
  try {
    withFormats(builtinFormats, formats);
  } catch (e) {
    throw new ModelError(`load: ${(e as Error).message}`);
  }
  if (typeof GPUBufferUsage === 'undefined' && options.gpu) {
    throw new ModelError("load: WebGPU's globals (GPUBufferUsage, ...) are missing; in Node run " +
      "`Object.assign(globalThis, globals)` with `globals` from the 'webgpu' package first");
  }
  const weights = await resolveWeights(options.weights, options.fetchOptions);
  const rt: GpuRuntime = await openDevice({ gpu: options.gpu, defaultLimits: options.defaultLimits ?? false, label: data.config.name });
  try {
    requireFeatures(rt, data.config.name, data.features); // up front, not at a layer's first run
  } catch (e) {
    rt.destroy();
    throw new ModelError((e as Error).message);
  }
  const executors = new Map<number, Promise<MoeBlockExecutor>>();
  const plans = new Map<number, MoeBlockPlan>();
  let destroyed = false;

  const executor = (layer: number): Promise<MoeBlockExecutor> => {
    if (destroyed) throw new ModelError(`${data.config.name}: the model was destroyed`);
    if (!data.moeLayers.includes(layer)) {
      throw new ModelError(`${data.config.name}: layer ${layer} is not a MoE layer (MoE layers: ${data.moeLayers.join(', ') || 'none'})`);
    }
    const existing = executors.get(layer);
    if (existing) return existing;
    let plan = plans.get(layer);
    if (!plan) plans.set(layer, (plan = inflatePlan(data.plans[String(layer)], layer, data.planTemplates, data.kernels)));
    (weights as Partial<HfWeightSource>).checkBlock?.(plan.weights.map((w) => w.name));
    const made = createMoeBlockExecutor(rt, plan, weights, { formats });
    made.catch(() => executors.delete(layer)); // a failed load can be retried
    executors.set(layer, made);
    return made;
  };

  return {
    adapter: rt.info,
    async runMoeBlock(layer, hiddenStates, tokens) {
      const hidden = data.config.hidden;
      if (!Number.isInteger(tokens) || tokens < 1) throw new ModelError(`runMoeBlock: tokens must be a positive whole number, got ${tokens}`);
      if (!(hiddenStates instanceof Float32Array) || hiddenStates.length !== tokens * hidden) {
        const got = hiddenStates instanceof Float32Array ? `${hiddenStates.length} values` : 'not a Float32Array';
        throw new ModelError(`runMoeBlock: hiddenStates must be a Float32Array of tokens * hidden = ${tokens} * ${hidden} values, got ${got}`);
      }
      return (await executor(layer)).run(hiddenStates, tokens);
    },
    async prepare(layer) {
      await executor(layer);
    },
    async dispatchCount(layer, tokens) {
      return (await executor(layer)).dispatchCount(tokens);
    },
    async poisonScratch(layer, tokens) {
      (await executor(layer)).poisonScratch(tokens);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const made of executors.values()) made.then((e) => e.destroy(), () => undefined);
      executors.clear();
      rt.destroy();
    },
  };
}
