// The whole decoder in the reference interpreter, for every family's tiny example: prefill then
// decode with the KV caches kept between calls gives the logits of recomputing the whole sequence
// (as transformers' generate() with a cache does), in chunks too; LongRoPE switches to its long
// factors once a call reaches past original_context, as PhiMoE's rotary embedding does.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import type { Graph, Value } from '../../ir/graph.js';
import { randomDecoderWeights } from '../support/decoder-weights.js';
import { seededRandom } from '../support/seeded-random.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');
const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`decoder-reference: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const FAMILIES = ['tiny-mixtral', 'tiny-phimoe', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-olmoe', 'tiny-deepseek-v2', 'tiny-deepseek-v3', 'tiny-gpt-oss'];

function model(name: string, context = 48): { graph: Graph; weight: (p: Value) => Float32Array } {
  const source = readFileSync(join(examples, `${name}.moe`), 'utf8').replace('compile {', `compile {\n  context = ${context}`);
  const { config, diagnostics } = checkSpec(source, `${name}.moe`);
  expect(diagnostics).toEqual([]);
  const graph = buildModelGraph(config!);
  const weights = randomDecoderWeights(graph, seededRandom(seed));
  return { graph, weight: (p) => weights.get(p.name)! };
}

const randomIds = (random: () => number, n: number, vocab: number) => Array.from({ length: n }, () => Math.floor(random() * vocab));

/** Rows `from..to-1` of a fresh session's logits over the whole prefix. */
function recomputed(graph: Graph, weight: (p: Value) => Float32Array, ids: number[], from: number): Float32Array {
  const logits = new ReferenceSession(graph, weight).forward(ids);
  const vocab = logits.shape[1]!;
  return (logits.data as Float32Array).slice(from * vocab);
}

describe.each(FAMILIES)('%s: the decoder with a KV cache', (name) => {
  it('prefill, chunks and single-token decode give the logits of recomputing the prefix', () => {
    const { graph, weight } = model(name);
    const random = seededRandom(seed + 1);
    const vocab = graph.params.find((p) => p.role === 'embedding')!.type.shape[0] as number;
    const ids = randomIds(random, 22, vocab);
    const session = new ReferenceSession(graph, weight);
    // Calls of 9, 1, 1, 3, 1, ... tokens: the prompt, decode steps, a chunk.
    const calls = [9, 1, 1, 3, 1, 1, 4, 1, 1];
    let at = 0;
    for (const n of calls) {
      const logits = session.forward(ids.slice(at, at + n));
      expect(logits.shape).toEqual([n, vocab]);
      const data = logits.data as Float32Array;
      expect(data.every(Number.isFinite)).toBe(true);
      expect(relativeError(data, recomputed(graph, weight, ids.slice(0, at + n), at))).toBeLessThan(1e-6);
      at += n;
    }
    expect(session.length).toBe(at);
  });

  it('greedy decoding continues each prompt its own way', () => {
    const { graph, weight } = model(name);
    const a = new ReferenceSession(graph, weight).greedy([1, 2, 3, 4], 6);
    const b = new ReferenceSession(graph, weight).greedy([5, 6, 7, 8], 6);
    expect(a).toHaveLength(6);
    expect(a).not.toEqual(b);
  });
});

describe('LongRoPE past original_context (tiny-phimoe, original_context = 24)', () => {
  it('a call reaching past it rotates with the long factors; cached keys keep the short ones', () => {
    const { graph, weight } = model('tiny-phimoe');
    const ids = randomIds(seededRandom(seed + 2), 26, 256);
    const session = new ReferenceSession(graph, weight);
    session.forward(ids.slice(0, 24));
    const step = session.forward(ids.slice(24, 25)).data as Float32Array;
    // Recomputing 25 tokens in one call rotates every key with the long factors: different logits.
    expect(relativeError(step, recomputed(graph, weight, ids.slice(0, 25), 24))).toBeGreaterThan(1e-3);
    // Within original_context the two agree (the test above), so the switch is what differs.
    const short = new ReferenceSession(graph, weight);
    short.forward(ids.slice(0, 23));
    expect(relativeError(short.forward(ids.slice(23, 24)).data, recomputed(graph, weight, ids.slice(0, 24), 23))).toBeLessThan(1e-6);
  });
});

describe('the KV cache is the size compile.context says', () => {
  it('a position past it is an error naming the cache', () => {
    const { graph, weight } = model('tiny-mixtral', 8);
    const session = new ReferenceSession(graph, weight);
    session.forward([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(() => session.forward([9])).toThrow(/position 8 is outside the KV cache \(context 8\)/);
  });
});
