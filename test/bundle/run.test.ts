// `moec run` through the built CLI: every family's random checkpoint on WebGPU (Dawn on lavapipe
// here) against the CPU interpreter, from a spec and from a compiled bundle; and the errors a
// user can cause, each one line naming the file and the tensor, with nothing written.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import { openDevice } from '../../runtime/device.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { encodeSafetensors, type TensorToEncode } from '../../runtime/safetensors-encode.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { FAMILIES, specText, writeHiddenStates, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';
import { moec, ROOT } from './cli.js';
import { relativeError } from '../../ir/interpret/relative-error.js';

// Widths that are not multiples of a tile, so kernels meet partial tiles.
const sizesOf = (family: Family): CheckpointSizes => ({
  hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 2,
  ...(family.startsWith('deepseek') ? { firstDense: 1 } : {}),
  ...(family === 'deepseek_v3' ? { groups: 3, topkGroups: 2 } : {}),
  ...(family === 'qwen2_moe' ? { sharedIntermediate: 28 } : {}),
});

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-run-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Case {
  family: Family;
  dir: string;
  spec: string;
  layer: number;
  tokens: number;
  input: string;
}

function makeCase(family: Family, index: number, options: { shards?: number; dtype?: 'F32' | 'BF16' } = {}): Case {
  const sizes = sizesOf(family);
  const dir = join(work, family);
  const written = writeRandomCheckpoint(dir, family, sizes, { seed: 100 + index, ...options });
  const spec = join(work, `${family}.moe`);
  writeFileSync(spec, specText(family, sizes));
  const tokens = index % 2 ? 13 : 3; // prefill (grouped GEMM) and decode (GEMV) paths
  const input = join(work, `${family}.in.safetensors`);
  writeHiddenStates(input, tokens, sizes.hidden, 200 + index);
  return { family, dir, spec, layer: written.moeLayers[written.moeLayers.length - 1]!, tokens, input };
}

/** The CPU interpreter on the same spec, checkpoint and input. */
async function reference(c: Case): Promise<Float32Array> {
  const config = checkSpec(readFileSync(c.spec, 'utf8'), c.spec).config!;
  const graph = compileMoeBlockGraph(config, c.layer);
  const { weights } = openHfCheckpoint(c.dir);
  const values = new Map<string, Float32Array>();
  for (const p of graph.params) values.set(p.name, await weights.readF32(p.name, p.type.shape as number[]));
  const x = readTensorF32(parseSafetensors(new Uint8Array(readFileSync(c.input)), c.input), 'hidden_states');
  const out = interpretGraph(graph, { hidden_states: { shape: [c.tokens, config.hidden], data: x } }, (p) => values.get(p.name)!);
  return out[graph.outputs[0]!.name]!.data as Float32Array;
}

function readOutput(path: string, tokens: number, hidden: number): Float32Array {
  const file = parseSafetensors(new Uint8Array(readFileSync(path)), path);
  expect(file.tensors.get('hidden_states')).toMatchObject({ dtype: 'F32', shape: [tokens, hidden] });
  return readTensorF32(file, 'hidden_states');
}

const runArgs = (c: Case, output: string, target = c.spec): string[] =>
  ['run', target, '--weights', c.dir, '--layer', String(c.layer), '--input', c.input, '--output', output];

