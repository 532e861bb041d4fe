// DeepSeek-V3 checkpoints with block-scaled FP8 experts (F8_E4M3 + `_scale_inv`, as released):
// the E4M3FN table against the format's definition built as f32 bits; the IR weights against a
// straightforward dequantization (DeepSeek's weight_dequant: code * scale_inv[r / bR, c / bC])
// with partial edge blocks, and against the checkpoint saved dequantized; row ranges read only
// those rows' codes and scale rows; one-line errors naming the file and the tensor.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { hfWeightsFromSafetensors } from '../../runtime/hf-checkpoint.js';
import { dequantizeFp8, E4M3_VALUES, fp8BlockSizeOf } from '../../runtime/hf-fp8.js';
import { hfWeightSource } from '../../runtime/hf-weights.js';
import type { TensorReader } from '../../runtime/tensor-reader.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { checkpointReader, openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import type { RowRange, WeightSource } from '../../runtime/plan.js';
import { encodeSafetensors, type TensorToEncode } from '../../runtime/safetensors-encode.js';
import { seededRandom, specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';

// Blocks of 8 x 16: gate/up [20, 24] span 3 x 2 blocks and down [24, 20] 3 x 2, partial at the edges.
const s: CheckpointSizes = { hidden: 24, experts: 4, topK: 2, intermediate: 20, layers: 1 };
const BLOCK = [8, 16] as const;
const { hidden: H, experts: E, intermediate: I } = s;
const P = 'model.layers.0.mlp';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'moec-fp8-'));
  dirs.push(d);
  return d;
};

function fp8Checkpoint(seed: number, fp8Experts: true | { blockSize: readonly [number, number] } = { blockSize: BLOCK }, shards?: number): { dir: string; checkpoint: CheckpointDir } {
  const dir = tempDir();
  writeRandomCheckpoint(dir, 'deepseek_v3', s, { seed, fp8Experts, dtype: 'BF16', shards });
  return { dir, checkpoint: CheckpointDir.open(dir) };
}

/** E4M3FN by the OCP table, built as f32 bits: S.EEEE.MMM -> sign, exponent - 7 + 127, mantissa << 20; subnormals M x 2^-9. */
function e4m3ByDefinition(code: number): number {
  const bits = new DataView(new ArrayBuffer(4));
  const sign = code >> 7;
  const exponent = (code >> 3) & 0xf;
  const mantissa = code & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return NaN;
  if (exponent === 0) {
    bits.setUint32(0, ((sign << 31) | ((127 - 9) << 23)) >>> 0); // +-2^-9
    return bits.getFloat32(0) * mantissa;
  }
  bits.setUint32(0, ((sign << 31) | ((exponent - 7 + 127) << 23) | (mantissa << 20)) >>> 0);
  return bits.getFloat32(0);
}

/** DeepSeek's weight_dequant, element by element: code value x its block's scale, rounded to f32. */
function dequantizeReference(codes: Uint8Array, scales: Float32Array, [rows, cols]: number[], [bR, bC]: readonly number[]): Float32Array {
  const scaleCols = Math.ceil(cols! / bC!);
  return Float32Array.from({ length: rows! * cols! }, (_, i) => {
    const r = Math.floor(i / cols!);
    const c = i % cols!;
    return Math.fround(e4m3ByDefinition(codes[i]!) * scales[Math.floor(r / bR!) * scaleCols + Math.floor(c / bC!)]!);
  });
}

/** Every tensor of a checkpoint as it is stored (dtype, shape, raw bytes). */
function storedTensors(checkpoint: CheckpointDir): Record<string, TensorToEncode> {
  return Object.fromEntries(checkpoint.names().map((name) => {
    const info = checkpoint.info(name);
    return [name, { dtype: info.dtype, shape: info.shape, data: checkpoint.readBytes(name) }];
  }));
}

/** A single-file checkpoint directory holding `tensors`, with `config` as config.json. */
function writeCheckpoint(tensors: Record<string, TensorToEncode>, config: Record<string, unknown>): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  return dir;
}

const graph = compileMoeBlockGraph(checkSpec(specText('deepseek_v3', s), 'deepseek-v3.moe').config!, 0);

async function irWeights(source: WeightSource): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const p of graph.params) out.set(p.name, await source.readF32(p.name, p.type.shape as number[]));
  return out;
}

