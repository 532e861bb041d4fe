// `moec run --prompt-ids` through the built CLI: a whole-model random checkpoint with real HF
// tensor names generates on WebGPU exactly the interpreter's greedy tokens (weights read from the
// same checkpoint), --logits-out holds the interpreter's prompt logits, --json carries the
// figures; and bad input (an id outside the vocabulary, a prompt past the context) is one line,
// exit 1 or 2, nothing written.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { readHfWeights } from '../../runtime/hf-weights.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { FAMILIES, specText, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';
import { moec } from './cli.js';

const sizes: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 2, firstDense: 1 };
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-generate-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function setup(family: Family) {
  const dir = join(work, family);
  writeRandomCheckpoint(dir, family, sizes, { seed: 7, wholeModel: true });
  const spec = join(work, `${family}.moe`);
  writeFileSync(spec, specText(family, sizes));
  const config = checkSpec(readFileSync(spec, 'utf8'), spec).config!;
  const graph = buildModelGraph(config);
  const checkpoint = CheckpointDir.open(dir);
  const weights = await readHfWeights(family, checkpointReader(checkpoint), graph.params.map((p) => ({ name: p.name, shape: p.type.shape as number[] })), { config: checkpoint.config });
  return { dir, spec, config, graph, weights };
}

describe.each(FAMILIES)('moec run --prompt-ids (%s)', (family) => {
  it('generates the interpreter\'s 32 greedy tokens and writes its prompt logits', async () => {
    const { dir, spec, graph, weights } = await setup(family);
    const prompt = [5, 17, 3, 42, 8];
    const expected = new ReferenceSession(graph, (p) => weights.get(p.name)!).greedy(prompt, 32);
    const logitsOut = join(work, `${family}.logits.safetensors`);
    const r = await moec(['run', spec, '--weights', dir, '--prompt-ids', prompt.join(','), '--max-tokens', '32', '--json', '--logits-out', logitsOut]);
    expect(r.stderrLines, r.stderr).toEqual([]);
    expect(r.status).toBe(0);
    const figures = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(figures['tokens']).toEqual(expected);
    for (const key of ['timeToFirstTokenMs', 'prefillTokensPerSecond', 'decodeTokensPerSecond', 'dispatchesPerToken']) expect(figures[key]).toBeGreaterThan(0);
    const file = parseSafetensors(new Uint8Array(readFileSync(logitsOut)), logitsOut);
    const logits = readTensorF32(file, 'logits');
    const want = new ReferenceSession(graph, (p) => weights.get(p.name)!).forward(prompt);
    expect(file.tensors.get('logits')!.shape).toEqual([prompt.length, 64]);
    expect(relativeError(logits, want.data)).toBeLessThan(1e-4);
  });
});

describe('moec run <bundle> --prompt-ids', () => {
  it('generates with the bundle\'s load().generate(): the interpreter\'s greedy tokens', async () => {
    const { dir, spec, graph, weights } = await setup('qwen2_moe');
    const bundle = join(work, 'qwen2_moe-bundle');
    expect((await moec(['compile', spec, '-o', bundle])).status).toBe(0);
    const prompt = [9, 2, 33, 40];
    const r = await moec(['run', bundle, '--weights', dir, '--prompt-ids', prompt.join(','), '--max-tokens', '12', '--json']);
    expect(r.stderrLines, r.stderr).toEqual([]);
    expect(JSON.parse(r.stdout).tokens).toEqual(new ReferenceSession(graph, (p) => weights.get(p.name)!).greedy(prompt, 12));
  });
});

describe('moec run --prompt-ids: bad input', () => {
  it('refuses an id outside the vocabulary and a prompt past the context, writing nothing', async () => {
    const { dir, spec } = await setup('qwen3_moe');
    const out = join(work, 'never.safetensors');
    const bad = await moec(['run', spec, '--weights', dir, '--prompt-ids', '1,64', '--logits-out', out]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--prompt-ids: id 1 is 64, outside the vocabulary 0\.\.63/);
    const long = await moec(['run', spec, '--weights', dir, '--prompt-ids', Array.from({ length: 4000 }, () => '1').join(','), '--max-tokens', '200', '--logits-out', out]);
    expect(long.status).toBe(2);
    expect(long.stderr).toMatch(/a prompt of 4000 tokens and 200 new ones need 4199 positions; the model's context is 4096 \(compile \{ context = N \}\)/);
    expect(existsSync(out)).toBe(false);
  });
});
