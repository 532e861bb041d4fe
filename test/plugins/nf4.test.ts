// The nf4 example plugin (examples/plugins/nf4/): a weight format given by a plugin. Its codec
// against a plain NF4 reference written here (levels, nearest level of w / absmax, f32 absmax, a
// zero group); whole MoE blocks with NF4 expert (and shared-expert) weights on WebGPU against the
// CPU reference interpreter fed the values the codec decodes, outputs and scratch poisoned; and a
// bundle compiled with the plugin, run in a fresh Node process that loads no plugin.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../compiler/cli/command.js';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { loadPlugins } from '../../compiler/plugins/load-plugins.js';
import type { MoecPlugin } from '../../compiler/plugins/plugin-api.js';
import { PluginError, Registry } from '../../compiler/plugins/registry.js';
import { checkSpec } from '../../compiler/spec/check.js';
import type { Graph } from '../../ir/graph.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { weightFormatOf } from '../../ir/storage-format.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { dequantize, packWeight, unpackWeight, WeightCodecError } from '../../runtime/quant/weight-codec.js';
import { matrixLayout, type FormatDefinition, type FormatTable } from '../../runtime/quant/weight-format.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { ensureBuiltCli, moec, ROOT } from '../bundle/cli.js';
import { normals, randomWeights, reference, relativeError, seededRandom, specOf, type Family } from '../codegen/moe-fixtures.js';
import { checkRouting } from '../codegen/route-check.js';

