// The bundle as a model: `moec compile` a tiny spec, import its model.js, load a whole-model
// random Hugging Face checkpoint, and check forward() logits against the reference interpreter
// (weights read from the same checkpoint), generate() greedy tokens against ReferenceSession.greedy,
// seeded sampling against the reference sampler and itself, and that bad input is a ModelError
// before anything runs. A checkpoint of MoE blocks only still loads for runMoeBlock; a spec
// without a whole-model plan (dtype = f16) makes a bundle of MoE blocks that says so.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Graph } from '../../ir/graph.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { sampleToken } from '../../ir/interpret/sampling.js';
import type { LoadOptions, Model } from '../../runtime/bundle.js';
import type { GenerateOptions } from '../../runtime/generate.js';
import { readHfWeights } from '../../runtime/hf-weights.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { checkpointReader, openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import type { WeightSource } from '../../runtime/plan.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';
import { tinyTokenizerFiles } from '../fixtures/make-tokenizer.js';
import { loadTextTokenizer } from '../../runtime/text.js';
import { moec } from './cli.js';

/** What a test needs of a bundle's model.js. */
interface BundleModule {
  load(options: LoadOptions): Promise<Model>;
  ModelError: new (message: string) => Error;
}

const SIZES: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 2, firstDense: 1 };
const CONTEXT = 64;
const PROMPT = [5, 17, 3, 42, 8];

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-model-api-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A spec with a small context, its bundle, a whole-model checkpoint, and the reference's weights read from it. */
async function setup(family: Family) {
  const spec = join(work, `${family}.moe`);
  writeFileSync(spec, specText(family, SIZES).replace('  dtype = f32\n', `  dtype = f32\n  context = ${CONTEXT}\n`));
  const bundleDir = join(work, `${family}-bundle`);
  const compiled = await moec(['compile', spec, '-o', bundleDir]);
  expect(compiled.stderr).toBe('');
  expect(compiled.status).toBe(0);
  const checkpoint = join(work, `${family}-checkpoint`);
  writeRandomCheckpoint(checkpoint, family, SIZES, { seed: 7, wholeModel: true });
  const graph = buildModelGraph(checkSpec(readFileSync(spec, 'utf8'), spec).config!);
  const dir = CheckpointDir.open(checkpoint);
  const values = await readHfWeights(family, checkpointReader(dir), graph.params.map((p) => ({ name: p.name, shape: p.type.shape as number[] })), { config: dir.config });
  const bundle = (await import(pathToFileURL(join(bundleDir, 'model.js')).href)) as BundleModule;
  return { bundleDir, checkpoint, graph, values, bundle };
}

const reference = (graph: Graph, values: Map<string, Float32Array>) => new ReferenceSession(graph, (p) => values.get(p.name)!);

async function collect(tokens: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const id of tokens) out.push(id);
  return out;
}

describe.each(['mixtral', 'deepseek_v3'] as Family[])('a compiled bundle as a model (%s)', (family) => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  let model: Model;
  beforeAll(async () => {
    ctx = await setup(family);
    model = await ctx.bundle.load({ gpu: createNodeGpu(), weights: openHfCheckpoint(ctx.checkpoint).weights });
  });
  afterAll(() => model?.dispose());

  it('forward(): the interpreter\'s logits, the session continuing between calls; reset() starts anew', async () => {
    expect([model.vocab, model.context, model.length]).toEqual([64, CONTEXT, 0]);
    const session = reference(ctx.graph, ctx.values);
    for (const ids of [PROMPT, [9], Int32Array.of(60, 2)]) {
      const got = await model.forward(ids);
      const want = session.forward(ids).data;
      expect(got).toHaveLength(ids.length * 64);
      console.log(`${family}: forward of ${ids.length} at ${model.length - ids.length}: relative error ${relativeError(got, want).toExponential(2)}`);
      expect(relativeError(got, want)).toBeLessThan(1e-4);
    }
    expect(model.length).toBe(PROMPT.length + 3);
    model.reset();
    const again = await model.forward(PROMPT);
    expect(model.length).toBe(PROMPT.length);
    expect(relativeError(again, reference(ctx.graph, ctx.values).forward(PROMPT).data)).toBeLessThan(1e-4);
  });

  it('generate() greedy: the interpreter\'s tokens, in a fresh session each call', async () => {
    const want = reference(ctx.graph, ctx.values).greedy(PROMPT, 12);
    expect(await collect(model.generate(PROMPT, { maxTokens: 12 }))).toEqual(want);
    expect(await collect(model.generate(Int32Array.from(PROMPT), { maxTokens: 12, temperature: 0 }))).toEqual(want);
    // stop: the id is yielded, then the generation ends.
    expect(await collect(model.generate(PROMPT, { maxTokens: 12, stop: [want[3]!] }))).toEqual(want.slice(0, want.indexOf(want[3]!) + 1));
  });

  it('generate() sampled with a seed: the same tokens twice, the reference sampler\'s on the interpreter\'s logits', async () => {
    const options = { maxTokens: 12, temperature: 0.8, topK: 20, topP: 0.95, seed: 42 };
    const first = await collect(model.generate(PROMPT, options));
    expect(await collect(model.generate(PROMPT, options))).toEqual(first);
    const session = reference(ctx.graph, ctx.values);
    const want: number[] = [];
    let logits = session.forward(PROMPT);
    for (let step = 0; step < 12; step++) {
      want.push(sampleToken(Float32Array.from(logits.data.subarray((logits.shape[0]! - 1) * 64)), { ...options, step }));
      logits = session.forward([want.at(-1)!]);
    }
    expect(first).toEqual(want);
    const other = await collect(model.generate(PROMPT, { ...options, seed: 43 }));
    console.log(`${family}: seed 42 ${first.join(' ')}; seed 43 ${other.join(' ')}`);
  });
});

