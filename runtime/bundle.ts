/// <reference types="@webgpu/types" />
// What a compiled bundle (model.js) runs: the model's data (config, the whole decoder's plan, one
// plan per MoE layer, the deduplicated WGSL kernels) and `load`, which opens a device, checks the
// checkpoint against the decoder's weights, and builds the decoder's executor on the first
// forward/generate and each MoE layer's on its first run. Browser-safe; in Node the caller passes
// `gpu` from the `webgpu` package.
import { inflateModelPlan, inflatePlan, type StoredModelPlan } from './bundle-plans.js';
import type { ChatMessage, TextTokenizer, TextTokenizerFiles } from './text.js';
import { openDevice, requireFeatures, type AdapterSummary, type GpuRuntime } from './device.js';
import { generateTokens, type GenerateOptions } from './generate.js';
import { fetchHfCheckpoint, hfWeightsFromSafetensors, hfWeightsFromUrl, type FetchCheckpointOptions, type SafetensorsBytes } from './hf-checkpoint.js';
import { hfWeightSource, type HfWeightSource } from './hf-weights.js';
import { createModelExecutor, type ModelExecutor } from './model-executor.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from './moe-executor.js';
import { detectPackedFiles, isPackedFiles, openPackedWeights, packedFilesAtUrl, type PackedFiles } from './packed/packed-weights.js';
import type { ModelPlan, MoeBlockPlan, WeightSource } from './plan.js';
import { builtinFormats } from './quant/builtin-formats.js';
import { withFormats, type FormatDefinition } from './quant/weight-format.js';
import { checkSamplingOptions } from './sampling-options.js';
import { HfWeightsError } from './tensor-reader.js';
import { chooseAtFirstLoad, type FirstLoadChoice, type LoadTuningReport } from './tuning/first-load.js';
import type { LoadCandidates } from './tuning/load-candidates.js';
import { pickTuned, type TunedVariantHeader } from './tuning/pick-tuned.js';
import type { TuneStore } from './tuning/tune-store.js';

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
  /** The whole decoder's plan, in the stored form of bundle-plans.ts; absent when the spec could not compile one. */
  model?: StoredModelPlan;
  /** Why the bundle has no whole-model plan (the compiler's message). */
  modelUnavailable?: string;
  /** Where the default plans' tiles came from (the compiler's target.source). */
  tuningSource?: string;
  /** Plans compiled with `moec compile --tuning`, one set per tuned adapter; load picks the one matching its adapter. */
  tuned?: TunedPlans[];
  /** Plan sets `load({ tune: 'first-load' })` times on the user's adapter (`moec compile --load-candidates N`). */
  loadCandidates?: LoadCandidates;
}

/** One adapter's plans (same stored form as the defaults; kernels in BundleData.kernels). */
export interface TunedPlans extends TunedVariantHeader {
  key: string;
  /** What the tuning chose, for people (`Model.tuning`). */
  source: string;
  plans: Record<string, unknown>;
  planTemplates: unknown[];
  model?: StoredModelPlan;
}

/** A checkpoint's safetensors files in memory, with its config.json's model_type. */
export interface HfSafetensorsWeights {
  modelType: string;
  files: SafetensorsBytes[];
}

