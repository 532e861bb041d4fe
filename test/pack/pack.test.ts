// `moec pack` through the built CLI (its workers from the esbuild bundle): sharded whole-model
// random checkpoints (mixtral int4, qwen2-moe int8 with a dequantized router, gpt-oss MXFP4 read as
// fused gate_up, a plugin's nf4) give shards under the binding limit whose sha256 the manifest
// holds, each tensor the words the runtime's own packing gives, and a model loaded from the pack
// (which packs nothing: its readF32 throws) computes the logits of one loaded from the checkpoint
// bit for bit. Stacked experts sharded for a small binding pack too. A flipped byte in a shard is
// refused naming the shard, a pack made for another spec is refused, and CLI errors exit non-zero
// leaving no directory behind.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../compiler/model-plan.js';
import { loadPlugins } from '../../compiler/plugins/load-plugins.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createModelExecutor } from '../../runtime/model-executor.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { isPackedDir, openPackedDir, packedFilesInDir } from '../../runtime/node/packed-dir.js';
import { packedBuffersOf, PackedWeightsError, type PackedManifest } from '../../runtime/packed/packed-format.js';
import { openPackedWeights, packedFilesAtUrl } from '../../runtime/packed/packed-weights.js';
import type { ModelPlan } from '../../runtime/plan.js';
import type { FormatDefinition } from '../../runtime/quant/weight-format.js';
import { parseSafetensorsHeader } from '../../runtime/safetensors.js';
import { encodeWeightBuffers, weightReadUnits } from '../../runtime/weight-upload.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';
import { moec, ROOT } from '../bundle/cli.js';

// Packs for a 64 KiB binding: several shards, and plans the executor runs. Stacked int4 experts are
// sharded only when a binding is smaller than their stack yet holds the grouped GEMMs' rows for a
// token (their tile padding alone, 8 experts x 15 rows x intermediate f32, is 30 KiB here): wider
// experts (128 x 128) under the same 64 KiB are.
const sizes: CheckpointSizes = { hidden: 32, experts: 8, topK: 2, intermediate: 64, layers: 2 };
const wideSizes: CheckpointSizes = { ...sizes, hidden: 128, intermediate: 128 };
const LIMIT = 65536;
// The router read by an f32-only kernel: stored dequantized (f32 values of an int8 round trip).
// gpt-oss stores gate and up in one MXFP4 tensor: a worker packs them as one read unit.
const CASES: { family: Family; quantize: string; dequantized: boolean; mxfp4?: boolean }[] = [
  { family: 'mixtral', quantize: 'quantize experts = int4(group = 32)', dequantized: false },
  { family: 'qwen2_moe', quantize: 'quantize experts = int8(group = 32)\n  quantize shared = int4(group = 32)\n  quantize router = int8(group = 32)', dequantized: true },
  { family: 'gpt_oss', quantize: 'quantize experts = mxfp4(group = 32)', dequantized: false, mxfp4: true },
];

let work: string;
let rt: GpuRuntime;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'moec-pack-'));
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => {
  rt?.destroy();
  rmSync(work, { recursive: true, force: true });
});

/** A spec for `family` with `quantize` lines in its compile block, and its plan for `limit`. */
function specOf(family: Family, quantize: string, name: string, limit = LIMIT, s = sizes) {
  const spec = join(work, `${name}.moe`);
  writeFileSync(spec, specText(family, s).replace('  dtype = f32\n', `  dtype = f32\n  context = 64\n  ${quantize}\n`));
  const { config, diagnostics } = checkSpec(readFileSync(spec, 'utf8'), spec);
  expect(diagnostics).toEqual([]);
  return { spec, plan: compileModel(config!, { maxStorageBufferBindingSize: limit }).plan };
}

function checkpointOf(family: Family, name: string, mxfp4Experts = false, s = sizes): string {
  const dir = join(work, name);
  writeRandomCheckpoint(dir, family, s, { seed: 11, wholeModel: true, shards: 3, mxfp4Experts });
  return dir;
}

const readManifest = (dir: string): PackedManifest => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as PackedManifest;
const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Checks packed directory `out` for `plan`: exactly the manifest's files, each shard's size and
 * sha256 as the manifest says, its weights at most `limit` bytes (the file too, unless it holds one
 * buffer), every buffer once, each tensor the words the runtime's packing gives. Returns those words.
 */