describe('bad input is a ModelError before anything runs', () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  let model: Model;
  beforeAll(async () => {
    ctx = await setup('qwen3_moe');
    model = await ctx.bundle.load({ gpu: createNodeGpu(), weights: openHfCheckpoint(ctx.checkpoint).weights });
  });
  afterAll(() => model?.dispose());

  it('forward(): ids outside the vocabulary, not whole numbers, not an array; a session past the context', async () => {
    const { ModelError } = ctx.bundle;
    await expect(model.forward([1, 64])).rejects.toThrow(new ModelError('forward: ids[1] is 64, outside the vocabulary 0..63'));
    await expect(model.forward([-1])).rejects.toThrow(/forward: ids\[0\] is -1, outside the vocabulary 0\.\.63/);
    await expect(model.forward([2, 1.5])).rejects.toThrow(/forward: ids\[1\] is 1\.5, not a token id \(a whole number\)/);
    await expect(model.forward('1,2' as unknown as number[])).rejects.toThrow(/forward: ids must be an array of token ids or an Int32Array, got string/);
    await expect(model.forward([1, 64])).rejects.toBeInstanceOf(ModelError);
    expect(model.length).toBe(0); // nothing ran
    await model.forward(Array.from({ length: 60 }, (_, i) => i));
    await expect(model.forward([1, 2, 3, 4, 5])).rejects.toThrow(
      /forward: tiny-qwen3-moe: the session holds 60 positions, and 5 more would pass the context of 64 the model was compiled for \(compile \{ context = N \}\); reset\(\) starts a new session/);
    expect(model.length).toBe(60);
    model.reset();
    expect((await model.forward([1, 2, 3, 4, 5])).length).toBe(5 * 64);
  });

  it('generate(): the prompt, a prompt plus maxTokens past the context, options that are not whole numbers or unknown', () => {
    const { ModelError } = ctx.bundle;
    const bad = (prompt: number[], options: unknown) => () => model.generate(prompt, options as GenerateOptions);
    expect(bad([3, 99], { maxTokens: 4 })).toThrow(new ModelError('generate: prompt[1] is 99, outside the vocabulary 0..63'));
    expect(bad([], { maxTokens: 4 })).toThrow(/generate: the prompt is empty/);
    expect(bad(PROMPT, { maxTokens: 61 })).toThrow(new ModelError('generate: tiny-qwen3-moe: a prompt of 5 tokens plus 61 generated needs 65 positions, ' +
      'more than the context of 64 the model was compiled for (compile { context = N })'));
    expect(bad(PROMPT, { maxTokens: 2.5 })).toThrow(new ModelError('generate: maxTokens must be a whole number >= 0, got 2.5'));
    expect(bad(PROMPT, {})).toThrow(/generate: maxTokens must be a whole number >= 0, got undefined/);
    expect(bad(PROMPT, { maxTokens: '8' })).toThrow(/generate: maxTokens must be a whole number >= 0, got "8"/);
    expect(bad(PROMPT, { maxTokens: 4, topK: 1.5 })).toThrow(new ModelError('generate: topK must be a whole number >= 0 (0 = off), got 1.5'));
    expect(bad(PROMPT, { maxTokens: 4, seed: -1 })).toThrow(new ModelError('generate: seed must be a whole number in [0, 2^32), got -1'));
    expect(bad(PROMPT, { maxTokens: 4, seed: 2 ** 32 })).toThrow(/generate: seed must be a whole number in \[0, 2\^32\)/);
    expect(bad(PROMPT, { maxTokens: 4, temperature: -0.5 })).toThrow(/generate: temperature must be a number >= 0 \(0 = greedy\), got -0\.5/);
    expect(bad(PROMPT, { maxTokens: 4, topP: 1.5 })).toThrow(/generate: topP must be a number in \[0, 1\] \(1 = off\), got 1\.5/);
    expect(bad(PROMPT, { maxTokens: 4, stop: [64] })).toThrow(/generate: stop\[0\] is 64, outside the vocabulary 0\.\.63/);
    expect(bad(PROMPT, { max_tokens: 4 })).toThrow(/generate: unknown option "max_tokens" \(options: maxTokens, temperature, topK, topP, seed, stop\)/);
    expect(bad(PROMPT, undefined)).toThrow(/generate: options must be an object such as \{ maxTokens: 32 \}/);
    expect(() => model.generate(PROMPT, { maxTokens: 60 })).not.toThrow(); // 64 positions: exactly the context
  });

  it('a later forward() ends a generation that is still being read', async () => {
    const tokens = model.generate(PROMPT, { maxTokens: 8 });
    expect((await tokens.next()).done).toBe(false);
    await model.forward([1]);
    await expect(tokens.next()).rejects.toThrow(/a later forward\(\), generate\(\) or reset\(\) replaced this generation's session/);
  });
});