export interface LoadOptions {
  /** The GPU: in Node, `create([])` from the `webgpu` package (keep it referenced); default navigator.gpu. */
  gpu?: GPU;
  /**
   * The weights: a WeightSource, safetensors bytes, the URL of a Hugging Face checkpoint directory
   * or of a packed directory (`moec pack`, told apart by its manifest.json) to fetch, or a packed
   * directory's files (PackedFiles; in Node, runtime/node/packed-dir.ts packedFilesInDir). A packed
   * directory must have been packed for this bundle's whole-model plan, and each shard's sha256 is
   * checked when the decoder first reads it (first forward, generate or prepare).
   */
  weights: WeightSource | HfSafetensorsWeights | PackedFiles | string | URL;
  /** How a checkpoint URL is read (Range requests): the fetch to use, a warning callback, the largest request. */
  fetchOptions?: FetchCheckpointOptions;
  /** Request WebGPU's default limits only, as the smallest devices have. */
  defaultLimits?: boolean;
  /**
   * The checkpoint's tokenizer for generateText (tokenizer.json and friends, parsed). Default: read
   * next to a checkpoint URL on the first generateText call.
   */
  tokenizer?: TextTokenizerFiles;
  /**
   * 'first-load': choose among the bundle's load-time candidate plans (`moec compile --load-candidates`)
   * on this adapter: the choice an earlier load stored in `tuneStore` if there is one (nothing is
   * timed), else each candidate timed now on random weights within `tuneBudgetMs` and the choice
   * stored. A bundle without candidates warns and runs its defaults. Default: no tuning.
   */
  tune?: 'first-load';
  /** Wall-clock milliseconds load-time tuning may take (default 5000). */
  tuneBudgetMs?: number;
  /** Where load-time tuning keeps its choice: default IndexedDB where there is one; in Node, nodeTuneStore() from moec/node-tune-store (runtime/node/tune-file-store.ts). */
  tuneStore?: TuneStore;
  /** Told what load-time tuning could not do (no store, a damaged record); default console.warn. */
  onWarning?: (message: string) => void;
}

export interface Model<Layer extends number = number> {
  /** The adapter the model runs on. */
  readonly adapter: AdapterSummary;
  /** Where the kernels' tiles come from: the bundle's tuning for this adapter, load-time tuning, or the defaults. */
  readonly tuning: string;
  /** With load({ tune: 'first-load' }): what was chosen, whether measured now or read from the store, and what was discarded and why. */
  readonly loadTuning?: LoadTuningReport;
  /** Token ids run from 0 to vocab - 1. */
  readonly vocab: number;
  /** Positions one session holds, prompt and generated tokens together (compile { context = N }). */
  readonly context: number;
  /** Positions already in the current session: where the next forward() starts. */
  readonly length: number;
  /**
   * The logits [ids.length, vocab] (row-major) of `ids` run at the session's next positions; their
   * keys and values join the session's KV cache, so the next call continues after them. An id
   * outside the vocabulary or a session past the context is a ModelError, and nothing runs.
   */
  forward(ids: readonly number[] | Int32Array): Promise<Float32Array>;
  /** Starts a new, empty session (after the calls already made). */
  reset(): void;
  /**
   * Up to `maxTokens` ids generated after `prompt` in a fresh session, each sampled on the GPU
   * (greedy at temperature 0; top-k, top-p; the same seed gives the same tokens in Node and in
   * browsers), stopping after an id of `stop`. The prompt and options are checked when called
   * (ModelError); a later forward(), generate() or reset() ends the generation.
   */
  generate(prompt: readonly number[] | Int32Array, options: GenerateOptions): AsyncIterableIterator<number>;
  /**
   * generate() from text: `input` encoded with the checkpoint's tokenizer (chat messages through its
   * chat template), stopping at its end-of-sequence ids too, streamed back as text pieces that never
   * split a character. Needs load({ tokenizer }) or a checkpoint URL that has tokenizer.json.
   */
  generateText(input: string | readonly ChatMessage[], options: GenerateOptions): AsyncIterableIterator<string>;
  /** MoE layer `layer` on `tokens` rows of hidden states [tokens, hidden] (row-major f32); returns the block's output, same shape. */
  runMoeBlock(layer: Layer, hiddenStates: Float32Array, tokens: number): Promise<Float32Array>;
  /**
   * Reads a layer's weights and builds its pipelines now rather than on its first run; without a
   * layer, the whole decoder's (what the first forward() or generate() would do).
   */
  prepare(layer?: Layer): Promise<void>;
  /** GPU dispatches one run of `layer` makes for `tokens` tokens. */
  dispatchCount(layer: Layer, tokens: number): Promise<number>;
  /** For checks: fills `layer`'s scratch and output buffers with NaN, so an element the next run leaves unwritten shows. */
  poisonScratch(layer: Layer, tokens: number): Promise<void>;
  /** Frees the device and every buffer. */
  destroy(): void;
  /** The same as destroy(). */
  dispose(): void;
}

export class ModelError extends Error {
  override readonly name = 'ModelError';
}

function isWeightSource(w: LoadOptions['weights']): w is WeightSource {
  return typeof w === 'object' && w !== null && typeof (w as WeightSource).readF32 === 'function';
}

