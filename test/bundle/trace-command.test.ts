// `moec trace` through the built CLI: a whole-model random checkpoint traced over two prompts with
// greedy tokens after each gives, per MoE layer, exactly the counts and transitions of the route
// ids the reference interpreter picks on the same calls (summed over the prompts, each a fresh
// sequence); the file is one compiler/placement/routing-trace.ts reads back and `moec place
// --trace` accepts; --format sglang adds logical_count, one row per model layer (dense layers
// zero); --prompt goes through the checkpoint's tokenizer. Bad input is one line, exit 1 or 2,
// nothing written.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingTraceOf } from '../../compiler/cli/trace-command.js';
import { readRoutingTrace } from '../../compiler/placement/routing-trace.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { readHfWeights } from '../../runtime/hf-weights.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { loadTextTokenizer } from '../../runtime/text.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';
import { writeTinyTokenizer } from '../fixtures/make-tokenizer.js';
import { countRoutesByReference } from '../support/routing-counts.js';
import { moec } from './cli.js';

// Three layers: deepseek_v3's first is dense (firstDense), so both families have two MoE layers or more.
const sizes: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 3, firstDense: 1 };
const MAX_TOKENS = 4;
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-trace-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function setup(family: Family) {
  const dir = join(work, family);
  writeRandomCheckpoint(dir, family, sizes, { seed: 5, wholeModel: true });
  const spec = join(work, `${family}.moe`);
  writeFileSync(spec, specText(family, sizes));
  const config = checkSpec(readFileSync(spec, 'utf8'), spec).config!;
  const graph = buildModelGraph(config);
  const checkpoint = CheckpointDir.open(dir);
  const weights = await readHfWeights(family, checkpointReader(checkpoint), graph.params.map((p) => ({ name: p.name, shape: p.type.shape as number[] })), { config: checkpoint.config });
  const weight = (p: { name: string }) => weights.get(p.name)!;
  /** What the trace of these prompts must hold: each prompt and its greedy tokens but the last, one call each, summed. */
  const expectedTrace = (prompts: number[][]) => {
    const moeLayers = moeLayerIndices(config);
    const experts = config.moe!.experts;
    const total = moeLayers.map((_, i) => new Array<number>(experts + (i + 1 < moeLayers.length ? experts * experts : 0)).fill(0));
    let tokens = 0;
    for (const prompt of prompts) {
      const generated = new ReferenceSession(graph, weight).greedy(prompt, MAX_TOKENS);
      const calls = [prompt, ...generated.slice(0, -1).map((id) => [id])];
      tokens += calls.flat().length;
      countRoutesByReference(graph, weight, moeLayers, experts, calls).forEach((c, i) => c.forEach((n, j) => (total[i]![j]! += n)));
    }
    return routingTraceOf(config.name, tokens, moeLayers, experts, total);
  };
  return { dir, spec, config, expectedTrace };
}

describe.each(['mixtral', 'deepseek_v3'] as Family[])('moec trace (%s)', (family) => {
  it('writes the reference\'s routing counts over two prompts and their greedy tokens; moec place reads it', async () => {
    const { dir, spec, config, expectedTrace } = await setup(family);
    const prompts = [[5, 17, 3, 42, 8], [9, 1, 4]];
    const out = join(work, `${family}.trace.json`);
    const r = await moec(['trace', spec, '--weights', dir, ...prompts.flatMap((p) => ['--prompt-ids', p.join(',')]), '--max-tokens', String(MAX_TOKENS), '-o', out]);
    expect(r.stderrLines, r.stderr).toEqual([]);
    expect(r.status).toBe(0);
    const moeLayers = moeLayerIndices(config);
    expect(r.stdout).toBe(`${out}: 14 tokens over 2 prompts, ${moeLayers.length} MoE layers of 6 experts (top 2)\n`);
    const trace = readRoutingTrace(out, { experts: 6, moeLayers });
    expect(trace).toEqual(expectedTrace(prompts));
    expect(trace.tokens).toBe(5 + 3 + 3 + 3);
    expect(trace.layers.at(-1)!.transitions).toEqual([]);
    expect('transitions' in JSON.parse(readFileSync(out, 'utf8')).layers.at(-1)).toBe(true); // written as []

    const placed = await moec(['place', spec, '--trace', out, '--devices', '2', '--method', 'greedy', '-o', join(work, `${family}.placement.json`)]);
    expect(placed.stderr).toBe('');
    expect(placed.status).toBe(0);
  });
});