describe('E4M3FN codes', () => {
  it('all 256 decode as the format defines them', () => {
    for (let code = 0; code < 256; code++) expect(Object.is(E4M3_VALUES[code], e4m3ByDefinition(code)) || [E4M3_VALUES[code], e4m3ByDefinition(code)].every(Number.isNaN), `code 0x${code.toString(16)}`).toBe(true);
  });

  it('the landmarks of the OCP table: no infinities, NaN only at S.1111.111, max 448, subnormals down to 2^-9', () => {
    expect([...E4M3_VALUES].filter(Number.isNaN)).toHaveLength(2);
    expect([E4M3_VALUES[0x7f], E4M3_VALUES[0xff]]).toEqual([NaN, NaN]);
    expect([...E4M3_VALUES].some((v) => v === Infinity || v === -Infinity)).toBe(false);
    expect([0x7e, 0xfe, 0x78, 0x77, 0x38, 0x08, 0x07, 0x01, 0x00].map((c) => E4M3_VALUES[c]))
      .toEqual([448, -448, 256, 240, 1, 2 ** -6, 7 * 2 ** -9, 2 ** -9, 0]);
    expect(Object.is(E4M3_VALUES[0x80], -0)).toBe(true);
    const positives = [...E4M3_VALUES.subarray(0, 0x7f)];
    expect(positives.every((v, i) => i === 0 || v > positives[i - 1]!)).toBe(true); // codes order like their values
  });
});

describe('block-scaled FP8 dequantization', () => {
  it('matches the reference on a [10, 13] weight in 4 x 5 blocks (partial at both edges), whole and from mid-block rows', () => {
    const random = seededRandom(5);
    const codes = Uint8Array.from({ length: 130 }, () => { const c = Math.floor(random() * 256); return (c & 0x7f) === 0x7f ? 0x7e : c; });
    const scales = Float32Array.from({ length: 9 }, () => 0.01 + random() * 0.1);
    const expected = dequantizeReference(codes, scales, [10, 13], [4, 5]);
    expect(dequantizeFp8(codes, scales, { rows: 10, cols: 13, firstRow: 0, block: [4, 5] })).toEqual(expected);
    // Rows [3, 9): scale rows 0..2; the codes of those rows only.
    expect(dequantizeFp8(codes.subarray(39, 117), scales, { rows: 6, cols: 13, firstRow: 3, block: [4, 5] })).toEqual(expected.subarray(39, 117));
    // Rows [5, 8): scale row 1 only.
    expect(dequantizeFp8(codes.subarray(65, 104), scales.subarray(3, 6), { rows: 3, cols: 13, firstRow: 5, block: [4, 5] })).toEqual(expected.subarray(65, 104));
  });

  it('reads weight_block_size from config.json (the default 128 x 128 without one); refuses e5m2 and malformed sizes', () => {
    expect(fp8BlockSizeOf({ quantization_config: { quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [8, 16] } })).toEqual([8, 16]);
    expect(fp8BlockSizeOf({ quantization_config: { quant_method: 'fp8' } })).toEqual([128, 128]);
    expect(fp8BlockSizeOf({ quantization_config: { quant_method: 'mxfp4' } })).toBeUndefined();
    expect(fp8BlockSizeOf(undefined)).toBeUndefined();
    expect(() => fp8BlockSizeOf({ quantization_config: { quant_method: 'fp8', weight_block_size: [128] } }))
      .toThrow('quantization_config.weight_block_size [128] is not two positive integers [rows, cols]');
    expect(() => fp8BlockSizeOf({ quantization_config: { quant_method: 'fp8', fmt: 'e5m2' } })).toThrow('quantization_config.fmt is "e5m2"; moec reads FP8 weights in e4m3 only');
  });
});