/**
 * `wholeModel`: the decoder's weights will be checked at load, which needs every shard's header
 * (a few small Range requests); otherwise a shard's header is read when a MoE layer first needs it.
 */
async function hfWeightsAt(weights: string | URL, fetchOptions: FetchCheckpointOptions | undefined, wholeModel: boolean): Promise<WeightSource> {
  if (!wholeModel) return hfWeightsFromUrl(weights, fetchOptions);
  const { modelType, config, url, reader } = await fetchHfCheckpoint(weights, fetchOptions);
  await reader.fetchHeaders();
  try {
    return hfWeightSource(modelType, reader, { config });
  } catch (e) {
    if (e instanceof HfWeightsError) throw new HfWeightsError(`${new URL('config.json', url)}: ${e.message}`);
    throw e;
  }
}

/** A packed directory opened for the whole-model plan (refused, naming the pack, when it was packed for another). */
function openPacked(files: PackedFiles, data: BundleData, modelPlan: ModelPlan | undefined): Promise<WeightSource> {
  if (!modelPlan) {
    throw new ModelError(`load: ${files.location} is a packed directory (\`moec pack\`), which holds the whole model's weight buffers, but this bundle ` +
      `holds MoE blocks only (${data.modelUnavailable ?? 'no whole-model plan was compiled'}); load it from the Hugging Face checkpoint instead`);
  }
  return openPackedWeights(files, modelPlan);
}

async function resolveWeights(weights: LoadOptions['weights'], fetchOptions: FetchCheckpointOptions | undefined, data: BundleData,
  modelPlan: ModelPlan | undefined): Promise<WeightSource> {
  if (typeof weights === 'string' || weights instanceof URL) {
    try {
      return await hfWeightsAt(weights, fetchOptions, modelPlan !== undefined);
    } catch (e) {
      // No checkpoint there (no config.json): a packed directory, if a manifest.json says so.
      const packed = e instanceof HfWeightsError ? await detectPackedFiles(packedFilesAtUrl(weights, fetchOptions?.fetch)) : undefined;
      if (!packed) throw e;
      return openPacked(packed, data, modelPlan);
    }
  }
  if (isWeightSource(weights)) return weights;
  if (isPackedFiles(weights)) return openPacked(weights, data, modelPlan);
  if (typeof weights === 'object' && weights !== null && Array.isArray((weights as HfSafetensorsWeights).files)) {
    return hfWeightsFromSafetensors((weights as HfSafetensorsWeights).modelType, (weights as HfSafetensorsWeights).files);
  }
  throw new ModelError('load: `weights` must be a WeightSource, { modelType, files }, a packed directory\'s files or a checkpoint (or packed directory) URL');
}

const describeValue = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? 'an array' : String(v));

/** `ids` as checked token ids: an array or Int32Array of whole numbers in [0, vocab). */
function checkTokenIds(what: string, ids: unknown, vocab: number): number[] {
  if (!Array.isArray(ids) && !(ids instanceof Int32Array)) {
    throw new ModelError(`${what} must be an array of token ids or an Int32Array, got ${ids === null ? 'null' : typeof ids}`);
  }
  return Array.from(ids as ArrayLike<unknown>, (id, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id)) throw new ModelError(`${what}[${i}] is ${describeValue(id)}, not a token id (a whole number)`);
    if (id < 0 || id >= vocab) throw new ModelError(`${what}[${i}] is ${id}, outside the vocabulary 0..${vocab - 1}`);
    return id;
  });
}

const GENERATE_OPTIONS = ['maxTokens', 'temperature', 'topK', 'topP', 'seed', 'stop'] as const;

