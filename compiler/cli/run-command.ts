import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { packageRoot } from '../../codegen/bundle/package-info.js';
import { dequantizeParam, expertFormatsOf, quantTargetOf, weightFormatOf } from '../../ir/storage-format.js';
import { interpretModule } from '../../ir/interpret/interpret.js';
import { moeLayerIndices, type ModelConfig } from '../../ir/model-config.js';
import type { LoadOptions, Model } from '../../runtime/bundle.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import type { WeightSource } from '../../runtime/plan.js';
import { describeFormat } from '../../runtime/quant/weight-format.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { compileMoeBlockGraph, compileReferenceModule } from '../pipeline.js';
import { loadSpec, pluginHelp, pluginOption, UsageError, writeFileAtomic, type Command } from './command.js';
import { withExpertFormats } from './compile-command.js';
import { PluginError, type Registry } from '../plugins/registry.js';
import { loadPlugins } from '../plugins/load-plugins.js';
import { roundingReport } from './rounding-report.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { bundleGeneration, runGeneration, specGeneration, type GenerationTarget } from './run-generation.js';

/**
 * Errors whose message says what and where (file and tensor, or the device limit): printed as one
 * line, exit status 1. Matched by name, since a bundle's model.js has its own copies of the classes.
 */
const REPORTED_ERRORS = new Set(['CheckpointError', 'SafetensorsError', 'HfWeightsError', 'ModelError', 'BundlePlanError', 'GpuError', 'RunInputError', 'WeightCodecError', 'PackedWeightsError']);

class RunInputError extends Error {
  override readonly name = 'RunInputError';
}

/** What `run` executes: a spec compiled in memory, or a compiled bundle's model.js. */
interface Runnable {
  config: ModelConfig;
  /** A spec's plugins (a bundle carries what it needs of them compiled in). */
  registry?: Registry;
  moeLayers: number[];
  load(options: LoadOptions): Promise<Model>;
}