describe('the checkpoint is checked at load, before anything is uploaded', () => {
  it('one that lacks the decoder\'s weights still loads for runMoeBlock; forward and generate say what it lacks', async () => {
    const ctx = await setup('qwen3_moe');
    const moeOnly = join(work, 'moe-only');
    writeRandomCheckpoint(moeOnly, 'qwen3_moe', SIZES, { seed: 8 });
    const { weights } = openHfCheckpoint(moeOnly);
    const reads: string[] = [];
    const counted: WeightSource = { ...weights, readF32: (name, shape, rows) => (reads.push(name), weights.readF32(name, shape, rows)) };
    const model = await ctx.bundle.load({ gpu: createNodeGpu(), weights: counted });
    try {
      expect(reads).toEqual([]);
      await expect(model.forward(PROMPT)).rejects.toThrow(/forward: tiny-qwen3-moe: the checkpoint cannot run the whole model \(its MoE blocks may still run\): .*embed_tokens/);
      expect(() => model.generate(PROMPT, { maxTokens: 2 })).toThrow(/generate: tiny-qwen3-moe: the checkpoint cannot run the whole model/);
      expect(reads).toEqual([]);
      const out = await model.runMoeBlock(1, new Float32Array(2 * SIZES.hidden).fill(0.25), 2);
      expect(out.every(Number.isFinite)).toBe(true);
    } finally {
      model.dispose();
    }
  });
});

describe('a spec without a whole-model plan (compile dtype = f16)', () => {
  it('compiles to a bundle of MoE blocks whose manifest and README say so', async () => {
    const spec = join(work, 'f16.moe');
    writeFileSync(spec, specText('qwen3_moe', SIZES).replace('  dtype = f32\n', '  dtype = f16\n'));
    const out = join(work, 'f16-bundle');
    const result = await moec(['compile', spec, '-o', out]);
    expect([result.status, result.stderr]).toEqual([0, '']);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.wholeModel).toEqual({ available: false, reason: expect.stringContaining('compile { dtype = f16 } runs MoE blocks only') });
    expect(manifest.plans.map((p: { layer: number }) => p.layer)).toEqual([0, 1]);
    expect(manifest.kernels.every((k: { model: boolean }) => !k.model)).toBe(true);
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    expect(readme).toMatch(/This bundle holds the MoE blocks only: the whole model could not be compiled \(.*dtype = f16.*\)/);
    expect(readme).not.toContain('## Generating tokens');
  });
});

describe('generateText(): text in, text out with the checkpoint\'s tokenizer', () => {
  it('streams the decoded greedy tokens of the encoded prompt or chat, stopping at the tokenizer\'s eos', async () => {
    const ctx = await setup('mixtral');
    const files = tinyTokenizerFiles();
    const tokenizer = loadTextTokenizer(files);
    const model = await ctx.bundle.load({ gpu: createNodeGpu(), weights: openHfCheckpoint(ctx.checkpoint).weights, tokenizer: files });
    try {
      for (const input of ['the cat sat on the mat', [{ role: 'user', content: 'is the cat on the mat?' }]] as const) {
        const ids = typeof input === 'string' ? tokenizer.encode(input) : tokenizer.encodeChat(input);
        const expected: number[] = [];
        for (const id of reference(ctx.graph, ctx.values).greedy(ids, 12)) {
          expected.push(id);
          if (tokenizer.eosIds.includes(id)) break;
        }
        const pieces: string[] = [];
        for await (const piece of model.generateText(input, { maxTokens: 12 })) pieces.push(piece);
        expect(pieces.join('')).toBe(tokenizer.decode(expected, { skipSpecial: true }));
      }
    } finally {
      model.dispose();
    }
    const bare = await ctx.bundle.load({ gpu: createNodeGpu(), weights: openHfCheckpoint(ctx.checkpoint).weights });
    try {
      await expect(collect(bare.generateText('the cat', { maxTokens: 2 }) as unknown as AsyncIterable<number>)).rejects.toThrow(/generateText: .*no tokenizer: pass load\(\{ tokenizer \}\)/);
    } finally {
      bare.dispose();
    }
  });
});
