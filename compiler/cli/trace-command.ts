// `moec trace <spec> --weights DIR --prompt-ids 1,2,3 [...] -o trace.json`: runs the whole model on
// WebGPU with its routing counted on the GPU (compileModel's traceRouting: a u32 state of counters
// per MoE layer, passes/trace-routing.ts) and writes the routing trace `moec place` reads (format
// version 1, README "Routing traces and expert placement"). Each prompt is a fresh sequence (the
// executor's reset() zeroes caches and counters alike), so the counters are read back after each
// prompt and summed here; nothing but them (and one sampled id per generated token) is read back.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { moeLayerIndices, type ModelConfig } from '../../ir/model-config.js';
import { traceCounterCount } from '../../ir/ops-trace.js';
import { traceStateName } from '../../passes/trace-routing.js';
import { openDevice } from '../../runtime/device.js';
import { generateTokens } from '../../runtime/generate.js';
import { createModelExecutor } from '../../runtime/model-executor.js';
import { CheckpointError } from '../../runtime/node/checkpoint-dir.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { compileModel } from '../model-plan.js';
import type { RoutingTrace } from '../placement/placement.js';
import { compactJson } from '../placement/placement-report.js';
import type { Registry } from '../plugins/registry.js';
import { withMostPreciseChoice } from '../mixed-precision/apply-mixed-precision.js';
import { loadSpec, pluginHelp, pluginOption, UsageError, writeFileAtomic, type Command } from './command.js';
import { loadCheckpointTokenizer } from './checkpoint-tokenizer.js';
import { useSoftwareVulkanIfNeeded } from './run-command.js';

/** Errors whose message names the file (checkpoint, tokenizer) or the device limit: one line, exit 1. */
const REPORTED_ERRORS = new Set(['CheckpointError', 'SafetensorsError', 'HfWeightsError', 'GpuError']);

