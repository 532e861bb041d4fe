// Mixed precision per expert through the built CLI, on a random whole-model Mixtral checkpoint
// and a trace where a few experts take most tokens: `moec trace` runs a mixed spec (its experts in
// the most precise choice), `moec compile --weights` chooses each expert's format and prints the
// report, the bundle keeps the choice (its config and weight layout), and `moec run <bundle>`
// generates on WebGPU with prompt logits matching the interpreter fed each expert's weights
// dequantized through its own format; `moec run --layer --check` agrees for one block.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileModelGraph } from '../../compiler/pipeline.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { buildModelGraph } from '../../ir/build-model.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { dequantizeParam } from '../../ir/storage-format.js';
import { readHfWeights } from '../../runtime/hf-weights.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { seededRandom, specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { moec } from '../bundle/cli.js';
import { writeTrace, zipfCounts } from './mixed-precision-fixtures.js';

const sizes: CheckpointSizes = { hidden: 64, experts: 8, topK: 2, intermediate: 64, layers: 2, firstDense: 0 };
const MIXED = 'quantize experts = mixed(bits = 4, choices = [int2, int4, int8(group = 32)], trace = "trace.json")';
let work: string;
let dir: string;
let spec: string;
const bundle = () => join(work, 'bundle');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-mixed-cli-'));
  dir = join(work, 'checkpoint');
  writeRandomCheckpoint(dir, 'mixtral', sizes, { seed: 11, wholeModel: true });
  spec = join(work, 'tiny-mixed.moe');
  writeFileSync(spec, specText('mixtral', sizes).replace('  dtype = f32\n', `  dtype = f32\n  ${MIXED}\n`));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('quantize experts = mixed(...) from the command line', () => {
  it('moec trace runs the mixed spec before its trace exists', async () => {
    const r = await moec(['trace', spec, '--weights', dir, '--prompt-ids', '1,2,3,4', '-o', join(work, 'measured-trace.json')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('moec compile needs the weights, and a trace', async () => {
    const noWeights = await moec(['compile', spec, '-o', bundle()]);
    expect(noWeights.status).toBe(2);
    expect(noWeights.stderr).toMatch(/mixed\(\.\.\.\) chooses each expert's format from its weights: pass the checkpoint with --weights DIR/);
    const noTrace = await moec(['compile', spec, '--weights', dir, '-o', bundle()]);
    expect(noTrace.status).toBe(1);
    expect(noTrace.stderr).toMatch(/trace\.json: cannot read/);
    expect(existsSync(bundle())).toBe(false);
  });

  it('moec compile --weights chooses each expert\'s format: the report, the bundle\'s config and weight layout', async () => {
    // Zipf 2.5: the hottest expert of a layer takes about two thirds of its tokens.
    writeTrace(work, [{ layer: 0, counts: zipfCounts(8, 20000, 2.5, 3) }, { layer: 1, counts: zipfCounts(8, 20000, 2.5, 4) }]);
    const r = await moec(['compile', spec, '--weights', dir, '-o', bundle()]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/mixed precision for routed experts: 16 experts in 2 MoE layers, budget 4 code bits/);
    expect(r.stdout).toMatch(/uniform int4 /);
    const manifest = JSON.parse(readFileSync(join(bundle(), 'manifest.json'), 'utf8')) as { config: ModelConfig; weights: Array<{ name: string; dtype: string }> };
    const chosen = manifest.config.compile.expertFormats!;
    expect(Object.keys(chosen)).toEqual(['0', '1']);
    const bits = { int2: 2, int4: 4, int8: 8 } as Record<string, number>;
    const all = Object.values(chosen).flat();
    expect(all.reduce((s, k) => s + bits[k.kind]!, 0) / all.length).toBeLessThanOrEqual(4);
    expect(new Set(all.map((k) => k.kind)).size).toBeGreaterThan(1);
    // The weight layout names each expert's storage (runs of one format in expert order).
    const gate = manifest.weights.find((w) => w.name === 'layers.0.moe.experts.gate')!;
    expect(gate.dtype).toMatch(/^mixed<.*>$/);
    for (const k of new Set(chosen[0]!.map((c) => c.kind))) expect(gate.dtype).toContain(`${k}<g32>`);
  });

  it('moec run <bundle> generates, its prompt logits those of the interpreter on each expert\'s dequantized weights', async () => {
    const prompt = [5, 17, 3, 42, 8, 1, 60];
    const logitsOut = join(work, 'logits.safetensors');
    const r = await moec(['run', bundle(), '--weights', dir, '--prompt-ids', prompt.join(','), '--max-tokens', '6', '--json', '--logits-out', logitsOut]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const config = (JSON.parse(readFileSync(join(bundle(), 'manifest.json'), 'utf8')) as { config: ModelConfig }).config;
    const stored = compileModelGraph(config); // each param in its storage dtype: mixed for the experts
    const graph = buildModelGraph(config);
    const checkpoint = CheckpointDir.open(dir);
    const hf = await readHfWeights('mixtral', checkpointReader(checkpoint), graph.params.map((p) => ({ name: p.name, shape: p.type.shape as number[] })), { config: checkpoint.config });
    const dequantized = new Map(stored.params.map((p) => [p.name, dequantizeParam(p, hf.get(p.name)!)]));
    const want = new ReferenceSession(graph, (p) => dequantized.get(p.name)!).forward(prompt);
    const logits = readTensorF32(parseSafetensors(new Uint8Array(readFileSync(logitsOut)), logitsOut), 'logits');
    const error = relativeError(logits, want.data);
    console.log(`mixed-precision bundle vs interpreter, prompt logits: relative error ${error.toExponential(2)}`);
    expect(error).toBeLessThan(1e-4);
    // Against the unquantized model the logits do move: the check above is not vacuous.
    const f32 = new ReferenceSession(graph, (p) => hf.get(p.name)!).forward(prompt);
    expect(relativeError(logits, f32.data)).toBeGreaterThan(1e-3);
    expect((JSON.parse(r.stdout) as { tokens: number[] }).tokens).toHaveLength(6);
  });

  it('moec pack writes the experts in their chosen formats; the bundle gives the same logits from the pack', async () => {
    const packed = join(work, 'packed');
    const pack = await moec(['pack', spec, '--weights', dir, '-o', packed]);
    expect(pack.stderr).toBe('');
    expect(pack.status).toBe(0);
    const prompt = [9, 2, 33, 7];
    const fromHf = join(work, 'hf.logits.safetensors');
    const fromPack = join(work, 'packed.logits.safetensors');
    expect((await moec(['run', bundle(), '--weights', dir, '--prompt-ids', prompt.join(','), '--max-tokens', '2', '--logits-out', fromHf])).status).toBe(0);
    const r = await moec(['run', bundle(), '--weights', packed, '--prompt-ids', prompt.join(','), '--max-tokens', '2', '--logits-out', fromPack]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(fromPack)).toEqual(readFileSync(fromHf));
  });

  it('moec run --layer --check: one mixed block against the interpreter', async () => {
    const random = seededRandom(5);
    const tokens = 19;
    const hidden = Float32Array.from({ length: tokens * sizes.hidden }, () => 2 * random() - 1);
    const input = join(work, 'in.safetensors');
    writeFileSync(input, encodeSafetensors({ hidden_states: { dtype: 'F32', shape: [tokens, sizes.hidden], data: hidden } }));
    const r = await moec(['run', spec, '--weights', dir, '--layer', '1', '--input', input, '--output', join(work, 'out.safetensors'), '--check']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/experts int2\(group = 32\)|experts int4\(group = 32\)/);
  });
});
