// `moec run <spec> --weights DIR --prompt-ids 1,2,3 | --prompt "text" [--chat] --max-tokens N`: the
// whole decoder on WebGPU from a Hugging Face checkpoint, generating with the GPU sampler; streams
// the ids (or, from text, the text through the checkpoint's tokenizer, stopping at its eos ids),
// then prints time to first token, prefill and decode tokens/s (or one JSON object with --json).
import { join } from 'node:path';
import { compileModel } from '../model-plan.js';
import type { ModelConfig } from '../../ir/model-config.js';
import type { Registry } from '../plugins/registry.js';
import { openDevice } from '../../runtime/device.js';
import { createModelExecutor } from '../../runtime/model-executor.js';
import { generateTokens, type GenerateOptions } from '../../runtime/generate.js';
import type { LoadOptions, Model } from '../../runtime/bundle.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { isPackedDir, packedFilesInDir } from '../../runtime/node/packed-dir.js';
import { CheckpointError } from '../../runtime/node/checkpoint-dir.js';
import type { TextTokenizer } from '../../runtime/text.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { samplingSteps } from '../../runtime/plan.js';
import { renderSampleKernels, sampleDispatchCount, type SamplingChoice } from '../../codegen/kernels/sample/sample.js';
import { UsageError, writeFileAtomic } from './command.js';
import { loadCheckpointTokenizer, tokenizerErrorInFile } from './checkpoint-tokenizer.js';

export interface GenerationFlags {
  weights: string;
  /** Exactly one of promptIds and prompt. */
  promptIds: string | undefined;
  prompt: string | undefined;
  /** Wrap prompt as one user message in the tokenizer's chat template. */
  chat: boolean;
  maxTokens: string | undefined;
  temperature: string | undefined;
  topK: string | undefined;
  topP: string | undefined;
  seed: string | undefined;
  json: boolean;
  logitsOut: string | undefined;
  defaultLimits: boolean;
}

const numberFlag = (name: string, text: string | undefined, fallback: number, ok: (n: number) => boolean, what: string): number => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!ok(n)) throw new UsageError(`--${name} must be ${what}, got ${text}`);
  return n;
};

function parsePromptIds(text: string, vocab: number): number[] {
  const ids = text.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (ids.length === 0) throw new UsageError('--prompt-ids needs at least one id, e.g. --prompt-ids 1,2,3');
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new UsageError(`--prompt-ids: id ${i} is ${String(text.split(',')[i]).trim()}, outside the vocabulary 0..${vocab - 1}`);
  });
  return ids;
}

/**
 * --prompt through the checkpoint's tokenizer (with --chat, as one user message in its chat
 * template); a tokenizer file missing, malformed or without what is asked of it is an error naming it.
 */
async function encodeTextPrompt(dir: string, flags: GenerationFlags, vocab: number): Promise<{ tokenizer: TextTokenizer; prompt: number[] }> {
  const tokenizer = await loadCheckpointTokenizer(dir);
  let prompt: number[];
  try {
    prompt = flags.chat ? tokenizer.encodeChat([{ role: 'user', content: flags.prompt! }]) : tokenizer.encode(flags.prompt!);
  } catch (e) {
    throw await tokenizerErrorInFile(dir, e);
  }
  if (prompt.length === 0) throw new UsageError('--prompt encodes to no tokens; give some text');
  const outside = prompt.find((id) => id >= vocab);
  if (outside !== undefined) {
    throw new CheckpointError(`${join(dir, 'tokenizer.json')}: the prompt encodes to id ${outside}, outside the model's vocabulary 0..${vocab - 1}; the tokenizer does not match the spec`);
  }
  return { tokenizer, prompt };
}

/** What generates: a spec compiled in memory, or a bundle's model.js. */
export interface GenerationTarget {
  name: string;
  vocab: number;
  context: number;
  open(weightsDir: string, defaultLimits: boolean): Promise<GenerationSession>;
}

export interface GenerationSession {
  /** Logits [ids.length, vocab] of `ids` in a fresh session. */
  forward(ids: number[]): Promise<Float32Array>;
  generate(ids: number[], options: GenerateOptions): AsyncIterable<number>;
  /** GPU dispatches per generated token with these sampling options (the sampler skips its phases that are off). */
  dispatchesPerToken(sampling: SamplingChoice): number;
  adapter: string;
  close(): void;
}

/** A spec: the whole model compiled here, run by a ModelExecutor. */
export function specGeneration(config: ModelConfig, registry: Registry | undefined): GenerationTarget {
  return {
    name: config.name,
    vocab: config.vocab,
    context: config.compile.context,
    async open(weightsDir, defaultLimits) {
      const { plan } = compileModel(config, { registry });
      const { weights } = openHfCheckpoint(weightsDir);
      weights.checkWeights(plan.weights.filter((w) => w.name !== plan.rope?.weight));
      const rt = await openDevice({ gpu: createNodeGpu(), defaultLimits, label: config.name });
      try {
        const executor = await createModelExecutor(rt, plan, weights, registry ? { formats: Object.values(registry.formats) } : {});
        return {
          async forward(ids) {
            executor.reset();
            return executor.forward(ids);
          },
          generate: (ids, options) => generateTokens(executor, ids, options),
          dispatchesPerToken: (sampling) => executor.dispatchCount(1) + (plan.sampler ? samplingSteps(plan.sampler, sampling).length : 0),
          adapter: rt.info.description,
          close() {
            executor.destroy();
            rt.destroy();
          },
        };
      } catch (e) {
        rt.destroy();
        throw e;
      }
    },
  };
}