export const traceCommand: Command = {
  name: 'trace',
  summary: 'record the routing of the whole model on WebGPU (tokens per expert, transitions between MoE layers) for moec place',
  usage: 'moec trace <spec.moe> --weights <checkpoint-dir> (--prompt-ids 1,2,3 | --prompt "text")... [--max-tokens N] -o trace.json [--format moec|sglang]',
  help: [
    'Runs each prompt through the whole decoder of a spec (compiled in memory with the trace-routing pass) on',
    'WebGPU and writes trace.json: {"version": 1, "model", "tokens", "layers": [{"layer", "counts", "transitions"}]},',
    'per MoE layer the tokens that chose each expert and, for all k x k pairs of a token\'s choices, the transitions',
    'to the next MoE layer (the last has none). Counting happens on the GPU from the router\'s ids; each prompt is a',
    'fresh sequence and the counts of all prompts add up. See the README, "Routing traces and expert placement".',
    'Options:',
    '  --weights DIR           Hugging Face checkpoint: config.json and model.safetensors or shards + index',
    '  --prompt-ids LIST       comma-separated token ids; repeat for more prompts',
    '  --prompt TEXT           text, encoded with the checkpoint\'s tokenizer.json (+ tokenizer_config.json); repeatable',
    '  --max-tokens N          also generate N tokens (greedy) after each prompt and trace them (default 0)',
    '  -o, --output FILE       write the trace (atomically)',
    '  --format F              moec (default), or sglang: the trace plus "logical_count" (tokens per expert, one row',
    '                          per model layer, dense layers zero), the key SGLang\'s --init-expert-location reads',
    '  --default-limits        request WebGPU\'s default limits only',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: {
        weights: { type: 'string' }, 'prompt-ids': { type: 'string', multiple: true }, prompt: { type: 'string', multiple: true },
        'max-tokens': { type: 'string' }, output: { type: 'string', short: 'o' }, format: { type: 'string' }, 'default-limits': { type: 'boolean' }, ...pluginOption,
      },
    });
    if (positionals.length !== 1) throw new UsageError('trace takes one spec');
    const target = positionals[0]!;
    if (existsSync(target) && statSync(target).isDirectory()) throw new UsageError(`${target}: trace runs a spec; bundles hold single MoE blocks for now`);
    if (values.weights === undefined) throw new UsageError('trace needs --weights DIR, a Hugging Face checkpoint');
    const idPrompts = values['prompt-ids'] ?? [];
    const textPrompts = values.prompt ?? [];
    if (idPrompts.length + textPrompts.length === 0) throw new UsageError('trace needs a prompt: --prompt-ids 1,2,3 or --prompt "text" (repeatable)');
    if (values.output === undefined) throw new UsageError('trace needs -o trace.json');
    const format = values.format ?? 'moec';
    if (format !== 'moec' && format !== 'sglang') throw new UsageError(`--format must be moec or sglang, got ${values.format}`);
    const maxTokens = values['max-tokens'] === undefined ? 0 : Number(values['max-tokens']);
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) throw new UsageError(`--max-tokens must be a whole number, got ${values['max-tokens']}`);

    const loaded = await loadSpec(target, values.plugin);
    if (!loaded.config) return 1;
    const { registry } = loaded;
    // The trace decides a mixed-precision spec's formats: until it exists, its experts run in the most precise choice.
    const config = withMostPreciseChoice(loaded.config, registry.kinds);
    if (!config.moe) {
      process.stderr.write(`moec trace: ${target}: the spec has no moe block, so there is no routing to trace\n`);
      return 1;
    }
    try {
      const prompts = idPrompts.map((text, i) => parsePromptIds(text, config.vocab, idPrompts.length > 1 ? ` (prompt ${i + 1})` : ''));
      if (textPrompts.length) prompts.push(...(await encodeTextPrompts(textPrompts, values.weights, config.vocab)));
      for (const [i, prompt] of prompts.entries()) {
        const positions = prompt.length + Math.max(0, maxTokens - 1);
        if (positions > config.compile.context) {
          throw new UsageError(`prompt ${i + 1} of ${prompt.length} tokens and ${maxTokens} new ones need ${positions} positions; the spec's context is ${config.compile.context} (compile { context = N })`);
        }
      }
      await useSoftwareVulkanIfNeeded();
      const trace = await traceRouting(config, registry, { weights: values.weights, prompts, maxTokens, defaultLimits: values['default-limits'] ?? false });
      const document = format === 'sglang' ? { ...trace, logical_count: sglangLogicalCount(trace, config.layers) } : trace;
      writeFileAtomic(values.output, compactJson(document));
      process.stdout.write(`${values.output}: ${trace.tokens} tokens over ${prompts.length} prompt${prompts.length === 1 ? '' : 's'}, ${trace.layers.length} MoE layers of ${config.moe.experts} experts (top ${config.moe.topK})\n`);
      return 0;
    } catch (e) {
      if (e instanceof Error && REPORTED_ERRORS.has(e.name)) {
        process.stderr.write(`moec trace: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
        return 1;
      }
      throw e;
    }
  },
};

interface TraceRun {
  weights: string;
  prompts: number[][];
  maxTokens: number;
  defaultLimits: boolean;
}

/** Runs every prompt (and maxTokens greedy tokens after it) and sums each MoE layer's counters over them. */
async function traceRouting(config: ModelConfig, registry: Registry, run: TraceRun): Promise<RoutingTrace> {
  const { plan } = compileModel(config, { registry, traceRouting: true });
  const { weights } = openHfCheckpoint(run.weights);
  weights.checkWeights(plan.weights.filter((w) => w.name !== plan.rope?.weight));
  const moeLayers = moeLayerIndices(config);
  const experts = config.moe!.experts;
  const totals = moeLayers.map((_, i) => new Array<number>(traceCounterCount(experts, i + 1 < moeLayers.length ? experts : 0)).fill(0));
  let tokens = 0;
  const { createNodeGpu } = await import('../../runtime/node/dawn.js'); // the native addon loads only when a run needs it
  const rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: run.defaultLimits, label: config.name });
  try {
    const executor = await createModelExecutor(rt, plan, weights, { formats: Object.values(registry.formats) });
    for (const prompt of run.prompts) {
      let generated = 0;
      if (run.maxTokens === 0) {
        executor.reset();
        await executor.next(prompt, { temperature: 0, topK: 0, topP: 1, seed: 0, step: 0 });
      } else {
        for await (const _ of generateTokens(executor, prompt, { maxTokens: run.maxTokens })) generated++;
      }
      // The last generated id is sampled, never run through the model.
      tokens += prompt.length + Math.max(0, generated - 1);
      for (const [i, layer] of moeLayers.entries()) {
        const counters = await executor.readState(traceStateName(layer));
        counters.forEach((n, j) => (totals[i]![j]! += n));
      }
    }
    executor.destroy();
  } finally {
    rt.destroy();
  }
  return routingTraceOf(config.name, tokens, moeLayers, experts, totals);
}

/** A trace from each MoE layer's counters (counts[E], then transitions[E, E] row-major; the last layer's counts only). */
export function routingTraceOf(model: string, tokens: number, moeLayers: readonly number[], experts: number, counters: readonly (readonly number[])[]): RoutingTrace {
  return {
    version: 1,
    model,
    tokens,
    layers: moeLayers.map((layer, i) => {
      const c = counters[i]!;
      const transitions = Array.from({ length: c.length > experts ? experts : 0 }, (_, row) => c.slice(experts + row * experts, experts + (row + 1) * experts));
      return { layer, counts: c.slice(0, experts), transitions };
    }),
  };
}

/** SGLang's logical_count: tokens per expert, one row per model layer (its num_hidden_layers), dense layers all zero. */
export function sglangLogicalCount(trace: RoutingTrace, modelLayers: number): number[][] {
  const experts = trace.layers[0]!.counts.length;
  return Array.from({ length: modelLayers }, (_, layer) => [...(trace.layers.find((l) => l.layer === layer)?.counts ?? new Array<number>(experts).fill(0))]);
}

function parsePromptIds(text: string, vocab: number, which: string): number[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`--prompt-ids${which} needs at least one id, e.g. --prompt-ids 1,2,3`);
  return parts.map((part, i) => {
    const id = Number(part);
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new UsageError(`--prompt-ids${which}: id ${i} is ${part}, outside the vocabulary 0..${vocab - 1}`);
    return id;
  });
}

/** --prompt texts through the checkpoint's tokenizer; a missing or bad tokenizer file is an error naming it. */
async function encodeTextPrompts(texts: readonly string[], dir: string, vocab: number): Promise<number[][]> {
  const tokenizer = await loadCheckpointTokenizer(dir);
  return texts.map((text, i) => {
    const ids = tokenizer.encode(text);
    if (ids.length === 0) throw new UsageError(`--prompt ${i + 1} encodes to no tokens; give some text`);
    const outside = ids.find((id) => id >= vocab);
    if (outside !== undefined) throw new CheckpointError(`${join(dir, 'tokenizer.json')}: --prompt ${i + 1} encodes to id ${outside}, outside the model's vocabulary 0..${vocab - 1}; the tokenizer does not match the spec`);
    return ids;
  });
}