const DIR = join(ROOT, 'examples', 'plugins', 'nf4');
const SPEC = join(DIR, 'nf4.moe');
const TOKEN_COUNTS = [1, 5, 9, 64];
const TOLERANCE = 1e-5;

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`nf4: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

/** The levels as moe-reference.md lists them (QLoRA / bitsandbytes). */
const LEVELS = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];

/** Plain NF4, one group at a time: absmax, the nearest level of w / absmax (ties to the lower), level * absmax in f32. */
function referenceNf4(w: Float32Array, group: number): { codes: number[]; absmax: number[]; values: Float32Array } {
  const codes: number[] = [];
  const absmax: number[] = [];
  const values = new Float32Array(w.length);
  for (let begin = 0; begin < w.length; begin += group) {
    const max = Math.max(...Array.from(w.subarray(begin, begin + group), Math.abs));
    absmax.push(max);
    for (let i = begin; i < begin + group; i++) {
      const x = max > 0 ? w[i]! / max : 0;
      let best = 0;
      for (let q = 1; q < 16; q++) if (Math.abs(x - LEVELS[q]!) < Math.abs(x - LEVELS[best]!)) best = q;
      codes.push(best);
      values[i] = Math.fround(Math.fround(LEVELS[best]!) * max);
    }
  }
  return { codes, absmax, values };
}

let plugin: MoecPlugin;
let nf4: FormatDefinition;
let registry: Registry;
let formats: FormatTable;

beforeAll(async () => {
  // The plugin imports `moec/plugin` (dist/compiler/plugins/index.js): build it first.
  ensureBuiltCli();
  plugin = ((await import(pathToFileURL(join(DIR, 'nf4.js')).href)) as { default: MoecPlugin }).default;
  nf4 = ((await import(pathToFileURL(join(DIR, 'nf4-codec.js')).href)) as { default: FormatDefinition }).default;
  registry = Registry.builtin().with(plugin);
  formats = registry.formats;
});

describe('the nf4 codec against a plain NF4 reference', () => {
  it('packs 8 codes per word and one f32 absmax per group, and decodes level * absmax', () => {
    const random = seededRandom(seed);
    const [count, rows, cols, group] = [3, 5, 64, 32];
    const w = normals(random, count * rows * cols, 0.05);
    w.fill(0, 2 * cols, 2 * cols + group); // a zero group: absmax 0, every code the level 0.0
    w[3 * cols + 7] = 0.5; // a group's absmax, positive and negative: the levels +-1 exactly
    w[3 * cols + 40] = -0.75;
    const shape = [count, rows, cols];
    const words = packWeight({ format: 'nf4', group }, w, shape, 'w', formats);
    const layout = matrixLayout({ format: 'nf4', group }, rows, cols, formats);
    expect(layout).toMatchObject({ perWord: 8, scalesPerWord: 1, valueWords: (rows * cols) / 8, scaleWords: (rows * cols) / group });
    expect(words.length).toBe(count * layout.matrixWords);
    const f32 = new Float32Array(1);
    for (let m = 0; m < count; m++) {
      const ref = referenceNf4(w.subarray(m * rows * cols, (m + 1) * rows * cols), group);
      const at = m * layout.matrixWords;
      const codes = Array.from({ length: rows * cols }, (_, i) => (words[at + (i >> 3)]! >>> (4 * (i & 7))) & 0xf);
      expect(codes).toEqual(ref.codes);
      const absmax = Array.from({ length: layout.scaleWords }, (_, g) => {
        new Uint32Array(f32.buffer)[0] = words[at + layout.valueWords + g]!;
        return f32[0]!;
      });
      expect(absmax).toEqual(ref.absmax);
    }
    const values = unpackWeight({ format: 'nf4', group }, words, shape, 'w', formats);
    expect(values).toEqual(referenceNf4(w, group).values);
    expect(dequantize({ format: 'nf4', group }, w, shape, 'w', formats)).toEqual(values);
    expect(Array.from(values.subarray(2 * cols, 2 * cols + group))).toEqual(new Array(group).fill(0));
    expect(values[3 * cols + 7]).toBe(0.5);
    expect(values[3 * cols + 40]).toBe(-0.75);
  });

  it('round-trips its own values, and quantizes random normal weights with a small error', () => {
    const random = seededRandom(seed + 1);
    const w = normals(random, 64 * 128, 1);
    const once = dequantize({ format: 'nf4', group: 64 }, w, [64, 128], 'w', formats);
    // Decoded values are levels times the absmax, and the absmax is itself a level (+-1): a fixed point.
    expect(dequantize({ format: 'nf4', group: 64 }, once, [64, 128], 'w', formats)).toEqual(once);
    let [err, norm] = [0, 0];
    for (let i = 0; i < w.length; i++) [err, norm] = [err + (w[i]! - once[i]!) ** 2, norm + w[i]! ** 2];
    expect(Math.sqrt(err / norm)).toBeLessThan(0.15);
  });

  it('names the element it cannot store, and a table without nf4 names the format', () => {
    const w = new Float32Array(64);
    w[37] = Number.NaN;
    expect(() => packWeight({ format: 'nf4', group: 32 }, w, [2, 32], 'w', formats)).toThrow(/^w: cannot store as nf4\(group = 32\): element \[1, 5\] is NaN; quantized weights must be finite$/);
    expect(() => packWeight({ format: 'nf4', group: 32 }, new Float32Array(64), [2, 32], 'w')).toThrow(WeightCodecError);
    expect(() => packWeight({ format: 'nf4', group: 32 }, new Float32Array(64), [2, 32], 'w')).toThrow(/weight format nf4 is unknown here \(known: f32, f16, bf16, int8, int4, int2, mxfp4\)/);
  });
});

describe('the nf4 plugin in the registry', () => {
  it('adds the quant kind, the format and its WGSL load; the builtin registry is unchanged', () => {
    expect(registry.kinds.get('quant', 'nf4')?.storage?.({ group: 32 })).toEqual({ bits: 4, scaleBits: 32, group: 32 });
    expect(registry.formats['nf4']).toBe(nf4);
    expect(Object.keys(registry.kernels.weightLoads)).toContain('nf4');
    expect(registry.plugins[0]!.formats).toEqual([{ name: 'nf4', runtime: join(DIR, 'nf4-codec.js') }]);
    expect(Object.keys(Registry.builtin().formats)).toEqual(['f32', 'f16', 'bf16', 'int8', 'int4', 'int2', 'mxfp4']);
  });

  it('refuses a format that clashes, has no quant kind, or whose runtime module disagrees', async () => {
    expect(() => registry.with({ ...plugin, name: 'nf4-again', kinds: [] })).toThrow(PluginError);
    expect(() => registry.with({ ...plugin, name: 'nf4-again', kinds: [] })).toThrow(/format nf4 clashes with a weight format of the same name/);
    expect(() => Registry.builtin().with({ ...plugin, kinds: [] })).toThrow(/format nf4 has no quant kind of that name with a storage cost/);
    const work = mkdtempSync(join(tmpdir(), 'moec-nf4-plugin-'));
    try {
      const file = join(work, 'wrong.mjs');
      // A plugin whose definition disagrees with what its runtime module (bundled into model.js) exports.
      writeFileSync(file, `import base from ${JSON.stringify(pathToFileURL(join(DIR, 'nf4.js')).href)};\n` +
        `export default { ...base, formats: { nf4: { ...base.formats.nf4, definition: { ...base.formats.nf4.definition, scalesPerWord: 2 } } } };\n`);
      await expect(loadPlugins([{ path: file }])).rejects.toThrow(/format nf4: the runtime module .*nf4-codec\.js exports \["nf4",8,1\] as its default, not the definition the plugin gives \(\["nf4",8,2\]\)/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('the loader takes the definition from the runtime module when the plugin leaves it out', async () => {
    const work = mkdtempSync(join(tmpdir(), 'moec-nf4-plugin-'));
    try {
      const file = join(work, 'runtime-only.mjs');
      writeFileSync(file, `import base from ${JSON.stringify(pathToFileURL(join(DIR, 'nf4.js')).href)};\n` +
        `const { definition, ...nf4 } = base.formats.nf4;\nexport default { ...base, formats: { nf4 } };\n`);
      const loaded = await loadPlugins([{ path: file }]);
      expect(loaded.formats['nf4']).toBe(nf4);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

/** Widths that every group below divides; 96 and 192 are not multiples of the 64-wide N tile. */
const H = 96;
const nf4Families: Array<Family & { compile: string }> = [
  {
    name: 'mixtral-like', hidden: H, compile: 'quantize experts = nf4(group = 32)',
    moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 96)',
  },
  {
    // group 6: four consecutive elements straddle absmaxes (the vec4 load's per-element scales).
    name: 'qwen2-moe-like', hidden: H, compile: 'quantize experts = nf4(group = 6)\n quantize shared = nf4(group = 32)',
    moe: 'experts = 12\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 96)\n shared = swiglu(intermediate = 192)\n shared_gate = sigmoid',
  },
];

function configOf(family: Family & { compile: string }): ModelConfig {
  const checked = checkSpec(specOf(family, `target = webgpu\n dtype = f32\n ${family.compile}`), `${family.name}.moe`, registry.kinds);
  if (!checked.config) throw new Error(`${family.name}: ${checked.diagnostics.map((d) => d.message).join('; ')}`);
  return checked.config;
}

/** What the GPU computes with: each weight through its format's codec (the plugin's for nf4) and back. */
const dequantizedWeights = (graph: Graph, weights: Map<string, Float32Array>): Map<string, Float32Array> =>
  new Map(graph.params.map((p) => [p.name, dequantize(weightFormatOf(p, formats), weights.get(p.name)!, p.type.shape as number[], p.name, formats)]));

describe('NF4 MoE blocks on WebGPU vs the CPU reference on the decoded weights', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
  });
  afterAll(() => rt?.destroy());

  nf4Families.forEach((family, index) => {
    it(`${family.name} (${family.compile.replace(/\n\s*/g, ', ')}): ${TOKEN_COUNTS.join(', ')} tokens`, async () => {
      const config = configOf(family);
      const graph = compileMoeBlockGraph(config, 0, { registry });
      const plan = JSON.parse(JSON.stringify(compileMoeBlockPlan(config, 0, { registry }))) as MoeBlockPlan;
      expect(plan.weights.find((w) => w.name.endsWith('experts.gate'))).toMatchObject({ format: { format: 'nf4' }, storage: 'packed' });
      expect(plan.kernels.some((k) => /fn w0_at4\(m: u32, i: u32\) -> vec4<f32>/.test(k.wgsl) && k.wgsl.includes('NF4 (plugin nf4)'))).toBe(true);
      const random = seededRandom(seed + 1000 * index);
      const weights = randomWeights(graph, random);
      const dequantized = dequantizedWeights(graph, weights);
      const executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! }, { formats: [nf4] });
      try {
        const errors: string[] = [];
        for (const tokens of TOKEN_COUNTS) {
          const x = normals(random, tokens * H, 1);
          executor.poisonScratch(tokens);
          const out = await executor.run(x, tokens);
          await rt.settle();
          expect(out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
          const routing = await checkRouting(rt.device, executor, graph, x, tokens, dequantized);
          expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
          const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
          const error = relativeError(out, reference(graph, x, tokens, dequantized), H, kept);
          errors.push(`${tokens}: ${error.toExponential(2)} (vs f32 weights ${relativeError(out, reference(graph, x, tokens, weights), H).toExponential(2)})`);
          expect(error, `${tokens} tokens`).toBeLessThan(TOLERANCE);
        }
        console.log(`nf4 ${family.name}: relative error by tokens: ${errors.join(', ')}`);
      } finally {
        executor.destroy();
      }
    });
  });

  it('a plan with an nf4 weight is refused by an executor that was not given the format', async () => {
    const plan = compileMoeBlockPlan(configOf(nf4Families[0]!), 0, { registry });
    await expect(createMoeBlockExecutor(rt, plan, { readF32: () => new Float32Array(0) })).rejects.toThrow(
      /layers\.0\.moe\.experts\.gate is stored as nf4\(group = 32\), a format this runtime does not know/,
    );
  });
});

// A fresh Node process: imports model.js and the `webgpu` package only, so no plugin is loaded.
const RUN_BUNDLE = `
import { readFileSync, writeFileSync } from 'node:fs';
import { create, globals } from 'webgpu';
const [modelJs, inputFile, outputFile, layer, tokens] = process.argv.slice(1);
Object.assign(globalThis, globals);
const m = await import(modelJs);
const file = m.parseSafetensors(new Uint8Array(readFileSync(inputFile)), inputFile);
const model = await m.load({ gpu: create([]), weights: { readF32: (name) => m.readTensorF32(file, name) } });
await model.poisonScratch(Number(layer), Number(tokens));
const out = await model.runMoeBlock(Number(layer), m.readTensorF32(file, 'hidden_states'), Number(tokens));
writeFileSync(outputFile, m.encodeSafetensors({ out: { dtype: 'F32', shape: [out.length], data: out } }));
model.destroy();
process.exit(0);
`;

describe('a bundle compiled with the nf4 plugin', () => {
  let work: string;
  let bundle: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'moec-nf4-'));
    bundle = join(work, 'tiny-nf4');
    const result = await moec(['compile', SPEC, '-o', bundle]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('carries the codec in model.js and lists the plugin and its format in the manifest', () => {
    const js = readFileSync(join(bundle, 'model.js'), 'utf8');
    expect(js).not.toMatch(/nf4-codec|moec\/plugin/); // the codec bundled, not imported; nothing of the plugin's compile side
    expect(js).not.toContain(DIR);
    expect(js).not.toMatch(/["']node:/);
    expect(js).toContain('0.07958029955625534'); // the codec's levels
    const manifest = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as { plugins: unknown[]; weights: Array<{ name: string; dtype: string }> };
    const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
    expect(manifest.plugins).toEqual([{
      name: 'nf4', file: join(DIR, 'nf4.js'), sha256: sha256(join(DIR, 'nf4.js')),
      formats: [{ name: 'nf4', runtime: join(DIR, 'nf4-codec.js'), sha256: sha256(join(DIR, 'nf4-codec.js')) }],
    }]);
    expect(manifest.weights.find((w) => w.name === 'layers.1.moe.experts.down')).toMatchObject({ dtype: 'nf4<g32>' });
  });

  for (const tokens of [3, 12]) {
    it(`runs layer 1 on ${tokens} tokens in Node with no plugin loaded, matching the reference on the decoded weights`, async () => {
      const { config, registry: specRegistry } = await loadSpec(SPEC);
      const layer = 1;
      const graph = compileMoeBlockGraph(config!, layer, { registry: specRegistry });
      const random = seededRandom(seed + 7 + tokens);
      const weights = randomWeights(graph, random);
      const x = normals(random, tokens * config!.hidden, 1);
      const input = join(work, `input-${tokens}.safetensors`);
      const output = join(work, `output-${tokens}.safetensors`);
      writeFileSync(input, encodeSafetensors({
        hidden_states: { dtype: 'F32', shape: [tokens, config!.hidden], data: x },
        ...Object.fromEntries([...weights].map(([name, data]) => [name, { dtype: 'F32' as const, shape: [data.length], data }])),
      }));
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', RUN_BUNDLE, pathToFileURL(join(bundle, 'model.js')).href, input, output, String(layer), String(tokens)],
        { cwd: ROOT, encoding: 'utf8', env: process.env, timeout: 300_000 });
      expect(run.stderr.split('\n').filter((l) => l && !/artificially reduced|XDG_RUNTIME_DIR/.test(l))).toEqual([]);
      expect(run.status).toBe(0);
      const out = readTensorF32(parseSafetensors(new Uint8Array(readFileSync(output)), output), 'out');
      expect(out.every(Number.isFinite)).toBe(true);
      const dequantized = new Map(graph.params.map((p) => [p.name, dequantize(weightFormatOf(p, specRegistry.formats), weights.get(p.name)!, p.type.shape as number[], p.name, specRegistry.formats)]));
      const error = relativeError(out, reference(graph, x, tokens, dequantized), config!.hidden);
      console.log(`nf4 bundle, layer ${layer}, ${tokens} tokens: relative error ${error.toExponential(2)}`);
      expect(error).toBeLessThan(TOLERANCE);
    });
  }
});