/** A compiled bundle: its load(), forward() and generate(). */
export function bundleGeneration(model: { name: string; vocab: number; context: number; dispatchesPerToken: number }, load: (options: LoadOptions) => Promise<Model>): GenerationTarget {
  return {
    ...model,
    async open(weightsDir, defaultLimits) {
      // A packed directory (`moec pack`) goes to load() as files: it opens them for the bundle's plan and verifies each shard.
      const weights = isPackedDir(weightsDir) ? packedFilesInDir(weightsDir) : openHfCheckpoint(weightsDir).weights;
      const loaded = await load({ gpu: createNodeGpu(), weights, defaultLimits });
      return {
        async forward(ids) {
          loaded.reset();
          return loaded.forward(ids);
        },
        generate: (ids, options) => loaded.generate(ids, options),
        // The manifest counts the sampler's every dispatch; those off for these options are not run.
        dispatchesPerToken: (sampling) => model.dispatchesPerToken - renderSampleKernels({ vocab: model.vocab }).dispatches.length + sampleDispatchCount(model.vocab, sampling),
        adapter: loaded.adapter.description,
        close: () => loaded.dispose(),
      };
    },
  };
}

export async function runGeneration(target: GenerationTarget, flags: GenerationFlags): Promise<number> {
  if (flags.prompt !== undefined && flags.promptIds !== undefined) throw new UsageError('--prompt and --prompt-ids are mutually exclusive: give text or ids');
  if (flags.chat && flags.prompt === undefined) throw new UsageError('--chat wraps --prompt "text" in the chat template: it needs --prompt');
  const { tokenizer, prompt } = flags.prompt !== undefined
    ? await encodeTextPrompt(flags.weights, flags, target.vocab) : { tokenizer: undefined, prompt: parsePromptIds(flags.promptIds!, target.vocab) };
  const maxTokens = numberFlag('max-tokens', flags.maxTokens, 32, (n) => Number.isInteger(n) && n >= 0, 'a whole number');
  const sampling = {
    temperature: numberFlag('temperature', flags.temperature, 0, (n) => n >= 0, 'a number >= 0 (0 = greedy)'),
    topK: numberFlag('top-k', flags.topK, 0, (n) => Number.isInteger(n) && n >= 0, 'a whole number (0 = off)'),
    topP: numberFlag('top-p', flags.topP, 1, (n) => n > 0 && n <= 1, 'in (0, 1] (1 = off)'),
    seed: numberFlag('seed', flags.seed, 0, (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'a u32'),
  };
  if (prompt.length + Math.max(0, maxTokens - 1) > target.context) {
    throw new UsageError(`a prompt of ${prompt.length} tokens and ${maxTokens} new ones need ${prompt.length + maxTokens - 1} positions; the model's context is ${target.context} (compile { context = N })`);
  }
  const session = await target.open(flags.weights, flags.defaultLimits);
  try {
    if (flags.logitsOut) {
      const logits = await session.forward(prompt);
      writeFileAtomic(flags.logitsOut, encodeSafetensors({ logits: { dtype: 'F32', shape: [prompt.length, target.vocab], data: logits } }));
    }
    const tokens: number[] = [];
    const start = performance.now();
    let firstAt = start;
    async function* timed(ids: AsyncIterable<number>): AsyncGenerator<number> {
      for await (const id of ids) {
        if (tokens.length === 0) firstAt = performance.now();
        tokens.push(id);
        yield id;
      }
    }
    const generated = timed(session.generate(prompt, { maxTokens, ...sampling, ...(tokenizer ? { stop: tokenizer.eosIds.filter((id) => id < target.vocab) } : {}) }));
    if (tokenizer && !flags.json) {
      const { streamText } = await import('../../runtime/text.js');
      for await (const piece of streamText(tokenizer, generated, { skipSpecial: true })) process.stdout.write(piece);
    } else {
      for await (const id of generated) if (!flags.json) process.stdout.write(`${tokens.length > 1 ? ' ' : ''}${id}`);
    }
    const end = performance.now();
    const figures = {
      ...(tokenizer ? { promptIds: prompt } : {}),
      tokens,
      ...(tokenizer ? { text: tokenizer.decode(tokens, { skipSpecial: true }) } : {}),
      timeToFirstTokenMs: firstAt - start,
      prefillTokensPerSecond: prompt.length / ((firstAt - start) / 1000),
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / ((end - firstAt) / 1000) : 0,
      dispatchesPerToken: session.dispatchesPerToken(sampling),
      adapter: session.adapter,
    };
    if (flags.json) process.stdout.write(JSON.stringify(figures) + '\n');
    else {
      process.stdout.write('\n');
      process.stderr.write(
        `time to first token ${figures.timeToFirstTokenMs.toFixed(1)} ms, prefill ${figures.prefillTokensPerSecond.toFixed(1)} tokens/s, ` +
          `decode ${figures.decodeTokensPerSecond.toFixed(1)} tokens/s, ${figures.dispatchesPerToken} dispatches per decoded token (${session.adapter})\n`,
      );
    }
    return 0;
  } finally {
    session.close();
  }
}
