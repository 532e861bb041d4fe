// gpt-oss stores experts.gate and experts.up in one fused tensor (gate_up_proj, or its MXFP4
// _blocks + _scales). Loading a block reads each row range of it once: the loader reads gate and
// up piece by piece in turn (WeightSource.sharesStorage) and the HF source hands the second half
// the read it kept (runtime/paired-reads.ts). The weights on the GPU are the same either way.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { hfWeightSource } from '../../runtime/hf-weights.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import type { RowRange, WeightSource } from '../../runtime/plan.js';
import type { TensorReader } from '../../runtime/tensor-reader.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { normals, seededRandom } from '../codegen/moe-fixtures.js';

// A wide hidden size: packed expert matrices (~9 KB) are large beside the activation buffers.
const s: CheckpointSizes = { hidden: 512, experts: 6, topK: 2, intermediate: 32, layers: 1 };
/** Two packed expert matrices per binding (int4 g32: 9216 bytes each, mxfp4: 8704) -> 3 shards. */
const BINDING = 2 * 9216;
const TOKENS = 5;
let rt: GpuRuntime;
const dirs: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => {
  rt?.destroy();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

/** A reader that records every read as `name [begin, end)`. */
function recording(base: TensorReader, reads: string[]): TensorReader {
  const note = (name: string, rows?: RowRange) => reads.push(`${name} ${rows ? `[${rows.begin}, ${rows.end})` : 'all'}`);
  return {
    ...base,
    readF32: (name, rows) => (note(name, rows), base.readF32(name, rows)),
    readU8: base.readU8 && ((name, rows) => (note(name, rows), base.readU8!(name, rows))),
  };
}

describe.each([
  ['MXFP4 gate_up_proj_blocks + _scales, experts as mxfp4', true, 'quantize experts = mxfp4(group = 32)'],
  ['BF16 gate_up_proj, experts as int4 in pieces', false, 'quantize experts = int4(group = 32)'],
])('%s', (_, mxfp4Experts, quantize) => {
  it('reads each row range of the fused tensor once, and uploads the same weights as reading it twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moec-fused-'));
    dirs.push(dir);
    writeRandomCheckpoint(dir, 'gpt_oss', s, { seed: 7, mxfp4Experts, dtype: 'BF16' });
    const { config } = checkSpec(specText('gpt_oss', s).replace('  dtype = f32', `  dtype = f32\n  ${quantize}`), 'gpt-oss.moe');
    expect(config).toBeDefined();
    // Two experts per binding -> 3 shards, each read in pieces of one expert matrix (f32 bytes).
    const matrixBytes = s.intermediate * s.hidden * 4;
    const plan = compileMoeBlockPlan(config!, 0, { maxStorageBufferBindingSize: BINDING });
    expect(plan.buffers.filter((b) => b.weight?.param.endsWith('experts.up')).length).toBe(3);

    const reads: string[] = [];
    const paired = hfWeightSource('gpt_oss', recording(checkpointReader(CheckpointDir.open(dir)), reads));
    const separate: WeightSource = { readF32: (n, shape, rows) => hfWeightSource('gpt_oss', checkpointReader(CheckpointDir.open(dir))).readF32(n, shape, rows) };
    const x = normals(seededRandom(11), TOKENS * s.hidden, 1);
    const outputs: Float32Array[] = [];
    for (const source of [paired, separate]) {
      const executor = await createMoeBlockExecutor(rt, plan, source, { maxReadBytes: matrixBytes });
      outputs.push(await executor.run(x, TOKENS));
      executor.destroy();
    }
    const fused = reads.filter((r) => r.includes('gate_up_proj'));
    expect(fused.length).toBeGreaterThan(0);
    expect(new Set(fused).size, fused.join('\n')).toBe(fused.length); // no range read twice
    const stored = mxfp4Experts ? ['gate_up_proj_blocks', 'gate_up_proj_scales', 'gate_up_proj_bias'] : ['gate_up_proj', 'gate_up_proj_bias'];
    for (const name of stored) {
      const covered = fused.filter((r) => r.includes(`.${name} `)).flatMap((r) => {
        const [begin, end] = r.match(/\[(\d+), (\d+)\)/)!.slice(1).map(Number);
        return Array.from({ length: end! - begin! }, (_, i) => begin! + i);
      });
      expect(covered.sort((a, b) => a - b), name).toEqual(Array.from({ length: s.experts }, (_, e) => e));
    }
    expect(outputs[0]!.every(Number.isFinite)).toBe(true);
    expect(outputs[0]).toEqual(outputs[1]);
  });
});