async function checkShards(out: string, plan: ModelPlan, checkpoint: string, limit: number, formats: FormatDefinition[] = []): Promise<Map<string, Uint8Array>> {
  const manifest = readManifest(out);
  expect(manifest.shards.length).toBeGreaterThan(1);
  expect(manifest.maxStorageBufferBindingSize).toBe(limit);
  expect(readdirSync(out).sort()).toEqual(['manifest.json', ...manifest.shards.map((s) => s.file)].sort());
  expect(manifest.shards.flatMap((s) => s.tensors).sort()).toEqual(packedBuffersOf(plan).map((b) => b.buffer.name).sort());
  const units = weightReadUnits({ name: plan.name, weights: plan.weights.filter((w) => w.name !== plan.rope?.weight), buffers: plan.buffers }, openHfCheckpoint(checkpoint).weights);
  const expected = new Map<string, Uint8Array>();
  for (const jobs of units) {
    const whole = jobs.map(({ buffer }) => new Uint8Array(buffer.elements.constant * 4));
    for await (const { job, offset, words } of encodeWeightBuffers(openHfCheckpoint(checkpoint).weights, jobs, { formats })) whole[job]!.set(bytesOf(words), offset * 4);
    jobs.forEach(({ buffer }, i) => expected.set(buffer.name, whole[i]!));
  }
  for (const shard of manifest.shards) {
    const bytes = readFileSync(join(out, shard.file));
    expect(bytes.byteLength).toBe(shard.bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(shard.sha256);
    const header = parseSafetensorsHeader(bytes, bytes.byteLength, shard.file);
    expect(bytes.byteLength - header.dataStart).toBeLessThanOrEqual(limit);
    if (shard.tensors.length > 1) expect(bytes.byteLength).toBeLessThanOrEqual(limit);
    expect([...header.tensors.keys()]).toEqual(shard.tensors);
    for (const [name, tensor] of header.tensors) {
      const buffer = plan.buffers.find((b) => b.name === name)!;
      expect(tensor.dtype).toBe(buffer.dtype === 'u32' ? 'U32' : 'F32');
      expect(bytesOf(bytes.subarray(tensor.fileOffset, tensor.fileOffset + tensor.byteLength)).equals(bytesOf(expected.get(name)!)), name).toBe(true);
    }
  }
  return expected;
}

/** Logits of a fixed prompt and two decode steps. */
async function logitsOf(plan: ModelPlan, weights: Parameters<typeof createModelExecutor>[2], formats: FormatDefinition[] = []): Promise<Float32Array[]> {
  const executor = await createModelExecutor(rt, plan, weights, { formats });
  try {
    executor.poisonScratch();
    return [await executor.forward([5, 17, 3, 42, 8, 1, 9, 30, 2, 11]), await executor.forward([7]), await executor.forward([12])];
  } finally {
    executor.destroy();
  }
}

describe.each(CASES)('moec pack ($family, $quantize)', ({ family, quantize, dequantized, mxfp4 }) => {
  it('writes shards under the limit with their sha256, the runtime\'s packed words, and loads to the same logits', async () => {
    const { spec, plan } = specOf(family, quantize, family);
    expect(plan.weights.some((w) => w.storage === 'dequantized')).toBe(dequantized);
    const checkpoint = checkpointOf(family, `${family}-checkpoint`, mxfp4);
    const out = join(work, `${family}-packed`);
    const r = await moec(['pack', spec, '--weights', checkpoint, '-o', out, '--max-binding', String(LIMIT), '--workers', '2']);
    expect(r.stderrLines, r.stderr).toEqual([]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${out}: tiny-[\\w-]+, \\d+ weight buffers in \\d+ shards \\([\\d.]+ [kM]B; at most [\\d.]+ kB of weights each, the binding limit 65\\.5 kB\\)\\npacked [\\d.]+ [kM]B of checkpoint in [\\d.]+ s \\([\\d.]+ MB/s\\) with 2 workers, peak memory [\\d.]+ MB\\n$`));
    expect(isPackedDir(out)).toBe(true);

    const expected = await checkShards(out, plan, checkpoint, LIMIT);
    const units = weightReadUnits({ name: plan.name, weights: plan.weights.filter((w) => w.name !== plan.rope?.weight), buffers: plan.buffers }, openHfCheckpoint(checkpoint).weights);
    expect(units.some((jobs) => jobs.length === 2)).toBe(mxfp4 === true); // gate and up read together

    const packed = await openPackedDir(out, plan);
    expect(() => packed.readF32('embed.weight', [64, 32])).toThrow(PackedWeightsError); // so a load from it packs nothing
    const fromPack = await logitsOf(plan, packed);
    const fromCheckpoint = await logitsOf(plan, openHfCheckpoint(checkpoint).weights);
    fromPack.forEach((logits, i) => expect(bytesOf(logits).equals(bytesOf(fromCheckpoint[i]!)), `call ${i}`).toBe(true));
    expect(fromPack[0]!.every(Number.isFinite)).toBe(true);

    // The same directory over a URL reads the same words.
    const overHttp = await openPackedWeights(packedFilesAtUrl('https://example.test/pack', async (url) =>
      new Response(readFileSync(join(out, String(url).slice('https://example.test/pack/'.length))))), plan);
    const { buffer, weight } = packedBuffersOf(plan).at(-1)!;
    expect(bytesOf((await overHttp.readBufferWords(buffer, weight))!).equals(bytesOf(expected.get(buffer.name)!))).toBe(true);
  });
});

it('packs stacked experts sharded for a small binding, each shard under it, and a plan that keeps them whole refuses it', async () => {
  const { spec, plan } = specOf('mixtral', CASES[0]!.quantize, 'small', LIMIT, wideSizes);
  expect(plan.buffers.some((b) => b.weight && /\[\d+:\d+\]$/.test(b.name) && b.dtype === 'u32')).toBe(true); // experts in shards
  expect(plan.maxTokens).toBeGreaterThanOrEqual(1);
  const checkpoint = checkpointOf('mixtral', 'small-checkpoint', false, wideSizes);
  const out = join(work, 'small-packed');
  const r = await moec(['pack', spec, '--weights', checkpoint, '-o', out, '--max-binding', String(LIMIT), '--workers', '2']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  await checkShards(out, plan, checkpoint, LIMIT);
  expect(readManifest(out).shards.length).toBeGreaterThan(10);
  // For a larger binding the plan keeps each stack whole: other buffers.
  await expect(openPackedDir(out, specOf('mixtral', CASES[0]!.quantize, 'small-large', 2 ** 27, wideSizes).plan)).rejects.toThrow(PackedWeightsError);
});

it('packs a plugin\'s weight format (nf4), its codec loaded by the workers', async () => {
  const pluginFile = join(ROOT, 'examples', 'plugins', 'nf4', 'nf4.js');
  const registry = await loadPlugins([{ path: pluginFile }]);
  const formats = Object.values(registry.formats);
  const spec = join(work, 'nf4.moe');
  writeFileSync(spec, specText('mixtral', sizes).replace('  dtype = f32\n', '  dtype = f32\n  context = 64\n  quantize experts = nf4(group = 32)\n'));
  const { config, diagnostics } = checkSpec(readFileSync(spec, 'utf8'), spec, registry.kinds);
  expect(diagnostics).toEqual([]);
  const { plan } = compileModel(config!, { registry, maxStorageBufferBindingSize: LIMIT });
  expect(plan.weights.some((w) => w.format.format === 'nf4')).toBe(true);
  const checkpoint = checkpointOf('mixtral', 'nf4-checkpoint');
  const out = join(work, 'nf4-packed');
  const r = await moec(['pack', spec, '--weights', checkpoint, '-o', out, '--max-binding', String(LIMIT), '--plugin', pluginFile]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  await checkShards(out, plan, checkpoint, LIMIT, formats);
  const fromPack = await logitsOf(plan, await openPackedDir(out, plan), formats);
  const fromCheckpoint = await logitsOf(plan, openHfCheckpoint(checkpoint).weights, formats);
  fromPack.forEach((logits, i) => expect(bytesOf(logits).equals(bytesOf(fromCheckpoint[i]!)), `call ${i}`).toBe(true));
});

describe('a packed directory is refused', () => {
  let pack: string;
  let plan: ModelPlan;
  beforeAll(async () => {
    ({ plan } = specOf('mixtral', CASES[0]!.quantize, 'refused'));
    const checkpoint = checkpointOf('mixtral', 'refused-checkpoint');
    pack = join(work, 'refused-packed');
    const r = await moec(['pack', join(work, 'refused.moe'), '--weights', checkpoint, '-o', pack, '--max-binding', String(LIMIT)]);
    expect(r.status, r.stderr).toBe(0);
  });

  it('with a flipped byte in a shard, at load, naming the shard', async () => {
    const manifest = readManifest(pack);
    const shard = manifest.shards[Math.floor(manifest.shards.length / 2)]!;
    const damaged = join(work, 'damaged');
    rmSync(damaged, { recursive: true, force: true });
    mkdirSync(damaged);
    for (const f of readdirSync(pack)) writeFileSync(join(damaged, f), readFileSync(join(pack, f)));
    const bytes = readFileSync(join(damaged, shard.file));
    bytes[bytes.byteLength - 5]! ^= 0x10;
    writeFileSync(join(damaged, shard.file), bytes);
    const source = await openPackedDir(damaged, plan); // the manifest is intact
    await expect(createModelExecutor(rt, plan, source)).rejects.toThrow(
      new RegExp(`^${join(damaged, shard.file).replace(/[.[\]]/g, '\\$&')}: sha256 [0-9a-f]{64} does not match the manifest's ${shard.sha256}; refusing the damaged shard`));
  });

  it('when packed for another spec', async () => {
    const other = specOf('mixtral', 'quantize experts = int8(group = 32)', 'other').plan;
    await expect(openPackedDir(pack, other)).rejects.toThrow(/manifest\.json: packed for model "tiny-mixtral" \(spec sha256 [0-9a-f]{12}\.\.\.\), whose weights, formats or buffers differ/);
    // A larger binding keeps the same buffers here, and the pack serves it (one that shards them refuses it: see above).
    await expect(openPackedDir(pack, specOf('mixtral', CASES[0]!.quantize, 'refused-large', 2 ** 27).plan)).resolves.toBeDefined();
  });

  it('when its manifest is not one', async () => {
    const bad = join(work, 'bad-manifest');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'manifest.json'), JSON.stringify({ ...readManifest(pack), shards: [{ file: '../escape.safetensors', sha256: '0'.repeat(64), bytes: 1, tensors: [] }] }));
    await expect(openPackedWeights(packedFilesInDir(bad), plan)).rejects.toThrow(/manifest\.json: shards\[0\]\.file is not a distinct \*\.safetensors file name/);
  });
});