describe('deepseek_v3 FP8 experts', () => {
  const { checkpoint, dir } = fp8Checkpoint(41);

  it('are stored as released: F8_E4M3 routed and shared projections with F32 _scale_inv blocks, the router BF16, the bias F32', () => {
    expect(checkpoint.info(`${P}.experts.3.down_proj.weight`)).toMatchObject({ dtype: 'F8_E4M3', shape: [H, I] });
    expect(checkpoint.info(`${P}.experts.3.down_proj.weight_scale_inv`)).toMatchObject({ dtype: 'F32', shape: [3, 2] });
    expect(checkpoint.info(`${P}.shared_experts.gate_proj.weight`)).toMatchObject({ dtype: 'F8_E4M3', shape: [I, H] });
    expect(checkpoint.info(`${P}.shared_experts.gate_proj.weight_scale_inv`)).toMatchObject({ dtype: 'F32', shape: [3, 2] });
    expect(checkpoint.info(`${P}.gate.weight`)).toMatchObject({ dtype: 'BF16' });
    expect(checkpoint.info(`${P}.gate.e_score_correction_bias`)).toMatchObject({ dtype: 'F32' });
    expect(checkpoint.config.quantization_config).toEqual({ activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [8, 16] });
    expect([...checkpoint.readBytes(`${P}.experts.0.up_proj.weight`)].some((c) => (c & 0x7f) === 0x7f)).toBe(false);
  });

  it('decode as weight_dequant does, in the IR layout (experts stacked), and equal the checkpoint saved dequantized', async () => {
    const ir = await irWeights(openHfCheckpoint(dir).weights);
    const dense = storedTensors(checkpoint);
    for (const name of Object.keys(dense).filter((n) => n.endsWith('_scale_inv'))) {
      const weight = name.slice(0, -'_scale_inv'.length);
      const shape = checkpoint.shape(weight);
      dense[weight] = { dtype: 'F32', shape, data: dequantizeReference(checkpoint.readBytes(weight), checkpoint.readF32(name), shape, BLOCK) };
      delete dense[name];
    }
    const gate = ir.get('layers.0.moe.experts.gate')!;
    expect(gate.subarray(2 * I * H, 3 * I * H)).toEqual(dense[`${P}.experts.2.gate_proj.weight`]!.data);
    expect(ir.get('layers.0.moe.shared.down')).toEqual(dense[`${P}.shared_experts.down_proj.weight`]!.data);
    const { quantization_config: _, ...config } = checkpoint.config;
    const dequantized = openHfCheckpoint(writeCheckpoint(dense, config)).weights;
    expect(await irWeights(dequantized)).toEqual(ir);
    const rms = Math.sqrt(gate.reduce((a, v) => a + v * v, 0) / gate.length);
    expect(rms * Math.sqrt(H)).toBeGreaterThan(0.3); // scales near the usual init: 1 / sqrt(H)
    expect(rms * Math.sqrt(H)).toBeLessThan(3);
  });

  it('read the same from in-memory safetensors bytes (the browser path) given config.json', async () => {
    const files = checkpoint.files.map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
    const inMemory = hfWeightsFromSafetensors('deepseek_v3', files, { config: checkpoint.config });
    expect(await irWeights(inMemory)).toEqual(await irWeights(openHfCheckpoint(dir).weights));
  });

  it('with 128 x 128 blocks (one partial block per tiny matrix), and split over shards', async () => {
    for (const [fp8, shards] of [[true, undefined], [{ blockSize: BLOCK }, 3]] as const) {
      const opened = fp8Checkpoint(42, fp8, shards);
      const name = `${P}.experts.1.down_proj.weight`;
      const block = fp8 === true ? [128, 128] : BLOCK;
      expect(opened.checkpoint.shape(`${name}_scale_inv`)).toEqual(fp8 === true ? [1, 1] : [3, 2]);
      const down = await openHfCheckpoint(opened.dir).weights.readF32('layers.0.moe.experts.down', [E, H, I]);
      expect(down.subarray(H * I, 2 * H * I)).toEqual(dequantizeReference(opened.checkpoint.readBytes(name), opened.checkpoint.readF32(`${name}_scale_inv`), [H, I], block));
    }
  });

  it('a row range reads only those rows\' codes and their blocks\' scale rows; experts only those experts\' tensors', async () => {
    const reads: string[] = [];
    const base = checkpointReader(checkpoint);
    const note = (name: string, rows?: RowRange) => reads.push(`${name.replace(`${P}.`, '')} ${rows ? `[${rows.begin}, ${rows.end})` : 'whole'}`);
    const reader: TensorReader = {
      ...base,
      readF32: (name, rows) => (note(name, rows), base.readF32(name, rows)),
      readBytes: (name, rows) => (note(name, rows), base.readBytes!(name, rows)),
    };
    const ranged = hfWeightSource('deepseek_v3', reader, { config: checkpoint.config });
    const whole = await irWeights(openHfCheckpoint(dir).weights);
    // shared.down [24, 20]: rows [9, 17) lie in row blocks 1 and 2 of 8.
    expect(await ranged.readF32('layers.0.moe.shared.down', [H, I], { begin: 9, end: 17 })).toEqual(whole.get('layers.0.moe.shared.down')!.subarray(9 * I, 17 * I));
    expect(await ranged.readF32('layers.0.moe.experts.up', [E, I, H], { begin: 1, end: 3 })).toEqual(whole.get('layers.0.moe.experts.up')!.subarray(I * H, 3 * I * H));
    expect(reads).toEqual([
      'shared_experts.down_proj.weight [9, 17)', 'shared_experts.down_proj.weight_scale_inv [1, 3)',
      'experts.1.up_proj.weight whole', 'experts.1.up_proj.weight_scale_inv whole',
      'experts.2.up_proj.weight whole', 'experts.2.up_proj.weight_scale_inv whole',
    ]);
    // The bytes of those rows only, from the file.
    expect(checkpoint.readBytes(`${P}.shared_experts.down_proj.weight`, { begin: 9, end: 17 }))
      .toEqual(checkpoint.readBytes(`${P}.shared_experts.down_proj.weight`).subarray(9 * I, 17 * I));
  });
});

