// gpt-oss checkpoints with MXFP4 experts (`_blocks` + `_scales`, as released): the IR weights
// against transformers' own dequantization (convert_moe_packed_tensors, transcribed below) and
// against the same checkpoint saved dequantized; rows read from only those experts' bytes;
// lossless re-packing into the GPU's mxfp4 format; and one-line errors naming file and tensor.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { hfWeightsFromSafetensors } from '../../runtime/hf-checkpoint.js';
import { hfWeightSource } from '../../runtime/hf-weights.js';
import type { TensorReader } from '../../runtime/tensor-reader.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import type { RowRange, WeightSource } from '../../runtime/plan.js';
import { dequantize, packWeight } from '../../runtime/quant/weight-codec.js';
import { matrixLayout } from '../../runtime/quant/weight-format.js';
import { encodeSafetensors, type TensorToEncode } from '../../runtime/safetensors-encode.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';

const s: CheckpointSizes = { hidden: 64, experts: 4, topK: 2, intermediate: 32, layers: 1 };
const { hidden: H, experts: E, intermediate: I } = s;
const P = 'model.layers.0.mlp.experts';
const MXFP4 = { format: 'mxfp4', group: 32 } as const;

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function mxfp4Checkpoint(seed: number): { dir: string; checkpoint: CheckpointDir } {
  const dir = mkdtempSync(join(tmpdir(), 'moec-mxfp4-'));
  dirs.push(dir);
  writeRandomCheckpoint(dir, 'gpt_oss', s, { seed, mxfp4Experts: true, dtype: 'BF16' });
  return { dir, checkpoint: CheckpointDir.open(dir) };
}

/** Every tensor of a checkpoint as it is stored (dtype, shape, bytes). */
function storedTensors(checkpoint: CheckpointDir): Record<string, TensorToEncode> {
  return Object.fromEntries(checkpoint.names().map((name) => {
    const info = checkpoint.info(name);
    const data = info.dtype === 'U8' ? checkpoint.readU8(name) : checkpoint.readF32(name);
    return [name, { dtype: info.dtype === 'U8' ? 'U8' : 'F32', shape: info.shape, data }];
  }));
}

/**
 * transformers' convert_moe_packed_tensors (integrations/mxfp4.py): blocks [E, R, G, 16], scales
 * [E, R, G] -> lut[low nibble] at even, lut[high nibble] at odd positions, ldexp by scale - 127,
 * reshaped to [E, R, G * 32] and transposed to [E, G * 32, R].
 */
function convertMoePackedTensors(blocks: Uint8Array, scales: Uint8Array, [experts, rows, groups]: number[]): Float64Array {
  const FP4_VALUES = [+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];
  const cols = groups! * 32;
  const flat = new Float64Array(experts! * rows! * cols); // [E, R, G * 32]
  for (let r = 0; r < experts! * rows! * groups!; r++) {
    for (let j = 0; j < 16; j++) {
      const byte = blocks[r * 16 + j]!;
      flat[r * 32 + 2 * j] = FP4_VALUES[byte & 0x0f]! * 2 ** (scales[r]! - 127);
      flat[r * 32 + 2 * j + 1] = FP4_VALUES[byte >> 4]! * 2 ** (scales[r]! - 127);
    }
  }
  const out = new Float64Array(flat.length);
  for (let e = 0; e < experts!; e++) {
    for (let r = 0; r < rows!; r++) for (let c = 0; c < cols; c++) out[(e * cols + c) * rows! + r] = flat[(e * rows! + r) * cols + c]!;
  }
  return out;
}

const plusZero = (values: ArrayLike<number>): number[] => Array.from(values, (v) => v + 0); // -0 (code 8) reads as +0

async function irWeights(source: WeightSource): Promise<Record<'gate' | 'up' | 'down', Float32Array>> {
  return {
    gate: await source.readF32('layers.0.moe.experts.gate', [E, I, H]),
    up: await source.readF32('layers.0.moe.experts.up', [E, I, H]),
    down: await source.readF32('layers.0.moe.experts.down', [E, H, I]),
  };
}

