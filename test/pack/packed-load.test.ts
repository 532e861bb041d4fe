// A packed directory (`moec pack`) through a compiled bundle's load(): in Node as the directory's
// files (packedFilesInDir), over HTTP as a URL that load() tells apart from a Hugging Face
// checkpoint by its manifest.json, and through `moec run <bundle> --weights <packed-dir>`. The
// logits and greedy tokens are those of the same bundle loaded from the checkpoint, bit for bit;
// a flipped byte in a shard is refused at the first forward naming the shard, and a pack made for
// another plan is refused at load, as is any pack by a bundle of MoE blocks only.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadOptions, Model } from '../../runtime/bundle.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { packedFilesInDir } from '../../runtime/node/packed-dir.js';
import type { PackedManifest } from '../../runtime/packed/packed-format.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { serveDirectory, type StaticServer } from '../browser/launch-chromium.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { moec } from '../bundle/cli.js';

interface BundleModule {
  load(options: LoadOptions): Promise<Model>;
}

const SIZES: CheckpointSizes = { hidden: 32, experts: 8, topK: 2, intermediate: 64, layers: 2 };
const LIMIT = 65536; // several shards
const PROMPT = [5, 17, 3, 42, 8, 1, 9, 30, 2, 11];

let work: string;
let server: StaticServer;
let bundle: BundleModule;
const dirs = { bundle: '', checkpoint: '', packed: '', other: '', damaged: '' };
let damagedShard: PackedManifest['shards'][number];

/** The tiny mixtral spec with int4 experts (`quantize`) and a small context. */
function writeSpec(name: string, quantize: string): string {
  const spec = join(work, `${name}.moe`);
  writeFileSync(spec, specText('mixtral', SIZES).replace('  dtype = f32\n', `  dtype = f32\n  context = 64\n  ${quantize}\n`));
  return spec;
}

async function ok(args: string[]): Promise<void> {
  const r = await moec(args);
  expect(r.stderrLines, r.stderr).toEqual([]);
  expect(r.status).toBe(0);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'moec-packed-load-'));
  const spec = writeSpec('int4', 'quantize experts = int4(group = 32)');
  Object.assign(dirs, Object.fromEntries(Object.keys(dirs).map((k) => [k, join(work, k)])));
  writeRandomCheckpoint(dirs.checkpoint, 'mixtral', SIZES, { seed: 5, wholeModel: true, shards: 2 });
  await ok(['compile', spec, '-o', dirs.bundle, '--max-binding', String(LIMIT)]);
  await ok(['pack', spec, '--weights', dirs.checkpoint, '-o', dirs.packed, '--max-binding', String(LIMIT)]);
  // The same checkpoint packed for another plan: int8 experts.
  await ok(['pack', writeSpec('int8', 'quantize experts = int8(group = 32)'), '--weights', dirs.checkpoint, '-o', dirs.other, '--max-binding', String(LIMIT)]);
  // A copy with one byte of one shard's data flipped (its manifest intact).
  const manifest = JSON.parse(readFileSync(join(dirs.packed, 'manifest.json'), 'utf8')) as PackedManifest;
  expect(manifest.shards.length).toBeGreaterThan(1);
  damagedShard = manifest.shards[manifest.shards.length - 1]!;
  mkdirSync(dirs.damaged);
  for (const f of readdirSync(dirs.packed)) copyFileSync(join(dirs.packed, f), join(dirs.damaged, f));
  const bytes = readFileSync(join(dirs.damaged, damagedShard.file));
  bytes[bytes.byteLength - 3]! ^= 0x04;
  writeFileSync(join(dirs.damaged, damagedShard.file), bytes);
  bundle = (await import(pathToFileURL(join(dirs.bundle, 'model.js')).href)) as BundleModule;
  server = await serveDirectory(work);
});

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Logits of a prompt and one decode step, and 6 greedy tokens after the prompt, from `weights`. */
async function runWith(weights: LoadOptions['weights']): Promise<{ logits: Float32Array[]; tokens: number[] }> {
  const model = await bundle.load({ gpu: createNodeGpu(), weights });
  try {
    const logits = [await model.forward(PROMPT), await model.forward([7])];
    const tokens: number[] = [];
    for await (const id of model.generate(PROMPT, { maxTokens: 6 })) tokens.push(id);
    return { logits, tokens };
  } finally {
    model.destroy();
  }
}