describe('moec pack errors', () => {
  /** Entries of `work` now, to show a failed pack left nothing (no staging directory either). */
  const entries = () => readdirSync(work).sort();

  it('exit non-zero, one line, and leave no directory behind', async () => {
    const { spec } = specOf('mixtral', CASES[0]!.quantize, 'errors');
    const checkpoint = checkpointOf('mixtral', 'errors-checkpoint');
    const out = join(work, 'errors-packed');
    const before = entries();

    const usage = await moec(['pack', spec, '-o', out]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toBe('moec pack: pack needs --weights DIR, a Hugging Face checkpoint');

    // A value int4's f16 scale cannot hold, deep in the last layer's experts: the worker packing it fails.
    const poisoned = join(work, 'poisoned-checkpoint');
    writeRandomCheckpoint(poisoned, 'mixtral', sizes, { seed: 11, wholeModel: true, shards: 3 });
    const tensor = 'model.layers.1.block_sparse_moe.experts.6.w2.weight';
    const index = JSON.parse(readFileSync(join(poisoned, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const file = join(poisoned, index.weight_map[tensor]!);
    const bytes = readFileSync(file);
    const info = parseSafetensorsHeader(bytes, bytes.byteLength, file).tensors.get(tensor)!;
    bytes.writeFloatLE(1e30, info.fileOffset + 4 * 7);
    writeFileSync(file, bytes);
    const bad = await moec(['pack', spec, '--weights', poisoned, '-o', out, '--max-binding', String(LIMIT)]);
    expect(bad.status).toBe(1);
    expect(bad.stderrLines).toHaveLength(1);
    expect(bad.stderr).toMatch(/^moec pack: layers\.1\.moe\.experts\.down: cannot store as int4\(group = 32\): element \[6, 0, 0\]: a group with max \|w\| = 1\.0+\d*e\+30 needs an int4 scale beyond the f16 range$/);
    expect(entries()).toEqual([...before, 'poisoned-checkpoint'].sort());

    const missing = join(work, 'missing-checkpoint');
    writeRandomCheckpoint(missing, 'mixtral', { ...sizes, layers: 1 }, { seed: 11, wholeModel: true });
    const short = await moec(['pack', spec, '--weights', missing, '-o', out]);
    expect(short.status).toBe(1);
    expect(short.stderr).toMatch(/^moec pack: \S+missing-checkpoint\/model\.safetensors: tensor "model\.layers\.1\.input_layernorm\.weight" not found/);
    expect(existsSync(out)).toBe(false);

    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const occupied = await moec(['pack', spec, '--weights', checkpoint, '-o', out]);
    expect(occupied.status).toBe(2);
    expect(occupied.stderr).toBe(`moec pack: ${out}: exists and is not a moec packed directory (no manifest.json of format moec-packed/1); refusing to replace it`);
    expect(readdirSync(out)).toEqual(['notes.txt']);
    rmSync(out, { recursive: true });

    // A previous pack is replaced.
    expect((await moec(['pack', spec, '--weights', checkpoint, '-o', out, '--max-binding', String(LIMIT)])).status).toBe(0);
    const first = statSync(join(out, 'manifest.json')).mtimeMs;
    const again = await moec(['pack', spec, '--weights', checkpoint, '-o', out, '--max-binding', String(LIMIT), '--workers', '1']);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(statSync(join(out, 'manifest.json')).mtimeMs).toBeGreaterThanOrEqual(first);
    expect(entries()).toEqual([...before, 'errors-packed', 'missing-checkpoint', 'poisoned-checkpoint'].sort());
  });
});
