// `moec compile`: the bundle's files, what model.js may not contain, model.d.ts against a consumer
// program, manifest.json, and that a failed compile leaves nothing behind.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileBundleData } from '../../compiler/compile-bundle.js';
import { DEFAULT_LOAD_CANDIDATES } from '../../runtime/tuning/load-candidates.js';
import { deduplicateKernels } from '../../codegen/bundle/kernel-table.js';
import { writeDirectoryAtomic } from '../../codegen/bundle/write-bundle.js';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { inflateModelPlan, inflatePlan } from '../../runtime/bundle-plans.js';
import { compileModel } from '../../compiler/model-plan.js';
import { specText, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { moec, ROOT } from './cli.js';

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

// Layers 1 and 2 are MoE (DeepSeek first_k_dense_replace = 1): the layer union is not 0..n-1.
const SIZES: CheckpointSizes = { hidden: 16, experts: 4, topK: 2, intermediate: 12, layers: 3, firstDense: 1 };
const SPEC = specText('deepseek_v3', { ...SIZES, groups: 2, topkGroups: 1 }, 'tiny-compile');

let work: string;
let specPath: string;
let bundle: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'moec-compile-'));
  specPath = join(work, 'tiny.moe');
  writeFileSync(specPath, SPEC);
  bundle = join(work, 'out', 'tiny');
  const result = await moec(['compile', specPath, '-o', bundle]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(result.stdout).toMatch(/tiny-compile, 2 MoE layer\(s\), \d+ distinct kernel\(s\)/);
  expect(result.stdout).toContain('dispatches per MoE block: prefill 5, decode 3 (T <= 8), layers 1, 2');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const read = (name: string): string => readFileSync(join(bundle, name), 'utf8');

describe('moec compile', () => {
  it('writes model.js, model.d.ts, manifest.json, README.md and package.json, and nothing else anywhere', () => {
    expect(readdirSync(bundle).sort()).toEqual(['README.md', 'manifest.json', 'model.d.ts', 'model.js', 'package.json']);
    expect(readdirSync(join(work, 'out'))).toEqual(['tiny']); // no temporary directory left
    expect(JSON.parse(read('package.json'))).toMatchObject({ type: 'module', main: './model.js', types: './model.d.ts' });
    expect(read('README.md')).toMatch(/## Generating tokens[\s\S]*generate\(\[1, 2, 3\][\s\S]*## Node[\s\S]*create\(\[\]\)[\s\S]*## Browser/);
  });

  it('model.js is one ES module with no Node built-ins, no require, no Handlebars, no compiler', () => {
    const js = read('model.js');
    expect(js).not.toMatch(/\brequire\(/);
    expect(js).not.toMatch(/["']node:/);
    expect(js).not.toMatch(/from\s*["'](fs|path|url|os|crypto|child_process|module)["']/);
    expect(js).not.toMatch(/handlebars/i);
    // No unrendered Handlebars expression ({{name}}, {{#if x}}); the chat-template engine's own "{{" strings are fine.
    expect(js).not.toMatch(/\{\{[#/]?[A-Za-z_][\w.]*(\s+[\w.]+)*\s*\}\}/);
    expect(js).not.toMatch(/ts-morph|esbuild|chevrotain/);
    expect(js).toMatch(/export\s*\{[^}]*\bload\b/);
    // About 140 KB of it is the tokenizer and chat-template engines generateText uses; about 70 KB each the two load-time
    // candidate plan sets (their unrolled GEMM tiles and decode pass widths are long WGSL that gzip shrinks to a few KB).
    expect(js.length).toBeLessThan(760_000);
  });

  it('kernels are deduplicated across layers and the whole-model plan: each distinct WGSL appears once in model.js', () => {
    const manifest = JSON.parse(read('manifest.json'));
    const js = read('model.js');
    expect(manifest.kernels.length).toBeGreaterThan(0);
    // Layers 1 and 2 have the same shapes, so every MoE block kernel serves both; the model plan runs them too.
    const blockKernels = manifest.kernels.filter((k: { layers: number[] }) => k.layers.length > 0);
    expect(blockKernels.length).toBeGreaterThan(0);
    for (const k of blockKernels) expect([k.layers, k.model]).toEqual([[1, 2], true]);
    expect(manifest.kernels.filter((k: { model: boolean }) => !k.model)).toEqual([]);
    // One kernel may hold several entry points (the sampler's): count them in the compiler's table.
    const config = checkSpec(SPEC, 'tiny.moe').config!;
    const table = compileBundleData(config, SPEC, undefined, {}, { wholeModel: true, loadCandidates: { count: DEFAULT_LOAD_CANDIDATES } }).data.kernels;
    expect(Object.keys(table).sort()).toEqual(manifest.kernels.map((k: { id: string }) => k.id).sort());
    const entryPoints = Object.values(table).reduce((n, code) => n + (code.match(/@compute/g) ?? []).length, 0);
    expect((js.match(/@compute/g) ?? []).length).toBe(entryPoints);
  });

  it('manifest.json: spec sha256, moec version, kernels with hashes, tuning, weight layout with HF names, file hashes', () => {
    const manifest = JSON.parse(read('manifest.json'));
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
    expect(manifest).toMatchObject({
      format: 'moec-bundle/1', model: 'tiny-compile', moecVersion: version,
      spec: { file: 'tiny.moe', sha256: sha256(SPEC) }, moeLayers: [1, 2],
      tuning: { source: 'defaults: no tuning cache' }, hfModelTypes: ['deepseek_v3'],
    });
    for (const k of manifest.kernels) {
      expect(k.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(k.id).toBe(k.sha256.slice(0, 16));
      expect(k.bytes).toBeGreaterThan(0);
      expect(k.names.length).toBeGreaterThan(0);
    }
    expect(new Set(manifest.kernels.map((k: { id: string }) => k.id)).size).toBe(manifest.kernels.length);
    for (const [name, { bytes, sha256: hash }] of Object.entries<{ bytes: number; sha256: string }>(manifest.files)) {
      const content = readFileSync(join(bundle, name));
      expect([name, content.byteLength, sha256(content)]).toEqual([name, bytes, hash]);
    }
    const byName = Object.fromEntries(manifest.weights.map((w: { name: string }) => [w.name, w]));
    expect(byName['layers.1.moe.router.weight']).toEqual({
      layer: 1, name: 'layers.1.moe.router.weight', shape: [4, 16], dtype: 'f32', hf: { deepseek_v3: 'model.layers.1.mlp.gate.weight' },
    });
    expect(byName['layers.2.moe.router.correction_bias'].hf.deepseek_v3).toBe('model.layers.2.mlp.gate.e_score_correction_bias');
    expect(byName['layers.2.moe.experts.down']).toMatchObject({ shape: [4, 16, 12], hf: { deepseek_v3: 'model.layers.2.mlp.experts.{e}.down_proj.weight stacked over experts e' } });
    expect(byName['layers.1.moe.shared.up'].hf.deepseek_v3).toBe('model.layers.1.mlp.shared_experts.up_proj.weight');
    expect(manifest.config.moe.topK).toBe(2);
  });

  it('--max-binding: the plans are compiled for that storage binding size; a bad value is a usage error', async () => {
    const out = join(work, 'out', 'big-binding');
    const big = await moec(['compile', specPath, '-o', out, '--max-binding', String(1 << 30)]);
    expect([big.status, big.stderr]).toEqual([0, '']);
    const model = readFileSync(join(out, 'model.js'), 'utf8');
    expect(model).toContain(`maxStorageBufferBindingSize:${1 << 30}`);
    const tight = await moec(['compile', specPath, '-o', join(work, 'out', 'tight'), '--max-binding', '1024']);
    expect([tight.status, tight.stderr]).toEqual([1, expect.stringContaining('one run cannot hold a single token')]);
    const bad = await moec(['compile', specPath, '-o', join(work, 'out', 'bad'), '--max-binding', '12']);
    expect([bad.status, bad.stderr]).toEqual([2, expect.stringContaining('--max-binding must be a byte count')]);
    for (const dir of ['tight', 'bad']) expect(existsSync(join(work, 'out', dir))).toBe(false);
  });

  it('manifest.json: per plan and path, the kernels dispatched, their number and the tiles the passes chose', () => {
    const manifest = JSON.parse(read('manifest.json'));
    const bundled = new Set(manifest.kernels.flatMap((k: { names: string[] }) => k.names));
    expect(manifest.plans.map((p: { layer: number }) => p.layer)).toEqual([1, 2]);
    for (const plan of manifest.plans) {
      // DeepSeek-V3 with a shared expert: router, align, gate/up and down (the shared expert grouped in), combine; decode fused into 3.
      expect(plan.prefill.dispatches).toBe(5);
      expect(plan.decode).toMatchObject({ dispatches: 3, maxTokens: 8, tiles: [{ rows: 32 }] });
      expect(plan.prefill.tiles).toEqual([{ bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 }]);
      for (const path of [plan.prefill, plan.decode]) {
        expect(path.kernels).toHaveLength(path.dispatches);
        for (const k of path.kernels) expect(bundled.has(k), k).toBe(true);
      }
    }
    const { loadCandidates, ...tuning } = manifest.tuning;
    expect(tuning).toEqual({ source: 'defaults: no tuning cache', gemmTile: { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 }, gemvRows: 32, decodeMaxTokens: 8 });
    expect(loadCandidates).toMatchObject({ layer: 1, prefillTokens: 256, sets: [{ id: 'c1' }, { id: 'c2' }] }); // --load-candidates' default
    expect(manifest.plugins).toEqual([]);
  });

  it('manifest.json: the whole model, its dispatches per path and per generated token, its kernels, context and KV cache', () => {
    const manifest = JSON.parse(read('manifest.json'));
    const model = manifest.wholeModel;
    expect(model).toMatchObject({ available: true, vocab: 64, context: 4096, kvCache: 'f32', decode: { maxTokens: 8 } });
    const bundled = new Map(manifest.kernels.map((k: { id: string; names: string[] }) => [k.id, k.names]));
    const names = new Set(model.kernels.flatMap((id: string) => bundled.get(id) as string[]));
    for (const path of [model.prefill, model.decode]) {
      expect(path.kernels).toHaveLength(path.dispatches);
      for (const k of path.kernels) expect(names.has(k), k).toBe(true);
    }
    // Embedding, 3 layers (one dense, two MoE with the MoE blocks' dispatches), final norm, LM head.
    expect(model.decode.kernels[0]).toMatch(/^embed_/);
    expect(model.decode.kernels.at(-1)).toMatch(/^dense_gemv_/);
    expect(model.prefill.kernels.filter((k: string) => k.startsWith('router_'))).toHaveLength(2);
    expect(model.sampler.kernels).toHaveLength(model.sampler.dispatches);
    expect(model.dispatchesPerToken).toBe(model.decode.dispatches + model.sampler.dispatches);
    // Kernels of the load-time candidates' whole-model plans are marked `model` too.
    expect(manifest.kernels.filter((k: { model: boolean }) => k.model).map((k: { id: string }) => k.id)).toEqual(expect.arrayContaining(model.kernels));
    expect(read('README.md')).toContain(`${model.dispatchesPerToken} GPU dispatches per generated token`);
  });

  it('model.d.ts types the API: literal config, the MoE layer union, load(), forward/generate and the weight helpers', () => {
    const consumer = join(bundle, 'consumer.ts');
    writeFileSync(consumer, `
import { bundleInfo, config, hfWeightsFromSafetensors, load, ModelError, moeLayers, type GenerateOptions, type MoeLayer, type WeightSource } from './model.js';
const hidden: 16 = config.hidden;
const experts: 4 = config.moe.experts;
const first: MoeLayer = moeLayers[0];
const version: string = bundleInfo.moecVersion;
export async function run(gpu: GPU, bytes: Uint8Array): Promise<Float32Array> {
  const model = await load({ gpu, weights: hfWeightsFromSafetensors('deepseek_v3', [{ name: 'model.safetensors', bytes }]) });
  const source: WeightSource = { readF32: (_name, shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)) };
  await load({ weights: source, defaultLimits: true });
  await load({ weights: 'https://example.com/checkpoint/' });
  const tuned = await load({ weights: source, tune: 'first-load', tuneBudgetMs: 2000, onWarning: (m: string) => console.log(m) });
  const chosen: string | undefined = tuned.loadTuning?.outcome?.chosen;
  void chosen;
  // @ts-expect-error tune takes 'first-load' only
  await load({ weights: source, tune: 'always' });
  // @ts-expect-error layer 0 is dense: not a MoE layer
  await model.runMoeBlock(0, new Float32Array(hidden), 1);
  // @ts-expect-error weights are required
  await load({ gpu });
  // @ts-expect-error the config is literal
  const wrong: 32 = config.hidden;
  void [experts, version, wrong];
  const out = await model.runMoeBlock(first, new Float32Array(hidden), 1);
  await model.runMoeBlock(2, out, 1);
  const logits: Float32Array = await model.forward([1, 2, 3]);
  await model.forward(Int32Array.of(4));
  const options: GenerateOptions = { maxTokens: 8, temperature: 0.8, topK: 20, topP: 0.9, seed: 42, stop: [0] };
  const ids: number[] = [];
  for await (const id of model.generate([1, 2, 3], options)) ids.push(id);
  model.reset();
  await model.prepare();
  const sizes: number[] = [model.vocab, model.context, model.length, logits.length, ids.length];
  // @ts-expect-error ids are numbers
  await model.forward(['1']);
  // @ts-expect-error maxTokens is required
  model.generate([1], { temperature: 1 });
  // @ts-expect-error seed is a number
  model.generate([1], { maxTokens: 1, seed: '42' });
  try {
    model.generate([999], { maxTokens: 1 });
  } catch (e) {
    if (e instanceof ModelError) void e.message;
  }
  void sizes;
  model.dispose();
  model.destroy();
  return out;
}
`);
    const program = ts.createProgram([consumer], {
      strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['@webgpu/types'], typeRoots: [join(ROOT, 'node_modules')],
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') +
      (d.file ? ` (${d.file.fileName.replace(bundle, '<bundle>')}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1})` : ''));
    expect(diagnostics).toEqual([]);
  });
});

describe('stored plans', () => {
  it('every layer reads back exactly the plan the compiler made; equal plans share one template', () => {
    const spec = specText('qwen3_moe', { hidden: 16, experts: 4, topK: 2, intermediate: 12, layers: 12 });
    const config = checkSpec(spec, 'q.moe').config!;
    const { data } = compileBundleData(config, spec);
    expect(data.moeLayers).toHaveLength(12);
    expect(data.planTemplates).toHaveLength(1);
    for (const layer of data.moeLayers) {
      const expected = compileMoeBlockPlan(config, layer);
      expect(inflatePlan(data.plans[String(layer)], layer, data.planTemplates, data.kernels)).toEqual(expected);
    }
  });

  it('the whole-model plan reads back exactly; its layers share runs, so it hardly grows with depth', () => {
    const sizes = { hidden: 16, experts: 4, topK: 2, intermediate: 12 };
    const stored = (family: 'qwen3_moe' | 'gpt_oss' | 'deepseek_v3', layers: number) => {
      const spec = specText(family, { ...sizes, layers, firstDense: 1 });
      const config = checkSpec(spec, 'm.moe').config!;
      const { data } = compileBundleData(config, spec, undefined, {}, { wholeModel: true });
      expect(inflateModelPlan(data.model!, data.kernels)).toEqual(compileModel(config).plan);
      return JSON.stringify(data.model).length;
    };
    for (const family of ['qwen3_moe', 'gpt_oss', 'deepseek_v3'] as const) {
      // Past the first few layers (the first reads the embedding; gpt-oss alternates two kinds), each adds a few references.
      const [four, sixteen] = [stored(family, 4), stored(family, 16)];
      console.log(`${family}: stored model plan ${four} bytes at 4 layers, ${sixteen} at 16`);
      expect(sixteen).toBeLessThan(1.1 * four);
    }
  });

  it('a plan that would not survive the layer substitution is stored whole', () => {
    const wgsl = '@compute @workgroup_size(1) fn main() {}';
    const odd = { name: 'm.moe_block_3', weights: ['layers.3.moe.a', 'already {layer}'], kernels: [{ name: 'k', wgsl }] };
    const normal = { name: 'm.moe_block_4', weights: ['layers.4.moe.a', 'layers.14.moe.a'], kernels: [{ name: 'k', wgsl }] };
    const table = deduplicateKernels(new Map<number, unknown>([[3, odd], [4, normal]]));
    expect(table.planTemplates).toHaveLength(1);
    expect(Object.keys(table.kernels)).toHaveLength(1);
    expect(inflatePlan(table.plans['3'], 3, table.planTemplates, table.kernels)).toEqual(odd);
    expect(inflatePlan(table.plans['4'], 4, table.planTemplates, table.kernels)).toEqual(normal);
    expect(table.plans['4']).toEqual({ $template: 0 });
  });
});

describe('moec compile is atomic', () => {
  it('a spec with an error writes no directory', async () => {
    const bad = join(work, 'bad.moe');
    writeFileSync(bad, SPEC.replace('top_k = 2', 'top_k = 9'));
    const target = join(work, 'bad-out', 'tiny');
    const result = await moec(['compile', bad, '-o', target]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/bad\.moe:\d+:\d+/);
    expect(existsSync(join(work, 'bad-out'))).toBe(false);
  });

  it('refuses to replace a directory that is not a bundle, and leaves it alone', async () => {
    const target = join(work, 'mine');
    mkdirSync(target);
    writeFileSync(join(target, 'notes.txt'), 'keep me');
    const result = await moec(['compile', specPath, '-o', target]);
    expect(result.status).toBe(2);
    expect(result.stderrLines).toEqual([`moec compile: ${target}: exists and is not a moec bundle (no manifest.json); refusing to replace it`]);
    expect(readdirSync(target)).toEqual(['notes.txt']);
    expect(readdirSync(work).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('replaces a previous bundle whole', async () => {
    const target = join(work, 'again');
    expect((await moec(['compile', specPath, '-o', target])).status).toBe(0);
    writeFileSync(join(target, 'stale.txt'), 'from an older compile');
    expect((await moec(['compile', specPath, '-o', target])).status).toBe(0);
    expect(readdirSync(target)).not.toContain('stale.txt');
    expect(readdirSync(work).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('an error while writing leaves neither the target nor a temporary directory', () => {
    const parent = mkdtempSync(join(work, 'w-'));
    const target = join(parent, 'bundle');
    // The second file cannot be written (its folder does not exist): the first must not survive either.
    expect(() => writeDirectoryAtomic(target, { 'model.js': 'export {}', 'no/such/dir.txt': 'x' })).toThrow(/ENOENT/);
    expect(readdirSync(parent)).toEqual([]);
    // And with a previous bundle there, it stays as it was.
    writeDirectoryAtomic(target, { 'manifest.json': '{}', 'model.js': 'old' });
    expect(() => writeDirectoryAtomic(target, { 'model.js': 'new', 'no/such/dir.txt': 'x' })).toThrow(/ENOENT/);
    expect(readdirSync(parent)).toEqual(['bundle']);
    expect(readFileSync(join(target, 'model.js'), 'utf8')).toBe('old');
  });
});