describe('gpt-oss MXFP4 experts', () => {
  const { checkpoint } = mxfp4Checkpoint(31);
  const source = hfWeightSource('gpt_oss', checkpointReader(checkpoint));

  it('decode as transformers dequantizes them: gate_up [E, H, 2I] (gate = ::2, up = 1::2) and down [E, I, H], in the IR layout', async () => {
    const ir = await irWeights(source);
    const gu = convertMoePackedTensors(checkpoint.readU8(`${P}.gate_up_proj_blocks`), checkpoint.readU8(`${P}.gate_up_proj_scales`), [E, 2 * I, H / 32]);
    const dp = convertMoePackedTensors(checkpoint.readU8(`${P}.down_proj_blocks`), checkpoint.readU8(`${P}.down_proj_scales`), [E, H, I / 32]);
    const gate = new Float64Array(E * I * H);
    const up = new Float64Array(E * I * H);
    const down = new Float64Array(E * H * I);
    for (let e = 0; e < E; e++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < I; i++) {
          gate[(e * I + i) * H + h] = gu[(e * H + h) * 2 * I + 2 * i]!;
          up[(e * I + i) * H + h] = gu[(e * H + h) * 2 * I + 2 * i + 1]!;
          down[(e * H + h) * I + i] = dp[(e * I + i) * H + h]!;
        }
      }
    }
    expect(plusZero(ir.gate)).toEqual(plusZero(gate));
    expect(plusZero(ir.up)).toEqual(plusZero(up));
    expect(plusZero(ir.down)).toEqual(plusZero(down));
    const rms = Math.sqrt(ir.gate.reduce((a, v) => a + v * v, 0) / ir.gate.length);
    expect(rms * Math.sqrt(H)).toBeGreaterThan(0.3); // scales near the usual init: 1 / sqrt(H)
    expect(rms * Math.sqrt(H)).toBeLessThan(3);
  });

  it('give the same IR weights as the checkpoint saved dequantized (gate_up_proj, down_proj in f32)', async () => {
    const tensors = storedTensors(checkpoint);
    const gu = convertMoePackedTensors(tensors[`${P}.gate_up_proj_blocks`]!.data as Uint8Array, tensors[`${P}.gate_up_proj_scales`]!.data as Uint8Array, [E, 2 * I, H / 32]);
    const dp = convertMoePackedTensors(tensors[`${P}.down_proj_blocks`]!.data as Uint8Array, tensors[`${P}.down_proj_scales`]!.data as Uint8Array, [E, H, I / 32]);
    for (const n of ['gate_up_proj_blocks', 'gate_up_proj_scales', 'down_proj_blocks', 'down_proj_scales']) delete tensors[`${P}.${n}`];
    tensors[`${P}.gate_up_proj`] = { dtype: 'F32', shape: [E, H, 2 * I], data: Float32Array.from(gu) };
    tensors[`${P}.down_proj`] = { dtype: 'F32', shape: [E, I, H], data: Float32Array.from(dp) };
    const dense = hfWeightsFromSafetensors('gpt_oss', [{ name: 'dequantized.safetensors', bytes: encodeSafetensors(tensors) }]);
    const graph = compileMoeBlockGraph(checkSpec(specText('gpt_oss', s), 'gpt-oss.moe').config!, 0);
    expect(graph.params.map((p) => p.name)).toEqual(expect.arrayContaining(['layers.0.moe.experts.gate', 'layers.0.moe.experts.up', 'layers.0.moe.experts.down']));
    for (const p of graph.params) {
      const shape = p.type.shape as number[];
      expect(plusZero(await source.readF32(p.name, shape)), p.name).toEqual(plusZero(await dense.readF32(p.name, shape)));
    }
  });

  it('a row range reads only those experts\' blocks and scales', async () => {
    const reads: string[] = [];
    const base = checkpointReader(checkpoint);
    const reader: TensorReader = {
      ...base,
      readF32: (name, rows?: RowRange) => (reads.push(`${name} ${JSON.stringify(rows)}`), base.readF32(name, rows)),
      readU8: (name, rows?: RowRange) => (reads.push(`${name} ${JSON.stringify(rows)}`), base.readU8!(name, rows)),
    };
    const ranged = hfWeightSource('gpt_oss', reader);
    const whole = await irWeights(source);
    expect(await ranged.readF32('layers.0.moe.experts.up', [E, I, H], { begin: 1, end: 3 })).toEqual(whole.up.subarray(I * H, 3 * I * H));
    expect(await ranged.readF32('layers.0.moe.experts.down', [E, H, I], { begin: 3, end: 4 })).toEqual(whole.down.subarray(3 * H * I));
    expect(reads).toEqual([
      `${P}.gate_up_proj_blocks {"begin":1,"end":3}`, `${P}.gate_up_proj_scales {"begin":1,"end":3}`,
      `${P}.down_proj_blocks {"begin":3,"end":4}`, `${P}.down_proj_scales {"begin":3,"end":4}`,
    ]);
  });

  it('re-pack losslessly as mxfp4(group = 32): the same values, and the same codes and scales where a block holds a +-6', async () => {
    const ir = await irWeights(source);
    const blocks = checkpoint.readU8(`${P}.down_proj_blocks`);
    const scales = checkpoint.readU8(`${P}.down_proj_scales`);
    for (const [w, shape] of [[ir.gate, [E, I, H]], [ir.up, [E, I, H]], [ir.down, [E, H, I]]] as const) {
      expect(dequantize(MXFP4, w, shape)).toEqual(w);
    }
    // down is stored as the IR lays it out: block g of row h of expert e is group h * I/32 + g of matrix e.
    const words = packWeight(MXFP4, ir.down, [E, H, I]);
    const layout = matrixLayout(MXFP4, H, I);
    const groups = I / 32;
    let compared = 0;
    for (let e = 0; e < E; e++) {
      for (let h = 0; h < H; h++) {
        for (let g = 0; g < groups; g++) {
          const block = blocks.subarray(((e * H + h) * groups + g) * 16, ((e * H + h) * groups + g + 1) * 16);
          const codes = [...block].flatMap((b) => [b & 0xf, b >> 4]);
          if (!codes.some((c) => (c & 7) === 7)) continue;
          const group = h * groups + g;
          const at = e * layout.matrixWords;
          expect((words[at + layout.valueWords + (group >> 2)]! >>> (8 * (group & 3))) & 0xff).toBe(scales[(e * H + h) * groups + g]);
          const packed = codes.map((_, k) => (words[at + ((h * I + g * 32 + k) >> 3)]! >>> (4 * ((h * I + g * 32 + k) & 7))) & 0xf);
          expect(packed).toEqual(codes.map((c) => (c === 8 ? 0 : c))); // -0 is stored as +0
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(E * H * groups * 0.9);
  });
});

describe('gpt-oss MXFP4 experts: errors are one line naming the file and the tensor', () => {
  const { checkpoint } = mxfp4Checkpoint(32);
  const FILE = 'model-00001-of-00001.safetensors';

  /** The checkpoint in memory with `edit` applied, read as layers.0.moe.experts.gate (and down). */
  async function failure(edit: (t: Record<string, TensorToEncode>) => void, weight = 'gate'): Promise<string> {
    const tensors = storedTensors(checkpoint);
    edit(tensors);
    const source = hfWeightsFromSafetensors('gpt_oss', [{ name: FILE, bytes: encodeSafetensors(tensors) }]);
    const shape = weight === 'down' ? [E, H, I] : [E, I, H];
    return Promise.resolve().then(() => source.readF32(`layers.0.moe.experts.${weight}`, shape))
      .then(() => { throw new Error('expected an error'); }, (e: Error) => e.message);
  }
  const blocksOf = (t: Record<string, TensorToEncode>, n: string) => t[`${P}.${n}`]!.data as Uint8Array;

  it('truncated blocks (8 bytes per block instead of 16)', async () => {
    const line = await failure((t) => {
      const blocks = blocksOf(t, 'gate_up_proj_blocks');
      t[`${P}.gate_up_proj_blocks`] = { dtype: 'U8', shape: [E, 2 * I, H / 32, 8], data: blocks.subarray(0, blocks.length / 2) };
    });
    expect(line).toBe(`${FILE}: tensor "${P}.gate_up_proj_blocks" has shape [4, 64, 2, 8], expected [4, 64, 2, 16] ` +
      '(MXFP4 blocks [E, rows, inputs/32, 16] for layers.0.moe.experts.gate)');
  });

  it('scales of the wrong shape, or missing', async () => {
    const wrong = await failure((t) => (t[`${P}.down_proj_scales`] = { dtype: 'U8', shape: [E, H], data: blocksOf(t, 'down_proj_scales').subarray(0, E * H) }), 'down');
    expect(wrong).toBe(`${FILE}: tensor "${P}.down_proj_scales" has shape [4, 64], expected [4, 64, 1] ` +
      `(MXFP4 scales [E, rows, inputs/32] of "${P}.down_proj_blocks", for layers.0.moe.experts.down)`);
    const missing = await failure((t) => delete t[`${P}.gate_up_proj_scales`]);
    expect(missing).toBe(`${FILE}: tensor "${P}.gate_up_proj_scales" not found (the MXFP4 scales of "${P}.gate_up_proj_blocks", needed for layers.0.moe.experts.gate)`);
  });

  it('blocks that are not bytes, and a scale of 255 (NaN in E8M0)', async () => {
    const f32 = await failure((t) => {
      t[`${P}.gate_up_proj_blocks`] = { dtype: 'F32', shape: [E, 2 * I, H / 32, 16], data: Float32Array.from(blocksOf(t, 'gate_up_proj_blocks')) };
    });
    expect(f32).toBe(`${FILE}: tensor "${P}.gate_up_proj_blocks": dtype F32, expected U8 (raw bytes)`);
    const nan = await failure((t) => {
      const scales = blocksOf(t, 'gate_up_proj_scales').slice();
      scales[(2 * 2 * I + 7) * (H / 32) + 1] = 255; // expert 2, stored row 7 (up row 3), block 1
      t[`${P}.gate_up_proj_scales`] = { dtype: 'U8', shape: [E, 2 * I, H / 32], data: scales };
    }, 'up');
    expect(nan).toBe(`${FILE}: tensor "${P}.gate_up_proj_scales" scale byte 255 (NaN in E8M0) at [2, 7, 1] (for layers.0.moe.experts.up)`);
  });
});
