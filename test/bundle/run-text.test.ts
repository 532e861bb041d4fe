// `moec run --prompt "text" [--chat]` through the built CLI: a whole-model random checkpoint with the
// tiny fixture tokenizer beside it generates on WebGPU exactly the interpreter's greedy tokens for
// the encoded prompt, stopping at the tokenizer's eos ids; the text streamed to stdout (and --json's
// `text`) is the tokenizer's decode of those tokens. A missing or malformed tokenizer file is one
// line naming it, exit 1, nothing written; --prompt with --prompt-ids is a usage error.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { readHfWeights } from '../../runtime/hf-weights.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { loadTextTokenizer } from '../../runtime/text.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';
import { SPECIAL, writeTinyTokenizer } from '../fixtures/make-tokenizer.js';
import { moec } from './cli.js';

const sizes: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 2, firstDense: 1 };
const MAX_TOKENS = 12;
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-run-text-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A whole-model checkpoint with the tiny tokenizer, and a reference session's greedy tokens for a prompt. */
async function setup(family: Family, name: string = family) {
  const dir = join(work, name);
  writeRandomCheckpoint(dir, family, sizes, { seed: 11, wholeModel: true });
  const files = writeTinyTokenizer(dir);
  const spec = join(work, `${name}.moe`);
  writeFileSync(spec, specText(family, sizes));
  const config = checkSpec(readFileSync(spec, 'utf8'), spec).config!;
  const graph = buildModelGraph(config);
  const checkpoint = CheckpointDir.open(dir);
  const weights = await readHfWeights(family, checkpointReader(checkpoint), graph.params.map((p) => ({ name: p.name, shape: p.type.shape as number[] })), { config: checkpoint.config });
  const greedy = (prompt: number[], stop: readonly number[]): number[] => {
    const tokens = new ReferenceSession(graph, (p) => weights.get(p.name)!).greedy(prompt, MAX_TOKENS);
    const end = tokens.findIndex((id) => stop.includes(id));
    return end < 0 ? tokens : tokens.slice(0, end + 1); // generation yields the eos id, then stops
  };
  return { dir, spec, files, greedy };
}

describe('moec run --prompt', () => {
  it('generates the interpreter\'s greedy tokens for the encoded prompt and streams their text', async () => {
    const { dir, spec, files, greedy } = await setup('mixtral');
    const tokenizer = loadTextTokenizer(files);
    const prompt = 'the cat sat on the mat';
    const promptIds = tokenizer.encode(prompt);
    const expected = greedy(promptIds, tokenizer.eosIds);
    const json = await moec(['run', spec, '--weights', dir, '--prompt', prompt, '--max-tokens', String(MAX_TOKENS), '--json']);
    expect(json.stderrLines, json.stderr).toEqual([]);
    expect(json.status).toBe(0);
    const figures = JSON.parse(json.stdout) as { promptIds: number[]; tokens: number[]; text: string; decodeTokensPerSecond: number };
    expect(figures.promptIds).toEqual(promptIds);
    expect(figures.tokens).toEqual(expected);
    expect(figures.text).toBe(tokenizer.decode(expected, { skipSpecial: true }));

    const streamed = await moec(['run', spec, '--weights', dir, '--prompt', prompt, '--max-tokens', String(MAX_TOKENS)]);
    expect(streamed.status, streamed.stderr).toBe(0);
    expect(streamed.stdout).toBe(`${figures.text}\n`);
    expect(streamed.stderrLines).toHaveLength(1);
    expect(streamed.stderr).toMatch(/^time to first token [\d.]+ ms, prefill [\d.]+ tokens\/s, decode [\d.]+ tokens\/s, \d+ dispatches per decoded token/);
  });

  it('with --chat, encodes the prompt as a user message in the chat template and stops at generation_config\'s eos', async () => {
    const { dir, spec, files, greedy } = await setup('qwen3_moe');
    const tokenizer = loadTextTokenizer(files);
    const promptIds = tokenizer.encodeChat([{ role: 'user', content: 'is the cat on the mat?' }]);
    expect(promptIds.slice(0, 2)).toEqual([SPECIAL.bos, 4]); // <s><|user|>
    // Make the third greedy token an eos id too, so generation must stop by the third token.
    const stop = [SPECIAL.eos, greedy(promptIds, [])[2]!];
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: stop }));
    const expected = greedy(promptIds, stop);
    expect(expected.length).toBeLessThanOrEqual(3);

    const r = await moec(['run', spec, '--weights', dir, '--prompt', 'is the cat on the mat?', '--chat', '--max-tokens', String(MAX_TOKENS), '--json']);
    expect(r.stderrLines, r.stderr).toEqual([]);
    expect(r.status).toBe(0);
    const figures = JSON.parse(r.stdout) as { promptIds: number[]; tokens: number[]; text: string };
    expect(figures.promptIds).toEqual(promptIds);
    expect(figures.tokens).toEqual(expected);
    expect(figures.text).toBe(tokenizer.decode(expected, { skipSpecial: true }));
  });
});

describe('moec run --prompt: bad input', () => {
  it('names a missing or malformed tokenizer file, exit 1, writing nothing', async () => {
    const { dir, spec } = await setup('mixtral', 'mixtral-no-tokenizer');
    const out = join(work, 'never.safetensors');
    const run = (...extra: string[]) => moec(['run', spec, '--weights', dir, '--prompt', 'the cat', '--logits-out', out, ...extra]);

    rmSync(join(dir, 'tokenizer.json'));
    const missing = await run();
    expect(missing.status).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderrLines).toHaveLength(1);
    expect(missing.stderr).toContain(`moec run: ${join(dir, 'tokenizer.json')}: not found`);

    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    const malformed = await run();
    expect(malformed.status).toBe(1);
    expect(malformed.stderr).toMatch(/tokenizer\.json: not valid JSON/);

    writeTinyTokenizer(dir, { chatTemplate: false });
    const noTemplate = await run('--chat');
    expect(noTemplate.status).toBe(1);
    expect(noTemplate.stderr).toContain(`${join(dir, 'tokenizer_config.json')}: has no chat_template`);

    const both = await run('--prompt-ids', '1,2');
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--prompt and --prompt-ids are mutually exclusive/);
    expect(existsSync(out)).toBe(false);
  });
});