describe('moec run: every family on WebGPU vs the CPU interpreter', () => {
  FAMILIES.forEach((family, index) => {
    // One family sharded (with an index), one stored as BF16.
    const options = family === 'qwen2_moe' ? { shards: 3 } : family === 'olmoe' ? { dtype: 'BF16' as const } : {};
    it(`${family}${options.shards ? ' (3 shards)' : ''}${options.dtype ? ' (BF16)' : ''}`, async () => {
      const c = makeCase(family, index, options);
      const output = join(work, `${family}.out.safetensors`);
      const result = await moec(runArgs(c, output));
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const got = readOutput(output, c.tokens, sizesOf(family).hidden);
      const error = relativeError(got, await reference(c));
      console.log(`${family}: layer ${c.layer}, ${c.tokens} tokens: relative error ${error.toExponential(1)}`);
      expect(error).toBeLessThan(1e-4);
    });
  });

  it('a compiled bundle directory runs the same, and --check reports the agreement', async () => {
    const c = makeCase('gpt_oss', 101);
    const bundle = join(work, 'gpt-oss-bundle');
    expect((await moec(['compile', c.spec, '-o', bundle])).status).toBe(0);
    const output = join(work, 'bundle.out.safetensors');
    const result = await moec([...runArgs(c, output, bundle), '--check']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const reported = Number(/relative error vs CPU reference: (\S+)/.exec(result.stdout)?.[1]);
    expect(reported).toBeLessThan(1e-4);
    expect(relativeError(readOutput(output, c.tokens, 24), await reference(c))).toBeLessThan(1e-4);
  });
});

describe('moec run --check with f16 activations (compile dtype = f16)', () => {
  it('a compiled bundle stores activations in f16 and agrees with the f32 reference to f16 precision', async (ctx) => {
    const rt = await openDevice({ gpu: createNodeGpu() });
    const hasF16 = rt.features.has('shader-f16');
    rt.destroy();
    if (!hasF16) return ctx.skip('this adapter has no shader-f16');
    const c = makeCase('qwen2_moe', 105); // 13 tokens: the grouped-GEMM path, with the gated shared expert
    writeFileSync(c.spec, readFileSync(c.spec, 'utf8').replace('  dtype = f32\n', '  dtype = f16\n'));
    const bundle = join(work, 'qwen2-moe-f16-bundle');
    expect((await moec(['compile', c.spec, '-o', bundle])).status).toBe(0);
    expect(readFileSync(join(bundle, 'model.js'), 'utf8')).toContain('enable f16;');
    const output = join(work, 'f16.out.safetensors');
    const result = await moec([...runArgs(c, output, bundle), '--check']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const reported = Number(/relative error vs CPU reference: (\S+)/.exec(result.stdout)?.[1]);
    console.log(`qwen2_moe, f16 activations, ${c.tokens} tokens: --check relative error ${reported}`);
    expect(reported).toBeGreaterThan(1e-6); // really rounded to f16: f32 runs agree to ~1e-7
    expect(reported).toBeLessThan(5e-3);
  });
});

describe('moec run --check with quantized weights', () => {
  it('the CPU reference computes with the dequantized values the GPU decodes', async () => {
    const c = makeCase('qwen2_moe', 103); // 13 tokens: the grouped-GEMM path
    // hidden 24, intermediate 20, shared 28: group 4 divides every reduced dimension.
    const spec = readFileSync(c.spec, 'utf8').replace('  dtype = f32\n', '  dtype = f32\n  quantize experts = int4(group = 4)\n  quantize shared = int8(group = 4)\n');
    writeFileSync(c.spec, spec);
    const output = join(work, 'quantized.out.safetensors');
    const result = await moec([...runArgs(c, output), '--check']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('CPU reference used the quantized weights (experts int4(group = 4), shared int8(group = 4)), dequantized exactly as the GPU decodes them');
    const reported = Number(/relative error vs CPU reference: (\S+)/.exec(result.stdout)?.[1]);
    console.log(`qwen2_moe, int4 experts and int8 shared expert, ${c.tokens} tokens: --check relative error ${reported}`);
    expect(reported).toBeLessThan(1e-4);
    // The f32 reference is far off: the run really used the quantized values.
    expect(relativeError(readOutput(output, c.tokens, 24), await reference(c))).toBeGreaterThan(1e-3);
  });
});

describe('moec run --check: a non-finite output', () => {
  it('fails naming the first non-finite element, and writes nothing', async () => {
    const c = makeCase('qwen2_moe', 105); // the shared expert passes a NaN input row through to the output
    const x = readTensorF32(parseSafetensors(new Uint8Array(readFileSync(c.input)), c.input), 'hidden_states');
    x.fill(Number.NaN, 24, 2 * 24);
    const input = join(work, 'nan-row.in.safetensors');
    writeFileSync(input, encodeSafetensors({ hidden_states: { dtype: 'F32', shape: [c.tokens, 24], data: x } }));
    const output = join(work, 'nan-row.out.safetensors');
    const result = await moec([...runArgs({ ...c, input }, output), '--check']);
    expect(result.status).toBe(1);
    expect(result.stderrLines).toEqual([`moec run: layer ${c.layer}: the GPU output is not finite: hidden_states[1, 0] = NaN ` +
      `(that token's input is not finite either); ${output} not written`]);
    expect(existsSync(output)).toBe(false);
  });
});

describe('moec run --check: gpt-oss with MXFP4 experts, as the released checkpoints store them', () => {
  // MXFP4 blocks hold 32 inputs: hidden and intermediate are multiples of 32.
  const sizes: CheckpointSizes = { hidden: 32, experts: 4, topK: 2, intermediate: 32, layers: 2 };

  function mxfp4Case(tokens: number, experts: 'f32' | 'mxfp4(group = 32)'): Case {
    const dir = join(work, 'gpt-oss-mxfp4');
    if (!existsSync(dir)) writeRandomCheckpoint(dir, 'gpt_oss', sizes, { seed: 104, mxfp4Experts: true, dtype: 'BF16' });
    const spec = join(work, `gpt-oss-mxfp4.${experts === 'f32' ? 'f32' : 'mxfp4'}.moe`);
    const quantize = experts === 'f32' ? '' : `  quantize experts = ${experts}\n`;
    writeFileSync(spec, specText('gpt_oss', sizes).replace('  dtype = f32\n', `  dtype = f32\n${quantize}`));
    const input = join(work, `gpt-oss-mxfp4.${tokens}.in.safetensors`);
    writeHiddenStates(input, tokens, sizes.hidden, 300 + tokens);
    return { family: 'gpt_oss', dir, spec, layer: 1, tokens, input };
  }

  async function checked(c: Case, name: string): Promise<{ stdout: string; output: Float32Array; error: number }> {
    const output = join(work, `${name}.out.safetensors`);
    const result = await moec([...runArgs(c, output), '--check']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const error = Number(/relative error vs CPU reference: (\S+)/.exec(result.stdout)?.[1]);
    console.log(`gpt-oss MXFP4 checkpoint, ${name}, ${c.tokens} tokens: --check relative error ${error}`);
    expect(error).toBeLessThan(1e-4);
    return { stdout: result.stdout, output: readOutput(output, c.tokens, sizes.hidden), error };
  }

  it('with an mxfp4 spec (lossless re-pack) and an f32 spec: both match the CPU reference, and each other', async () => {
    const mxfp4 = await checked(mxfp4Case(13, 'mxfp4(group = 32)'), 'mxfp4-spec');
    expect(mxfp4.stdout).toContain('CPU reference used the quantized weights (experts mxfp4(group = 32))');
    const f32 = await checked(mxfp4Case(13, 'f32'), 'f32-spec');
    expect(f32.stdout).not.toContain('quantized weights');
    // The checkpoint's values re-pack exactly: both runs compute with the same weights.
    expect(relativeError(mxfp4.output, f32.output)).toBeLessThan(1e-5);
    expect(relativeError(f32.output, await reference(mxfp4Case(13, 'f32')))).toBeLessThan(1e-4);
  });

  it('the decode path (3 tokens) with an mxfp4 spec', async () => {
    await checked(mxfp4Case(3, 'mxfp4(group = 32)'), 'mxfp4-decode');
  });
});

describe('moec run --check: deepseek_v3 with block-scaled FP8 experts, as the released checkpoints store them', () => {
  const sizes = sizesOf('deepseek_v3');
  // 8 x 16 blocks: every expert matrix ([20, 24] and [24, 20]) spans several, partial at the edges.
  const fp8Experts = { blockSize: [8, 16] } as const;

  function fp8Case(tokens: number, experts: 'f32' | 'int4(group = 4)'): Case {
    const dir = join(work, 'deepseek-v3-fp8');
    if (!existsSync(dir)) writeRandomCheckpoint(dir, 'deepseek_v3', sizes, { seed: 105, fp8Experts, dtype: 'BF16', shards: 2 });
    const spec = join(work, `deepseek-v3-fp8.${experts === 'f32' ? 'f32' : 'int4'}.moe`);
    const quantize = experts === 'f32' ? '' : `  quantize experts = ${experts}\n`;
    writeFileSync(spec, specText('deepseek_v3', sizes).replace('  dtype = f32\n', `  dtype = f32\n${quantize}`));
    const input = join(work, `deepseek-v3-fp8.${tokens}.in.safetensors`);
    writeHiddenStates(input, tokens, sizes.hidden, 400 + tokens);
    return { family: 'deepseek_v3', dir, spec, layer: 1, tokens, input };
  }

  async function checked(c: Case, name: string): Promise<{ stdout: string; output: Float32Array }> {
    const output = join(work, `${name}.out.safetensors`);
    const result = await moec([...runArgs(c, output), '--check']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const error = Number(/relative error vs CPU reference: (\S+)/.exec(result.stdout)?.[1]);
    console.log(`deepseek_v3 FP8 checkpoint, ${name}, ${c.tokens} tokens: --check relative error ${error}`);
    expect(error).toBeLessThan(1e-4);
    return { stdout: result.stdout, output: readOutput(output, c.tokens, sizes.hidden) };
  }

  it('with an f32 spec (prefill, 13 tokens): matches the CPU reference', async () => {
    const c = fp8Case(13, 'f32');
    const f32 = await checked(c, 'fp8-f32-spec');
    expect(f32.stdout).not.toContain('quantized weights');
    expect(relativeError(f32.output, await reference(c))).toBeLessThan(1e-4);
  });

  it('with an int4 experts spec, prefill (13 tokens) and decode (3 tokens)', async () => {
    for (const tokens of [13, 3]) {
      const c = fp8Case(tokens, 'int4(group = 4)');
      const int4 = await checked(c, `fp8-int4-spec-${tokens}`);
      expect(int4.stdout).toContain('CPU reference used the quantized weights (experts int4(group = 4))');
      // The FP8 values were re-quantized to int4: the f32 reference is off.
      expect(relativeError(int4.output, await reference(c))).toBeGreaterThan(1e-3);
    }
  });
});

describe('the bundle README', () => {
  it('its Node example runs as written', async () => {
    const c = makeCase('mixtral', 60);
    const bundle = join(work, 'readme-bundle');
    expect((await moec(['compile', c.spec, '-o', bundle])).status).toBe(0);
    cpSync(c.dir, join(bundle, 'checkpoint'), { recursive: true });
    const readme = readFileSync(join(bundle, 'README.md'), 'utf8');
    const example = /## Node[^]*?```js\n([^]*?)```/.exec(readme)![1]!
      // The bundle sits in a temp dir, outside any node_modules: point at this repo's webgpu.
      .replace("from 'webgpu'", `from ${JSON.stringify(pathToFileURL(join(ROOT, 'node_modules', 'webgpu', 'index.js')).href)}`);
    writeFileSync(join(bundle, 'example.mjs'), `${example}\nconsole.log(JSON.stringify({ n: out.length, finite: out.every(Number.isFinite) }));\n`);
    const child = spawnSync(process.execPath, ['example.mjs'], { cwd: bundle, encoding: 'utf8', env: process.env });
    expect(child.status, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout.trim().split('\n').pop()!)).toEqual({ n: 4 * 24, finite: true });
  });
});

describe('moec run: errors are one line naming the file and the tensor, and write nothing', () => {
  let base: Case;
  let sharded: Case;
  beforeAll(() => {
    base = makeCase('mixtral', 50);
    sharded = makeCase('qwen3_moe', 51, { shards: 2 });
  });

  /** Runs with a damaged copy of the checkpoint; expects exit status 1 and one stderr line. */
  async function failure(c: Case, damage: (dir: string) => void, input = c.input): Promise<string> {
    const dir = mkdtempSync(join(work, 'damaged-'));
    cpSync(c.dir, dir, { recursive: true });
    damage(dir);
    const output = join(dir, 'out.safetensors');
    const result = await moec(runArgs({ ...c, dir, input }, output));
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderrLines).toHaveLength(1);
    expect(existsSync(output)).toBe(false);
    return result.stderrLines[0]!;
  }

  /** Rewrites a single-file checkpoint with `edit` applied to its tensors. */
  function rewrite(dir: string, edit: (tensors: Record<string, TensorToEncode>) => void): void {
    const path = join(dir, 'model.safetensors');
    const file = parseSafetensors(new Uint8Array(readFileSync(path)), path);
    const tensors: Record<string, TensorToEncode> = {};
    for (const [name, info] of file.tensors) tensors[name] = { dtype: 'F32', shape: info.shape, data: readTensorF32(file, name) };
    edit(tensors);
    writeFileSync(path, encodeSafetensors(tensors));
  }

  const expert = (l: number, e: number, w: string) => `model.layers.${l}.block_sparse_moe.experts.${e}.${w}.weight`;

  it('a truncated shard', async () => {
    const shard = 'model-00002-of-00002.safetensors';
    const line = await failure(sharded, (dir) => truncateSync(join(dir, shard), readFileSync(join(dir, shard)).byteLength - 64));
    expect(line).toMatch(new RegExp(`^moec run: \\S+/${shard}: tensor "model\\.layers\\.\\d\\.mlp\\.[\\w.]+": data_offsets \\[\\d+, \\d+\\] run past the end of the data area`));
  });

  it('a corrupted header', async () => {
    const line = await failure(base, (dir) => {
      const path = join(dir, 'model.safetensors');
      const bytes = readFileSync(path);
      const at = bytes.indexOf('"F32"');
      bytes.write('"F99"', at);
      writeFileSync(path, bytes);
    });
    expect(line).toMatch(/^moec run: \S+\/model\.safetensors: tensor "model\.layers\.\d\.block_sparse_moe\.[\w.]+": unknown dtype "F99"/);
  });

  it('a missing tensor', async () => {
    const name = expert(1, 3, 'w3');
    const line = await failure(base, (dir) => rewrite(dir, (t) => delete t[name]));
    expect(line).toMatch(new RegExp(`^moec run: \\S+/model\\.safetensors: tensor "${name.replace(/\./g, '\\.')}" not found \\(needed for layers\\.1\\.moe\\.experts\\.up of a mixtral checkpoint\\)$`));
  });

  it('a tensor of the wrong shape', async () => {
    const name = expert(1, 2, 'w2');
    const line = await failure(base, (dir) => rewrite(dir, (t) => (t[name] = { ...t[name]!, shape: [20, 24] })));
    expect(line).toMatch(new RegExp(`^moec run: \\S+/model\\.safetensors: tensor "${name.replace(/\./g, '\\.')}" has shape \\[20, 24\\], expected \\[24, 20\\] \\(for layers\\.1\\.moe\\.experts\\.down\\)$`));
  });

  describe('MXFP4 experts (gpt-oss)', () => {
    let oss: Case;
    const P = 'model.layers.1.mlp.experts';
    const sizes: CheckpointSizes = { hidden: 32, experts: 4, topK: 2, intermediate: 32, layers: 2 };
    beforeAll(() => {
      const dir = join(work, 'gpt-oss-mxfp4-errors');
      writeRandomCheckpoint(dir, 'gpt_oss', sizes, { seed: 53, mxfp4Experts: true });
      const spec = join(work, 'gpt-oss-mxfp4-errors.moe');
      writeFileSync(spec, specText('gpt_oss', sizes));
      const input = join(work, 'gpt-oss-mxfp4-errors.in.safetensors');
      writeHiddenStates(input, 3, sizes.hidden, 54);
      oss = { family: 'gpt_oss', dir, spec, layer: 1, tokens: 3, input };
    });

    /** Rewrites model.safetensors keeping every tensor's dtype and bytes, with `edit` applied. */
    function rewriteRaw(dir: string, edit: (tensors: Record<string, TensorToEncode>) => void): void {
      const path = join(dir, 'model.safetensors');
      const file = parseSafetensors(new Uint8Array(readFileSync(path)), path);
      const tensors: Record<string, TensorToEncode> = {};
      for (const [name, info] of file.tensors) {
        tensors[name] = { dtype: info.dtype, shape: info.shape, data: file.bytes.slice(info.fileOffset, info.fileOffset + info.byteLength) };
      }
      edit(tensors);
      writeFileSync(path, encodeSafetensors(tensors));
    }

    /** The one stderr line expected for `message` about model.safetensors of the damaged copy. */
    const about = (message: string): RegExp => new RegExp(`^moec run: \\S+/model\\.safetensors: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);

    it('a file cut inside a _blocks tensor', async () => {
      const line = await failure(oss, (dir) => {
        const path = join(dir, 'model.safetensors');
        const blocks = parseSafetensors(new Uint8Array(readFileSync(path)), path).tensors.get(`${P}.gate_up_proj_blocks`)!;
        truncateSync(path, blocks.fileOffset + blocks.byteLength - 100);
      });
      expect(line).toMatch(about(`tensor "${P}.gate_up_proj_blocks": data_offsets [`));
      expect(line).toContain('run past the end of the data area');
    });

    it('a truncated _blocks tensor (8 bytes per block)', async () => {
      const line = await failure(oss, (dir) => rewriteRaw(dir, (t) => {
        const blocks = t[`${P}.down_proj_blocks`]!;
        t[`${P}.down_proj_blocks`] = { dtype: 'U8', shape: [4, 32, 1, 8], data: (blocks.data as Uint8Array).subarray(0, 4 * 32 * 8) };
      }));
      expect(line).toMatch(about(`tensor "${P}.down_proj_blocks" has shape [4, 32, 1, 8], expected [4, 32, 1, 16] ` +
        '(MXFP4 blocks [E, rows, inputs/32, 16] for layers.1.moe.experts.down)'));
    });

    it('_scales of the wrong shape', async () => {
      const line = await failure(oss, (dir) => rewriteRaw(dir, (t) => (t[`${P}.gate_up_proj_scales`]!.shape = [4, 1, 64])));
      expect(line).toMatch(about(`tensor "${P}.gate_up_proj_scales" has shape [4, 1, 64], expected [4, 64, 1] ` +
        `(MXFP4 scales [E, rows, inputs/32] of "${P}.gate_up_proj_blocks", for layers.1.moe.experts.gate)`));
    });
  });

  it('FP8 experts (deepseek_v3): a NaN code in a weight, and a weight without its _scale_inv', async () => {
    const sizes = sizesOf('deepseek_v3');
    const dir = join(work, 'deepseek-v3-fp8-errors');
    writeRandomCheckpoint(dir, 'deepseek_v3', sizes, { seed: 55, fp8Experts: { blockSize: [8, 16] } });
    const spec = join(work, 'deepseek-v3-fp8-errors.moe');
    writeFileSync(spec, specText('deepseek_v3', sizes));
    const input = join(work, 'deepseek-v3-fp8-errors.in.safetensors');
    writeHiddenStates(input, 3, sizes.hidden, 56);
    const c: Case = { family: 'deepseek_v3', dir, spec, layer: 1, tokens: 3, input };
    const W = 'model.layers.1.mlp.experts.4.down_proj.weight';
    const nan = await failure(c, (damaged) => {
      const path = join(damaged, 'model.safetensors');
      const bytes = readFileSync(path);
      const tensor = parseSafetensors(new Uint8Array(bytes), path).tensors.get(W)!;
      bytes[tensor.fileOffset + 5 * 20 + 7] = 0x7f; // row 5, column 7 of [24, 20]
      writeFileSync(path, bytes);
    });
    expect(nan).toMatch(new RegExp(`^moec run: \\S+/model\\.safetensors: tensor "${W.replace(/\./g, '\\.')}" code 0x7f \\(NaN in E4M3FN\\) at \\[5, 7\\]$`));
    const unscaled = await failure(c, (damaged) => {
      const path = join(damaged, 'model.safetensors');
      const file = parseSafetensors(new Uint8Array(readFileSync(path)), path);
      const tensors: Record<string, TensorToEncode> = {};
      for (const [name, info] of file.tensors) {
        if (name !== `${W}_scale_inv`) tensors[name] = { dtype: info.dtype, shape: info.shape, data: file.bytes.slice(info.fileOffset, info.fileOffset + info.byteLength) };
      }
      writeFileSync(path, encodeSafetensors(tensors));
    });
    expect(unscaled).toMatch(new RegExp(`^moec run: \\S+/model\\.safetensors: tensor "${W.replace(/\./g, '\\.')}" is F8_E4M3 without its block scales: tensor "${W.replace(/\./g, '\\.')}_scale_inv" not found$`));
  });

  it('input hidden states: truncated, or of the wrong hidden size', async () => {
    const truncated = join(work, 'truncated.in.safetensors');
    cpSync(base.input, truncated);
    truncateSync(truncated, readFileSync(truncated).byteLength - 8);
    expect(await failure(base, () => undefined, truncated))
      .toMatch(/^moec run: \S+truncated\.in\.safetensors: tensor "hidden_states": data_offsets .* run past the end/);
    const narrow = join(work, 'narrow.in.safetensors');
    writeHiddenStates(narrow, 4, 16, 1);
    expect(await failure(base, () => undefined, narrow))
      .toBe(`moec run: ${narrow}: tensor "hidden_states" has shape [4, 16], expected [tokens, 24] (the model's hidden size is 24)`);
  });

  it('a layer without a MoE block, and an existing --output left untouched', async () => {
    const c = makeCase('deepseek_v2', 52);
    const output = join(work, 'keep.safetensors');
    writeFileSync(output, 'previous');
    const result = await moec(runArgs({ ...c, layer: 0 }, output));
    expect(result.status).toBe(2);
    expect(result.stderrLines).toEqual(['moec run: --layer 0: tiny-deepseek-v2 has no MoE block in layer 0 (MoE layers: 1)']);
    expect(readFileSync(output, 'utf8')).toBe('previous');
  });
});