/** generate()'s options, each checked with a message naming it; generateTokens' own checks back them up. */
function checkGenerateOptions(options: unknown, vocab: number): GenerateOptions {
  if (typeof options !== 'object' || options === null) throw new ModelError('generate: options must be an object such as { maxTokens: 32 }');
  const o = options as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !(GENERATE_OPTIONS as readonly string[]).includes(k));
  if (unknown.length) throw new ModelError(`generate: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (options: ${GENERATE_OPTIONS.join(', ')})`);
  const check = (name: string, ok: (v: number) => boolean, what: string, required = false): void => {
    const v = o[name];
    if (v === undefined && !required) return;
    if (typeof v !== 'number' || !ok(v)) throw new ModelError(`generate: ${name} must be ${what}, got ${describeValue(v)}`);
  };
  check('maxTokens', (v) => Number.isInteger(v) && v >= 0, 'a whole number >= 0', true);
  check('temperature', (v) => Number.isFinite(v) && v >= 0, 'a number >= 0 (0 = greedy)');
  check('topK', (v) => Number.isInteger(v) && v >= 0, 'a whole number >= 0 (0 = off)');
  check('topP', (v) => v >= 0 && v <= 1, 'a number in [0, 1] (1 = off)');
  check('seed', (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, 'a whole number in [0, 2^32)');
  const stop = o['stop'] === undefined ? undefined : checkTokenIds('generate: stop', o['stop'], vocab);
  const checked: GenerateOptions = { ...(o as unknown as GenerateOptions), ...(stop ? { stop } : {}) };
  try {
    checkSamplingOptions({ temperature: checked.temperature ?? 0, topK: checked.topK ?? 0, topP: checked.topP ?? 1, seed: checked.seed ?? 0, step: 0 });
  } catch (e) {
    throw new ModelError(`generate: ${(e as Error).message}`);
  }
  return checked;
}

/** load()'s tuning options checked; the budget in milliseconds. */
function checkTuneOptions(options: LoadOptions): number {
  if (options.tune !== undefined && options.tune !== 'first-load') throw new ModelError(`load: tune must be 'first-load' (or left out), got ${describeValue(options.tune)}`);
  const budget = options.tuneBudgetMs ?? 5000;
  if (typeof budget !== 'number' || !Number.isFinite(budget) || budget < 0) throw new ModelError(`load: tuneBudgetMs must be a number of milliseconds >= 0, got ${describeValue(budget)}`);
  const store = options.tuneStore as Partial<TuneStore> | undefined;
  if (store !== undefined && (typeof store?.get !== 'function' || typeof store.put !== 'function' || typeof store.where !== 'function')) {
    throw new ModelError('load: tuneStore must be a TuneStore ({ location, where(key), get(key, warn), put(key, record) }), such as nodeTuneStore() in Node');
  }
  return budget;
}

/**
 * Opens a device and returns the model. The checkpoint is checked against the whole decoder's
 * weights before anything is uploaded: a checkpoint that cannot run it (say, one holding only MoE
 * blocks) still loads for runMoeBlock, and forward/generate then refuse with what it lacks. The
 * decoder is set up on the first forward/generate (or prepare()), each MoE layer on its first run.
 * `formats`: weight formats besides the builtin ones, the plugins' codecs model.js was compiled with.
 */