describe('moec trace --format sglang, --prompt', () => {
  it('--format sglang adds logical_count: tokens per expert per model layer, the dense layer zero', async () => {
    const { dir, spec, config } = await setup('deepseek_v3');
    const out = join(work, 'sglang.trace.json');
    const r = await moec(['trace', spec, '--weights', dir, '--prompt-ids', '3,1,4,1,5', '-o', out, '--format', 'sglang']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as { logical_count: number[][] };
    const trace = readRoutingTrace(out, { experts: 6, moeLayers: moeLayerIndices(config) }); // still a moec trace
    expect(json.logical_count).toEqual([[0, 0, 0, 0, 0, 0], trace.layers[0]!.counts, trace.layers[1]!.counts]);
    for (const row of json.logical_count.slice(1)) expect(row.reduce((a, b) => a + b, 0)).toBe(5 * 2);
  });

  it('--prompt encodes with the checkpoint\'s tokenizer: the trace of the ids it gives', async () => {
    const { dir, spec } = await setup('mixtral');
    const files = writeTinyTokenizer(dir);
    const ids = loadTextTokenizer({ tokenizerJson: files.tokenizerJson, tokenizerConfig: files.tokenizerConfig }).encode('the cat sat on the mat');
    const [fromText, fromIds] = [join(work, 'text.trace.json'), join(work, 'ids.trace.json')];
    const a = await moec(['trace', spec, '--weights', dir, '--prompt', 'the cat sat on the mat', '-o', fromText]);
    const b = await moec(['trace', spec, '--weights', dir, '--prompt-ids', ids.join(','), '-o', fromIds]);
    expect([a.stderr, b.stderr]).toEqual(['', '']);
    expect(readFileSync(fromText, 'utf8')).toBe(readFileSync(fromIds, 'utf8'));
    rmSync(join(dir, 'tokenizer.json'));
    const missing = await moec(['trace', spec, '--weights', dir, '--prompt', 'the cat', '-o', join(work, 'never.json')]);
    expect(missing.status).toBe(1);
    expect(missing.stderrLines).toEqual([`moec trace: ${join(dir, 'tokenizer.json')}: not found; --prompt needs the checkpoint's tokenizer (tokenizer.json, as Hugging Face saves it), or pass ids with --prompt-ids`]);
  });
});

describe('moec trace: bad input', () => {
  it('refuses a bad id, a prompt past the context, a bundle, a missing flag, a spec without experts; writes nothing', async () => {
    const { dir, spec } = await setup('qwen3_moe');
    const out = join(work, 'never.json');
    const o = ['-o', out];
    const cases: [string[], number, string][] = [
      [['--prompt-ids', '1,2', '--prompt-ids', '1,64', ...o], 2, '--prompt-ids (prompt 2): id 1 is 64, outside the vocabulary 0..63'],
      [['--prompt-ids', Array.from({ length: 4000 }, () => '1').join(','), '--max-tokens', '200', ...o], 2,
        'prompt 1 of 4000 tokens and 200 new ones need 4199 positions; the spec\'s context is 4096 (compile { context = N })'],
      [['--prompt-ids', '1'], 2, 'trace needs -o trace.json'],
      [['--prompt-ids', '1', '--format', 'csv', ...o], 2, '--format must be moec or sglang, got csv'],
      [['--prompt-ids', '1', '--max-tokens', '2.5', ...o], 2, '--max-tokens must be a whole number, got 2.5'],
      [[...o], 2, 'trace needs a prompt: --prompt-ids 1,2,3 or --prompt "text" (repeatable)'],
    ];
    for (const [flags, status, message] of cases) {
      const r = await moec(['trace', spec, '--weights', dir, ...flags]);
      expect([r.status, r.stderr]).toEqual([status, `moec trace: ${message}`]);
    }
    const bundle = join(work, 'bundle');
    mkdirSync(bundle, { recursive: true });
    const b = await moec(['trace', bundle, '--weights', dir, '--prompt-ids', '1', ...o]);
    expect([b.status, b.stderr]).toEqual([2, `moec trace: ${bundle}: trace runs a spec; bundles hold single MoE blocks for now`]);
    const nowhere = await moec(['trace', spec, '--weights', join(work, 'nowhere'), '--prompt-ids', '1', ...o]);
    expect(nowhere.status).toBe(1);
    expect(nowhere.stderrLines).toHaveLength(1);
    expect(nowhere.stderr).toMatch(new RegExp(`^moec trace: ${join(work, 'nowhere')}`));
    const dense = join(work, 'dense.moe');
    writeFileSync(dense, readFileSync(spec, 'utf8').replace(/\n  moe \{[\s\S]*?\n  \}/, '\n  dense {\n    mlp = swiglu(intermediate = 20)\n  }'));
    const d = await moec(['trace', dense, '--weights', dir, '--prompt-ids', '1', ...o]);
    expect([d.status, d.stderr]).toEqual([1, `moec trace: ${dense}: the spec has no moe block, so there is no routing to trace`]);
    expect(existsSync(out)).toBe(false);
  });
});
