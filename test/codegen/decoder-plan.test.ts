// The whole decoder on WebGPU against the reference interpreter, for every family's tiny example:
// a prompt's logits (prefill path), decode steps and a chunk with the KV caches kept on the GPU
// (relative error under 1e-4 in f32), and greedy generation of 32 tokens giving exactly the
// interpreter's tokens. Scratch buffers are poisoned before each call.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../compiler/model-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Graph, Value } from '../../ir/graph.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { argmaxOfLastRow, ReferenceSession } from '../../ir/interpret/reference-session.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createModelExecutor } from '../../runtime/model-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { generateTokens } from '../../runtime/generate.js';
import { sampleToken } from '../../ir/interpret/sampling.js';
import { randomDecoderWeights } from '../support/decoder-weights.js';
import { seededRandom } from '../support/seeded-random.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');
const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`decoder-plan: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const FAMILIES = ['tiny-mixtral', 'tiny-phimoe', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-olmoe', 'tiny-deepseek-v2', 'tiny-deepseek-v3', 'tiny-gpt-oss'];

let rt: GpuRuntime;
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => rt?.destroy());

function setup(name: string, context = 96, kvCache = 'f32') {
  const source = readFileSync(join(examples, `${name}.moe`), 'utf8').replace('compile {', `compile {\n  context = ${context}\n  kv_cache = ${kvCache}`);
  const { config, diagnostics } = checkSpec(source, `${name}.moe`);
  expect(diagnostics).toEqual([]);
  const graph = buildModelGraph(config!);
  const weights = randomDecoderWeights(graph, seededRandom(seed));
  const weight = (p: Value) => weights.get(p.name)!;
  return { config: config!, graph, weights, weight };
}

/** The smallest gap between the best and second-best logit over a greedy continuation. */
function smallestMargin(graph: Graph, weight: (p: Value) => Float32Array, prompt: number[], tokens: number[]): number {
  const session = new ReferenceSession(graph, weight);
  let logits = session.forward(prompt);
  let smallest = Infinity;
  for (const token of tokens) {
    const vocab = logits.shape[1]!;
    const row = [...logits.data.subarray((logits.shape[0]! - 1) * vocab)].sort((a, b) => b - a);
    smallest = Math.min(smallest, row[0]! - row[1]!);
    logits = session.forward([token]);
  }
  return smallest;
}

/** The first of a few seeded prompts whose greedy continuation keeps its top-2 margins above 1e-3. */
function promptWithoutNearTies(graph: Graph, weight: (p: Value) => Float32Array, count: number): { prompt: number[]; expected: number[] } {
  const random = seededRandom(seed + 3);
  let best = { prompt: [] as number[], expected: [] as number[], margin: -1 };
  for (let attempt = 0; attempt < 12; attempt++) {
    const prompt = Array.from({ length: 8 }, () => Math.floor(random() * 256));
    const expected = new ReferenceSession(graph, weight).greedy(prompt, count);
    const margin = smallestMargin(graph, weight, prompt, expected);
    if (margin > best.margin) best = { prompt, expected, margin };
    if (margin > 1e-3) break;
  }
  expect(best.margin, 'no prompt of 12 tried continues without a near-tie').toBeGreaterThan(1e-3);
  return best;
}

describe.each(FAMILIES)('%s on WebGPU', (name) => {
  it('prefill, decode steps and a chunk match the interpreter; greedy tokens are the interpreter\'s', async () => {
    const { config, graph, weights, weight } = setup(name);
    const { plan } = compileModel(config);
    const executor = await createModelExecutor(rt, plan, { readF32: (n) => weights.get(n)! });
    try {
      const reference = new ReferenceSession(graph, weight);
      const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % 256);
      let at = 0;
      for (const n of [13, 1, 1, 3, 1]) {
        executor.poisonScratch();
        const got = await executor.forward(ids.slice(at, at + n));
        const want = reference.forward(ids.slice(at, at + n)).data;
        const error = relativeError(got, want);
        console.log(`${name}: call of ${n} at ${at}: relative error ${error.toExponential(2)}`);
        expect(error).toBeLessThan(1e-4);
        at += n;
      }
      // Greedy generation, 32 tokens, from a fresh session on both sides, for a prompt whose
      // reference continuation has no near-tie (top-2 margins above 1e-3, a thousand times the
      // GPU's logit error), so a mismatch is a bug, not an f32 rounding.
      executor.reset();
      const { prompt, expected } = promptWithoutNearTies(graph, weight, 32);
      const tokens: number[] = [];
      let logits = await executor.forward(prompt);
      for (let i = 0; i < 32; i++) {
        const next = argmaxOfLastRow({ shape: [logits.length / plan.vocab, plan.vocab], data: logits });
        tokens.push(next);
        if (i < 31) logits = await executor.forward([next]);
      }
      expect(tokens).toEqual(expected);
    } finally {
      executor.destroy();
    }
  });
});

describe.each(['tiny-qwen3-moe', 'tiny-deepseek-v3'])('%s: KV cache and GPU sampling', (name) => {
  it('prefill then decode gives the logits of one call over the whole sequence', async () => {
    const { config, weights } = setup(name);
    const executor = await createModelExecutor(rt, compileModel(config).plan, { readF32: (n) => weights.get(n)! });
    try {
      const ids = Array.from({ length: 16 }, (_, i) => (i * 29 + 3) % 256);
      await executor.forward(ids.slice(0, 13));
      let last: Float32Array<ArrayBufferLike> = new Float32Array();
      for (const id of ids.slice(13)) last = await executor.forward([id]);
      executor.reset();
      const whole = await executor.forward(ids);
      const vocab = executor.plan.vocab;
      expect(relativeError(last, whole.subarray(15 * vocab))).toBeLessThan(1e-5);
    } finally {
      executor.destroy();
    }
  });

  it('sampled tokens (temperature, top-k, top-p, seed) are the reference sampler\'s on the interpreter\'s logits', async () => {
    const { config, graph, weights, weight } = setup(name);
    const executor = await createModelExecutor(rt, compileModel(config).plan, { readF32: (n) => weights.get(n)! });
    try {
      const prompt = [7, 7, 1, 9, 30];
      for (const options of [{ temperature: 0.8, topK: 20, topP: 0.9, seed: 1234 }, { temperature: 1.3, topK: 0, topP: 1, seed: 99 }]) {
        const got: number[] = [];
        for await (const id of generateTokens(executor, prompt, { maxTokens: 12, ...options })) got.push(id);
        const reference = new ReferenceSession(graph, weight);
        const want: number[] = [];
        let logits = reference.forward(prompt);
        for (let step = 0; step < 12; step++) {
          const vocab = logits.shape[1]!;
          const row = Float32Array.from(logits.data.subarray((logits.shape[0]! - 1) * vocab));
          want.push(sampleToken(row, { ...options, step }));
          logits = reference.forward([want.at(-1)!]);
        }
        expect(got).toEqual(want);
      }
    } finally {
      executor.destroy();
    }
  });
});

describe.each(['tiny-gpt-oss', 'tiny-deepseek-v2'])('%s with kv_cache = f16', (name) => {
  it('matches the interpreter, which stores the same f16 caches', async () => {
    const { config, graph, weights, weight } = setup(name, 96, 'f16');
    const executor = await createModelExecutor(rt, compileModel(config).plan, { readF32: (n) => weights.get(n)! });
    try {
      const reference = new ReferenceSession(graph, weight);
      const ids = Array.from({ length: 20 }, (_, i) => (i * 41 + 9) % 256);
      let at = 0;
      for (const n of [14, 1, 1, 4]) {
        executor.poisonScratch();
        const error = relativeError(await executor.forward(ids.slice(at, at + n)), reference.forward(ids.slice(at, at + n)).data);
        console.log(`${name} (f16 KV cache): call of ${n} at ${at}: relative error ${error.toExponential(2)}`);
        expect(error).toBeLessThan(1e-4);
        at += n;
      }
    } finally {
      executor.destroy();
    }
  });
});