export const runCommand: Command = {
  name: 'run',
  summary: 'generate tokens with the whole model, or run one MoE block, on WebGPU with weights from a Hugging Face checkpoint',
  usage: 'moec run <spec.moe> --weights <checkpoint-dir> (--prompt-ids 1,2,3 | --prompt "text" [--chat]) [--max-tokens N] [--temperature T --top-k K --top-p P --seed S] [--json] [--logits-out F]\n' +
    '       moec run <spec.moe|bundle-dir> --weights <checkpoint-dir> --layer N --input in.safetensors --output out.safetensors [--check]',
  help: [
    'With --prompt-ids or --prompt: the whole decoder of a spec (compiled in memory) on WebGPU generates --max-tokens',
    '(default 32) ids, sampled on the GPU (greedy by default); prints them (or their text) as they come, then time',
    'to first token, prefill and decode tokens/s and dispatches per decoded token.',
    '  --prompt-ids LIST   comma-separated token ids',
    '  --prompt TEXT       text, encoded with the checkpoint\'s tokenizer.json (+ tokenizer_config.json); the text',
    '                      generated streams to stdout, and generation stops at the tokenizer\'s end-of-sequence ids',
    '                      (tokenizer_config.json eos_token, generation_config.json eos_token_id)',
    '  --chat              --prompt as one user message in the chat template (tokenizer_config.json chat_template',
    '                      or chat_template.jinja), with the assistant\'s turn opened',
    '  --temperature T     0 (default) = greedy; --top-k K (0 = off), --top-p P (1 = off), --seed S (u32)',
    '  --json              one JSON object on stdout: tokens, timeToFirstTokenMs, prefillTokensPerSecond,',
    '                      decodeTokensPerSecond, dispatchesPerToken, adapter; with --prompt also promptIds and text',
    '  --logits-out FILE   safetensors with `logits` [prompt length, vocab] F32 of every prompt position',
    '',
    'With --layer: runs MoE layer N of a spec (compiled in memory) or of a bundle written by `moec compile`.',
    'Options:',
    '  --weights DIR      Hugging Face checkpoint: config.json (model_type) and model.safetensors or shards + index',
    '                     (generating with a bundle: also a `moec pack` directory packed for it)',
    '  --layer N          the MoE layer to run',
    '  --input FILE       safetensors holding `hidden_states` [tokens, hidden] (F32, F16, BF16 or F64)',
    '  --output FILE      safetensors to write `hidden_states` (the block\'s output, F32) to, atomically',
    '  --check            also run the CPU reference interpreter and print the relative error (L2); exit',
    '                     status 1 (and no output written) when it exceeds --tolerance or an output is not',
    '                     finite (scratch and output buffers are filled with NaN first, so an unwritten',
    '                     element shows; a batch larger than one run holds runs in pieces, and only the first',
    '                     piece starts from NaN). Quantized weights reach the reference dequantized, as the GPU decodes them',
    '  --tolerance X      default 1e-4 (f32 kernels) or 1e-2 (f16 kernels)',
    '  --default-limits   request WebGPU\'s default limits only',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: {
        weights: { type: 'string' }, layer: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' },
        check: { type: 'boolean' }, tolerance: { type: 'string' }, 'default-limits': { type: 'boolean' }, ...pluginOption,
        'prompt-ids': { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' },
        'top-p': { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, 'logits-out': { type: 'string' },
        prompt: { type: 'string' }, chat: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new UsageError('run takes one spec or bundle directory');
    if (values['prompt-ids'] !== undefined || values.prompt !== undefined || values.chat) return generate(positionals[0]!, values);
    for (const flag of ['weights', 'layer', 'input', 'output'] as const) {
      if (values[flag] === undefined) throw new UsageError(`run needs --${flag}`);
    }
    const layer = Number(values.layer);
    if (!Number.isInteger(layer) || layer < 0) throw new UsageError(`--layer must be a layer index, got ${values.layer}`);
    const tolerance = values.tolerance === undefined ? undefined : Number(values.tolerance);
    if (tolerance !== undefined && !(tolerance > 0)) throw new UsageError(`--tolerance must be a positive number, got ${values.tolerance}`);

    const target = positionals[0]!;
    const runnable = isDirectory(target) ? await importBundle(target, values.plugin ?? []) : await compileSpec(target, layer, values.plugin ?? [], values.weights!);
    if (!runnable) return 1;
    const { config } = runnable;
    if (layer >= config.layers || !runnable.moeLayers.includes(layer)) {
      const moe = runnable.moeLayers.join(', ') || 'none';
      throw new UsageError(`--layer ${layer}: ${config.name} has no MoE block in layer ${layer} (MoE layers: ${moe})`);
    }

    let model: Model | undefined;
    try {
      const { weights } = openCheckpoint(values.weights!, config, layer, runnable.registry);
      const { hidden, tokens } = readHiddenStates(values.input!, config.hidden);
      await useSoftwareVulkanIfNeeded();
      const { createNodeGpu } = await import('../../runtime/node/dawn.js'); // the native addon loads only when a run needs it
      model = await runnable.load({ gpu: createNodeGpu(), weights, defaultLimits: values['default-limits'] ?? false });
      if (values.check) await model.poisonScratch(layer, tokens); // an element the run leaves unwritten stays NaN
      const output = await model.runMoeBlock(layer, hidden, tokens);
      const rounded = await roundingReport(config, layer, hidden, tokens, weights, runnable.registry);
      if (rounded) process.stdout.write(`${rounded}\n`);
      if (values.check) {
        const bad = output.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) {
          const [t, h] = [Math.floor(bad / config.hidden), bad % config.hidden];
          const input = hidden.subarray(t * config.hidden, (t + 1) * config.hidden).every(Number.isFinite) ? 'finite' : 'not finite either';
          process.stderr.write(`moec run: layer ${layer}: the GPU output is not finite: hidden_states[${t}, ${h}] = ${output[bad]} ` +
            `(that token's input is ${input}); ${values.output} not written\n`);
          return 1;
        }
        const { error, quantized } = await compareWithReference(config, layer, hidden, tokens, weights, output, runnable.registry);
        const limit = tolerance ?? (config.compile.dtype === 'f16' ? 1e-2 : 1e-4);
        if (quantized.length) {
          process.stdout.write(`CPU reference used the quantized weights (${quantized.join(', ')}), dequantized exactly as the GPU decodes them\n`);
        }
        process.stdout.write(`relative error vs CPU reference: ${error.toExponential(1)}\n`);
        if (!(error <= limit)) {
          process.stderr.write(`moec run: layer ${layer}: the GPU output differs from the CPU reference (relative error ` +
            `${error.toExponential(1)} > tolerance ${limit}); ${values.output} not written\n`);
          return 1;
        }
      }
      writeFileAtomic(values.output!, encodeSafetensors(
        { hidden_states: { dtype: 'F32', shape: [tokens, config.hidden], data: output } },
        { format: 'pt', producer: 'moec run', model: config.name, layer: String(layer) },
      ));
      process.stdout.write(`${values.output}: hidden_states [${tokens}, ${config.hidden}] (layer ${layer} of ${config.name} on ${describeAdapter(model)})\n`);
      return 0;
    } catch (e) {
      if (e instanceof Error && REPORTED_ERRORS.has(e.name)) {
        process.stderr.write(`moec run: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
        return 1;
      }
      throw e;
    } finally {
      model?.destroy();
    }
  },
};

/** --prompt-ids or --prompt: the whole decoder of a spec generates; errors a user can cause are one line, exit 1. */
async function generate(target: string, values: Record<string, string | boolean | string[] | undefined>): Promise<number> {
  if (values['weights'] === undefined) throw new UsageError('run needs --weights');
  const plugins = (values['plugin'] as string[] | undefined) ?? [];
  let source: GenerationTarget;
  if (isDirectory(target)) {
    const bundle = await importBundle(target, plugins);
    const manifest = JSON.parse(readFileSync(join(target, 'manifest.json'), 'utf8')) as { wholeModel?: { available: boolean; dispatchesPerToken?: number; context?: number; vocab?: number; reason?: string } };
    const whole = manifest.wholeModel;
    if (!whole?.available) throw new UsageError(`${target}: the bundle holds MoE blocks only${whole?.reason ? ` (${whole.reason})` : ''}; run a layer with --layer`);
    source = bundleGeneration({ name: bundle.config.name, vocab: whole.vocab!, context: whole.context!, dispatchesPerToken: whole.dispatchesPerToken! }, bundle.load);
  } else {
    const loaded = await loadSpec(target, plugins);
    const config = loaded.config && (await withExpertFormats(loaded.config, target, values['weights'] as string, loaded.registry, 'run', stderrReport));
    if (!config) return 1;
    source = specGeneration(config, loaded.registry);
  }
  const text = (name: string) => values[name] as string | undefined;
  try {
    await useSoftwareVulkanIfNeeded();
    return await runGeneration(source, {
      weights: text('weights')!, promptIds: text('prompt-ids'), prompt: text('prompt'), chat: values['chat'] === true,
      maxTokens: text('max-tokens'), temperature: text('temperature'), topK: text('top-k'), topP: text('top-p'), seed: text('seed'),
      json: values['json'] === true, logitsOut: text('logits-out'), defaultLimits: values['default-limits'] === true,
    });
  } catch (e) {
    if (e instanceof Error && REPORTED_ERRORS.has(e.name)) {
      process.stderr.write(`moec run: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 1;
    }
    throw e;
  }
}

/** The mixed-precision report of `moec run` goes to stderr: stdout carries the tokens (or --json). */
const stderrReport = (text: string) => void process.stderr.write(text);

function isDirectory(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

function describeAdapter(model: Model): string {
  const { vendor, architecture, description } = model.adapter;
  return [vendor, architecture].filter(Boolean).join(' ') || description || 'WebGPU';
}

/** Compiles the one layer that runs; the plan goes through the same runtime code as a bundle's. */
async function compileSpec(path: string, layer: number, plugins: readonly string[], weightsDir: string): Promise<Runnable | undefined> {
  const loaded = await loadSpec(path, plugins);
  const { source, registry } = loaded;
  const config = loaded.config && (await withExpertFormats(loaded.config, path, weightsDir, registry, 'run', stderrReport));
  if (!config) return undefined;
  return {
    config,
    registry,
    moeLayers: moeLayerIndices(config),
    async load(options) {
      const [{ compileBundleData }, { loadModel }] = await Promise.all([
        import('../compile-bundle.js'), import('../../runtime/bundle.js')]);
      let data;
      try {
        data = compileBundleData(config, source, [layer], { registry }).data;
      } catch (e) {
        throw new RunInputError(`${path}: layer ${layer}: cannot compile: ${(e as Error).message}`);
      }
      return loadModel(data, options, Object.values(registry.formats)); // a plugin's formats, as model.js carries them
    },
  };
}

/** A bundle runs without its plugins (it carries their kernels and codecs); checking its weights against the spec's kinds needs them again: --plugin. */
async function importBundle(dir: string, plugins: readonly string[]): Promise<Runnable> {
  const modelJs = join(dir, 'model.js');
  if (!existsSync(modelJs)) throw new UsageError(`${dir}: not a bundle (no model.js); compile one with \`moec compile <spec> -o ${dir}\``);
  const bundle = (await import(pathToFileURL(resolve(modelJs)).href)) as Partial<Runnable>;
  if (typeof bundle.load !== 'function' || !bundle.config || !Array.isArray(bundle.moeLayers)) {
    throw new UsageError(`${modelJs}: does not export config, moeLayers and load(); recompile it with \`moec compile\``);
  }
  try {
    return { ...(bundle as Runnable), registry: await loadPlugins(plugins.map((path) => ({ path }))) };
  } catch (e) {
    if (e instanceof PluginError) throw new UsageError(e.message);
    throw e;
  }
}

/** The block's reference graph; a bundle compiled with plugin kinds needs those plugins (--plugin) to build it. */
function blockGraph(config: ModelConfig, layer: number, registry?: Registry): ReturnType<typeof compileMoeBlockGraph> {
  try {
    return compileMoeBlockGraph(config, layer, { registry });
  } catch (e) {
    const plugins = config.compile.plugins ?? [];
    if (plugins.length === 0 || registry?.plugins.length) throw e;
    throw new RunInputError(`${config.name} was compiled with plugins (${plugins.join(', ')}): pass them with --plugin to check its weights (${(e as Error).message})`);
  }
}

/** Opens the checkpoint and checks the sizes that shapes alone would not catch (top_k) or would report late. */
function openCheckpoint(dir: string, config: ModelConfig, layer: number, registry?: Registry): { weights: WeightSource } {
  const opened = openHfCheckpoint(dir);
  const hf = opened.checkpoint.config;
  const where = join(dir, 'config.json');
  opened.weights.checkBlock(blockGraph(config, layer, registry).params.map((p) => p.name)); // before the GPU starts
  const expect = (fields: string[], value: number | undefined, what: string): void => {
    const field = fields.find((f) => typeof hf[f] === 'number');
    if (field === undefined || value === undefined || hf[field] === value) return;
    throw new RunInputError(`${where}: ${field} = ${String(hf[field])}, but ${config.name} has ${what} = ${value}; the checkpoint does not match the spec`);
  };
  expect(['hidden_size'], config.hidden, 'hidden');
  expect(['num_local_experts', 'num_experts', 'n_routed_experts'], config.moe?.experts, 'experts');
  expect(['num_experts_per_tok', 'experts_per_token'], config.moe?.topK, 'top_k');
  return { weights: opened.weights };
}

/** `hidden_states` [tokens, hidden] (or [1, tokens, hidden]) from a safetensors file, as f32. */
function readHiddenStates(path: string, hidden: number): { hidden: Float32Array; tokens: number } {
  let bytes: Uint8Array;
  try {
    const buffer = readFileSync(path);
    bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength); // Buffer#slice would not copy
  } catch (e) {
    throw new RunInputError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const file = parseSafetensors(bytes, path);
  const info = file.tensors.get('hidden_states');
  if (!info) {
    const names = [...file.tensors.keys()];
    throw new RunInputError(`${path}: tensor "hidden_states" not found (the file has ${names.length ? names.join(', ') : 'no tensors'})`);
  }
  const shape = info.shape[0] === 1 && info.shape.length === 3 ? info.shape.slice(1) : info.shape;
  if (shape.length !== 2 || shape[1] !== hidden || shape[0] === 0) {
    throw new RunInputError(`${path}: tensor "hidden_states" has shape [${info.shape.join(', ')}], expected [tokens, ${hidden}] (the model's hidden size is ${hidden})`);
  }
  return { hidden: readTensorF32(file, 'hidden_states'), tokens: shape[0]! };
}

/**
 * Runs the CPU reference interpreter on the same inputs and weights, each quantized weight
 * dequantized to the values the GPU decodes; returns ||gpu - cpu|| / ||cpu|| and the quantized
 * targets (e.g. `experts int4(group = 32)`).
 */
async function compareWithReference(config: ModelConfig, layer: number, hidden: Float32Array, tokens: number,
  weights: WeightSource, output: Float32Array, registry?: Registry): Promise<{ error: number; quantized: string[] }> {
  // Through round-tokens: with token_rounding = sonic the reference rounds the prefill path too.
  const reference = compileReferenceModule(config, layer, { registry });
  const graph = reference.functions[0]!;
  const values = new Map<string, Float32Array>();
  const quantized = new Set<string>();
  for (const p of graph.params) {
    const shape = p.type.shape as number[];
    values.set(p.name, dequantizeParam(p, await weights.readF32(p.name, shape), registry?.formats));
    for (const format of expertFormatsOf(p, registry?.formats) ?? [weightFormatOf(p, registry?.formats)]) {
      if (format.format !== 'f32') quantized.add(`${quantTargetOf(p)} ${describeFormat(format)}`);
    }
  }
  const outputs = interpretModule(reference, { hidden_states: { shape: [tokens, config.hidden], data: hidden } }, (p) => values.get(p.name)!, registry?.semantics);
  return { error: relativeError(output, Object.values(outputs)[0]!.data as Float32Array), quantized: [...quantized] };
}

/** Dawn needs a Vulkan driver; without a GPU point it at lavapipe, as the test setup does. */
export async function useSoftwareVulkanIfNeeded(): Promise<void> {
  const script = join(packageRoot(), 'scripts', 'vulkan-env.mjs');
  if (!existsSync(script)) return;
  const { vulkanIcdEnv } = (await import(pathToFileURL(script).href)) as { vulkanIcdEnv(): Record<string, string> };
  Object.assign(process.env, vulkanIcdEnv());
}