describe("a bundle's load() with a packed directory", () => {
  let fromCheckpoint: Awaited<ReturnType<typeof runWith>>;
  beforeAll(async () => {
    fromCheckpoint = await runWith(openHfCheckpoint(dirs.checkpoint).weights);
    expect(fromCheckpoint.logits[0]!.every(Number.isFinite)).toBe(true);
    expect(fromCheckpoint.tokens).toHaveLength(6);
  });

  const same = (got: Awaited<ReturnType<typeof runWith>>): void => {
    got.logits.forEach((l, i) => expect(bytesOf(l).equals(bytesOf(fromCheckpoint.logits[i]!)), `forward ${i}`).toBe(true));
    expect(got.tokens).toEqual(fromCheckpoint.tokens);
  };

  it('in Node (the directory\'s files) gives the logits and tokens of the checkpoint, bit for bit', async () => {
    same(await runWith(packedFilesInDir(dirs.packed)));
  });

  it('over HTTP, as a URL told apart from a checkpoint URL by its manifest', async () => {
    const from = server.log.length;
    same(await runWith(`${server.url}packed/`));
    const paths = server.log.slice(from).map((r) => r.path);
    expect(paths).toContain('/packed/manifest.json');
    expect(paths.filter((p) => p.endsWith('.safetensors')).sort()).toEqual(readdirSync(dirs.packed).filter((f) => f.endsWith('.safetensors')).map((f) => `/packed/${f}`).sort());
    same(await runWith(`${server.url}checkpoint/`)); // a checkpoint URL still reads the checkpoint
  });

  it('refuses a shard with a flipped byte at the first forward, naming the shard', async () => {
    const model = await bundle.load({ gpu: createNodeGpu(), weights: packedFilesInDir(dirs.damaged) });
    try {
      const refusal = new RegExp(`^${join(dirs.damaged, damagedShard.file).replace(/[.[\]]/g, '\\$&')}: sha256 [0-9a-f]{64} does not match the manifest's ${damagedShard.sha256}; refusing the damaged shard`);
      await expect(model.forward(PROMPT)).rejects.toThrow(refusal);
      await expect(model.forward(PROMPT)).rejects.toThrow(refusal); // a retry reads it again, and refuses again
    } finally {
      model.destroy();
    }
    const overHttp = await bundle.load({ gpu: createNodeGpu(), weights: `${server.url}damaged` });
    try {
      await expect(overHttp.prepare()).rejects.toThrow(`${server.url}damaged/${damagedShard.file}: sha256 `);
    } finally {
      overHttp.destroy();
    }
  });

  it('refuses, at load, a pack made for another plan', async () => {
    const other = /manifest\.json: packed for model "tiny-mixtral" \(spec sha256 [0-9a-f]{12}\.\.\.\), whose weights, formats or buffers differ from those of "tiny-mixtral": pack the checkpoint again/;
    await expect(bundle.load({ gpu: createNodeGpu(), weights: packedFilesInDir(dirs.other) })).rejects.toThrow(other);
    await expect(bundle.load({ gpu: createNodeGpu(), weights: `${server.url}other/` })).rejects.toThrow(other);
  });

  it('is refused by a bundle of MoE blocks only, which has no plan to read it with', async () => {
    // The default context's KV cache does not fit a 64 KiB binding: no whole-model plan.
    const spec = join(work, 'blocks.moe');
    writeFileSync(spec, readFileSync(join(work, 'int4.moe'), 'utf8').replace('  context = 64\n', ''));
    const dir = join(work, 'blocks-bundle');
    await ok(['compile', spec, '-o', dir, '--max-binding', String(LIMIT)]);
    expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).wholeModel.available).toBe(false);
    const blocks = (await import(pathToFileURL(join(dir, 'model.js')).href)) as BundleModule;
    await expect(blocks.load({ gpu: createNodeGpu(), weights: packedFilesInDir(dirs.packed) })).rejects.toThrow(
      `load: ${dirs.packed} is a packed directory (\`moec pack\`), which holds the whole model's weight buffers, but this bundle holds MoE blocks only (`);
  });

  it('a URL holding neither a checkpoint nor a pack is the checkpoint\'s error', async () => {
    await expect(bundle.load({ gpu: createNodeGpu(), weights: `${server.url}nothing/` })).rejects.toThrow(`${server.url}nothing/config.json: HTTP 404`);
  });
});

describe('moec run <bundle> --weights <packed-dir>', () => {
  const run = (weights: string, logitsOut: string) =>
    moec(['run', dirs.bundle, '--weights', weights, '--prompt-ids', PROMPT.join(','), '--max-tokens', '5', '--json', '--logits-out', logitsOut]);
  const logitsIn = (file: string): Float32Array => readTensorF32(parseSafetensors(new Uint8Array(readFileSync(file)), file), 'logits');

  it('generates what the checkpoint does, and refuses a damaged shard in one line', async () => {
    const [packed, checkpoint] = [await run(dirs.packed, join(work, 'packed.safetensors')), await run(dirs.checkpoint, join(work, 'checkpoint.safetensors'))];
    for (const r of [packed, checkpoint]) {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
    const tokens = (r: { stdout: string }) => (JSON.parse(r.stdout) as { tokens: number[] }).tokens;
    expect(tokens(packed)).toHaveLength(5);
    expect(tokens(packed)).toEqual(tokens(checkpoint));
    expect(bytesOf(logitsIn(join(work, 'packed.safetensors'))).equals(bytesOf(logitsIn(join(work, 'checkpoint.safetensors'))))).toBe(true);

    const damaged = await run(dirs.damaged, join(work, 'damaged.safetensors'));
    expect(damaged.status).toBe(1);
    expect(damaged.stderrLines).toEqual([expect.stringMatching(new RegExp(`^moec run: ${join(dirs.damaged, damagedShard.file).replace(/[.[\]]/g, '\\$&')}: sha256 [0-9a-f]{64} does not match`))]);
  });
});