export async function loadModel(data: BundleData, options: LoadOptions, formats: readonly FormatDefinition[] = []): Promise<Model> {
  const name = data.config.name;
  try {
    withFormats(builtinFormats, formats);
  } catch (e) {
    throw new ModelError(`load: ${(e as Error).message}`);
  }
  if (typeof GPUBufferUsage === 'undefined' && options.gpu) {
    throw new ModelError("load: WebGPU's globals (GPUBufferUsage, ...) are missing; in Node run " +
      "`Object.assign(globalThis, globals)` with `globals` from the 'webgpu' package first");
  }
  const tuneBudgetMs = checkTuneOptions(options);
  let modelPlan: ModelPlan | undefined = data.model ? inflateModelPlan(data.model, data.kernels) : undefined;
  const weights = await resolveWeights(options.weights, options.fetchOptions, data, modelPlan);
  // Why forward/generate cannot run, found before anything is uploaded (the rope table is computed, not read).
  let decoderRefusal = modelPlan ? undefined
    : `this bundle holds MoE blocks only (no whole-model plan: ${data.modelUnavailable ?? 'none was compiled'}); runMoeBlock runs, forward and generate do not`;
  if (modelPlan && typeof (weights as Partial<HfWeightSource>).checkWeights === 'function') {
    try {
      const rope = modelPlan.rope?.weight;
      (weights as HfWeightSource).checkWeights(modelPlan.weights.filter((w) => w.name !== rope));
    } catch (e) {
      // By name: a source made by another copy of the runtime (moec's, in Node) throws its own class.
      if (!(e instanceof Error) || e.name !== 'HfWeightsError') throw e;
      decoderRefusal = `the checkpoint cannot run the whole model (its MoE blocks may still run): ${e.message}`;
    }
  }
  const rt: GpuRuntime = await openDevice({ gpu: options.gpu, defaultLimits: options.defaultLimits ?? false, label: name });
  try {
    requireFeatures(rt, name, data.features); // up front, not at a layer's first run
  } catch (e) {
    rt.destroy();
    throw new ModelError((e as Error).message);
  }
  // Tuned plans for this adapter, if the bundle has them: the same weights, other tiles and bounds.
  const tuned = pickTuned(data.tuned, rt);
  let firstLoad: FirstLoadChoice | undefined;
  if (options.tune === 'first-load') {
    const warn = options.onWarning ?? ((message: string) => console.warn(message));
    try {
      firstLoad = await chooseAtFirstLoad(data, rt, { budgetMs: tuneBudgetMs, warn, ...(options.tuneStore ? { store: options.tuneStore } : {}), ...(tuned ? { offlineTuned: tuned.source } : {}) });
    } catch (e) {
      rt.destroy();
      throw e;
    }
  }
  const plansOf = tuned ?? firstLoad?.set ?? data;
  const storedModel = tuned?.model ?? firstLoad?.set?.model;
  if (storedModel) modelPlan = inflateModelPlan(storedModel, data.kernels);
  const executors = new Map<number, Promise<MoeBlockExecutor>>();
  const plans = new Map<number, MoeBlockPlan>();
  let destroyed = false;

  const executor = (layer: number): Promise<MoeBlockExecutor> => {
    if (destroyed) throw new ModelError(`${name}: the model was destroyed`);
    if (!data.moeLayers.includes(layer)) {
      throw new ModelError(`${name}: layer ${layer} is not a MoE layer (MoE layers: ${data.moeLayers.join(', ') || 'none'})`);
    }
    const existing = executors.get(layer);
    if (existing) return existing;
    let plan = plans.get(layer);
    if (!plan) plans.set(layer, (plan = inflatePlan(plansOf.plans[String(layer)], layer, plansOf.planTemplates, data.kernels)));
    (weights as Partial<HfWeightSource>).checkBlock?.(plan.weights.map((w) => w.name));
    const made = createMoeBlockExecutor(rt, plan, weights, { formats });
    made.catch(() => executors.delete(layer)); // a failed load can be retried
    executors.set(layer, made);
    return made;
  };

  // The decoder: one executor, its calls one after another (they share the KV caches and the readback buffers).
  let decoder: Promise<ModelExecutor> | undefined;
  let decoderReady: ModelExecutor | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work);
    queue = run.catch(() => undefined);
    return run;
  };
  /** The decoder's plan, or a ModelError saying why `what` cannot run. */
  const decoderPlan = (what: string): ModelPlan => {
    if (destroyed) throw new ModelError(`${what}: ${name}: the model was destroyed`);
    if (!modelPlan || decoderRefusal) throw new ModelError(`${what}: ${name}: ${decoderRefusal}`);
    return modelPlan;
  };
  const decoderExecutor = (): Promise<ModelExecutor> => {
    if (!decoder) {
      decoder = createModelExecutor(rt, modelPlan!, weights, { formats });
      decoder.then((e) => (decoderReady = e), () => (decoder = undefined)); // a failed load can be retried
    }
    return decoder;
  };
  // Bumped by every forward, generate and reset: a generation whose session was replaced stops.
  let session = 0;
  const vocab = modelPlan?.vocab ?? Number(data.config['vocab']);
  const context = modelPlan?.context ?? Number((data.config.compile as Record<string, unknown>)['context']);

  async function* generation(mine: number, prompt: number[], options: GenerateOptions): AsyncGenerator<number> {
    const tokens = generateTokens(await inTurn(decoderExecutor), prompt, options);
    try {
      for (;;) {
        if (mine !== session) throw new ModelError(`generate: ${name}: a later forward(), generate() or reset() replaced this generation's session`);
        const step = await inTurn(() => tokens.next());
        if (step.done) return;
        yield step.value;
      }
    } finally {
      await tokens.return(undefined);
    }
  }

  // The tokenizer, read once on first use (the tokenizer libraries load only then).
  let tokenizer: Promise<TextTokenizer> | undefined;
  const tokenizerOf = (): Promise<TextTokenizer> => {
    tokenizer ??= (async () => {
      const text = await import('./bundle-text.js');
      const url = typeof options.weights === 'string' || options.weights instanceof URL ? options.weights : undefined;
      if (!options.tokenizer && !url) throw new ModelError(`generateText: ${name}: no tokenizer: pass load({ tokenizer }) (the checkpoint's tokenizer.json, parsed) or load the weights from a checkpoint URL`);
      try {
        return text.loadTextTokenizer(options.tokenizer ?? (await text.fetchTokenizerFiles(url!, options.fetchOptions?.fetch)));
      } catch (e) {
        throw e instanceof Error && e.name === 'TokenizerError' ? new ModelError(`generateText: ${name}: ${e.message}`) : e;
      }
    })();
    tokenizer.catch(() => (tokenizer = undefined)); // a failed read can be retried
    return tokenizer;
  };

  async function* textGeneration(input: string | readonly ChatMessage[], options: GenerateOptions): AsyncGenerator<string> {
    const [text, tok] = await Promise.all([import('./bundle-text.js'), tokenizerOf()]);
    const ids = text.encodePrompt(tok, input);
    const tokens = model.generate(ids, { ...options, stop: [...(options.stop ?? []), ...tok.eosIds.filter((id) => id < vocab)] });
    yield* text.streamText(tok, tokens, { skipSpecial: true });
  }

  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    for (const made of executors.values()) made.then((e) => e.destroy(), () => undefined);
    executors.clear();
    decoder?.then((e) => e.destroy(), () => undefined);
    rt.destroy();
  };

  const model: Model = {
    adapter: rt.info,
    tuning: tuned ? tuned.source : firstLoad && firstLoad.report.from !== 'none' ? firstLoad.tuning : (data.tuningSource ?? 'defaults'),
    ...(firstLoad ? { loadTuning: firstLoad.report } : {}),
    vocab,
    context,
    get length() {
      return decoderReady?.length ?? 0;
    },
    forward(ids) {
      try {
        const plan = decoderPlan('forward');
        const tokens = checkTokenIds('forward: ids', ids, plan.vocab);
        session++;
        return inTurn(async () => {
          const executor = await decoderExecutor();
          if (executor.length + tokens.length > plan.context) {
            throw new ModelError(`forward: ${name}: the session holds ${executor.length} positions, and ${tokens.length} more would pass the context of ` +
              `${plan.context} the model was compiled for (compile { context = N }); reset() starts a new session`);
          }
          return tokens.length === 0 ? new Float32Array(0) : executor.forward(tokens);
        });
      } catch (e) {
        return Promise.reject(e as Error);
      }
    },
    reset() {
      if (destroyed) return;
      session++;
      void inTurn(async () => decoderReady?.reset());
    },
    generate(prompt, options) {
      const plan = decoderPlan('generate');
      const ids = checkTokenIds('generate: prompt', prompt, plan.vocab);
      if (ids.length === 0) throw new ModelError('generate: the prompt is empty: generation needs at least one token');
      const checked = checkGenerateOptions(options, plan.vocab);
      const positions = ids.length + Math.max(0, checked.maxTokens - 1);
      if (positions > plan.context) {
        throw new ModelError(`generate: ${name}: a prompt of ${ids.length} tokens plus ${checked.maxTokens} generated needs ${positions} positions, more than ` +
          `the context of ${plan.context} the model was compiled for (compile { context = N })`);
      }
      return generation(++session, ids, checked);
    },
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
      if (layer !== undefined) await executor(layer);
      else {
        decoderPlan('prepare');
        await inTurn(decoderExecutor);
      }
    },
    async dispatchCount(layer, tokens) {
      return (await executor(layer)).dispatchCount(tokens);
    },
    async poisonScratch(layer, tokens) {
      (await executor(layer)).poisonScratch(tokens);
    },
    generateText: (input, options) => textGeneration(input, options),
    destroy,
    dispose: destroy,
  };
  return model;
}