describe('deepseek_v3 FP8 experts: errors are one line naming the file and the tensor', () => {
  const { checkpoint } = fp8Checkpoint(43);
  const W = `${P}.experts.2.gate_proj.weight`;

  /** The checkpoint rewritten with `edit` applied, read as layers.0.moe.experts.gate; the error message. */
  async function failure(edit: (t: Record<string, TensorToEncode>, config: Record<string, unknown>) => void): Promise<{ line: string; file: string }> {
    const tensors = storedTensors(checkpoint);
    const config = structuredClone(checkpoint.config);
    edit(tensors, config);
    const dir = writeCheckpoint(tensors, config);
    const line = await Promise.resolve().then(() => openHfCheckpoint(dir).weights.readF32('layers.0.moe.experts.gate', [E, I, H]))
      .then(() => { throw new Error('expected an error'); }, (e: Error) => e.message);
    expect(line).not.toContain('\n');
    return { line, file: join(dir, 'model.safetensors') };
  }

  it('an F8_E4M3 weight without its _scale_inv', async () => {
    const { line, file } = await failure((t) => delete t[`${W}_scale_inv`]);
    expect(line).toBe(`${file}: tensor "${W}" is F8_E4M3 without its block scales: tensor "${W}_scale_inv" not found`);
  });

  it('an F8_E5M2 weight', async () => {
    const { line, file } = await failure((t) => (t[W]!.dtype = 'F8_E5M2'));
    expect(line).toBe(`${file}: tensor "${W}" is F8_E5M2; moec reads FP8 weights as F8_E4M3 (E4M3FN) codes with "${W}_scale_inv" block scales only`);
  });

  it('a NaN code in a weight', async () => {
    const { line, file } = await failure((t) => {
      const codes = (t[W]!.data as Uint8Array).slice();
      codes[13 * H + 17] = 0xff; // row 13, column 17
      t[W] = { ...t[W]!, data: codes };
    });
    expect(line).toBe(`${file}: tensor "${W}" code 0xff (NaN in E4M3FN) at [13, 17]`);
  });

  it('scales in the wrong block size, and a _scale_inv beside a weight that is not FP8', async () => {
    const wrong = await failure((_tensors, config) => ((config.quantization_config as Record<string, unknown>).weight_block_size = [16, 16]));
    const first = `${P}.experts.0.gate_proj.weight`; // every expert's scales mismatch: the first one read is named
    expect(wrong.line).toBe(`${wrong.file}: tensor "${first}_scale_inv" has shape [3, 2], expected [2, 2] ` +
      `(block scales of "${first}" [20, 24] in 16 x 16 blocks, config.json's weight_block_size)`);
    const dense = await failure((t) => (t[W] = { dtype: 'F32', shape: [I, H], data: new Float32Array(I * H) }));
    expect(dense.line).toBe(`${dense.file}: tensor "${W}_scale_inv" holds FP8 block scales, but "${W}" is F32, not F8_E4M3`);
  });

  it('a malformed weight_block_size in config.json', async () => {
    const tensors = storedTensors(checkpoint);
    const dir = writeCheckpoint(tensors, { ...checkpoint.config, quantization_config: { quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [0, 128] } });
    expect(() => openHfCheckpoint(dir)).toThrow(`${join(dir, 'config.json')}: quantization_config.weight_block_size [0,128] is not two positive integers [rows, cols]`);
  });

  it('a TensorReader that cannot give dtypes and raw bytes', async () => {
    const { dtype: _d, readBytes: _b, ...plain } = checkpointReader(checkpoint);
    const source = hfWeightSource('deepseek_v3', plain, { config: checkpoint.config });
    await expect(source.readF32('layers.0.moe.shared.up', [I, H])).rejects.toThrow(
      `${checkpoint.pathOf(`${P}.shared_experts.up_proj.weight`)}: tensor "${P}.shared_experts.up_proj.weight" has FP8 block scales ` +
      `"${P}.shared_experts.up_proj.weight_scale_inv", and this TensorReader has no dtype and readBytes to read its codes`);
  });
});
