// An expert's sensitivity is the relative squared error of its own matrices after the runtime's
// codec round trip, checked against a quantizer written here (int8: s = max|w| / 127 per group,
// q = round(w / s)), for a Map-backed source and for a real gpt-oss checkpoint (fused gate_up).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { measureExpertSensitivity, moeLayerExperts } from '../../compiler/mixed-precision/expert-sensitivity.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import type { WeightFormat } from '../../runtime/quant/weight-format.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { recordingSource, tinyModel } from './mixed-precision-fixtures.js';

const GROUP = 32;
const CHOICES: WeightFormat[] = [{ format: 'int8', group: GROUP }, { format: 'int4', group: GROUP }, { format: 'int2', group: GROUP }];

/** int8 as described in weight-format.ts, written independently: w' = fround(q * fround(max|w| / 127)). */
function int8SquaredError(w: Float32Array, group: number): number {
  let error = 0;
  for (let g = 0; g < w.length; g += group) {
    let max = 0;
    for (let i = g; i < g + group; i++) max = Math.max(max, Math.abs(w[i]!));
    const s = Math.fround(max / 127);
    for (let i = g; i < g + group; i++) {
      const q = s > 0 ? Math.max(-127, Math.min(127, Math.round(w[i]! / s))) : 0;
      error += (w[i]! - Math.fround(q * s)) ** 2;
    }
  }
  return error;
}

const squaredNorm = (w: Float32Array): number => w.reduce((s, v) => s + v * v, 0);
const expectRelativelyClose = (actual: number, expected: number): void => expect(Math.abs(actual - expected) / expected).toBeLessThan(1e-12);

describe('expert sensitivity', () => {
  const model = tinyModel(11);

  it('finds each MoE layer\'s expert matrices, biases left out', () => {
    const layers = moeLayerExperts(model.graph);
    expect(layers.map((l) => l.layer)).toEqual([0, 1]);
    expect(layers[0]!.matrices.map((m) => m.name)).toEqual(['layers.0.moe.experts.gate', 'layers.0.moe.experts.up', 'layers.0.moe.experts.down']);
    expect(layers[0]!.experts).toBe(8);
    expect(layers[0]!.paramsPerExpert).toBe(3 * 64 * 96);
  });

  it('orders int8 < int4 < int2 for every expert, matches a direct int8 computation, and reads one expert at a time', async () => {
    const source = recordingSource(model.weights);
    const sensitivity = await measureExpertSensitivity(model.graph, source, CHOICES);
    expect(sensitivity.map((l) => l.layer)).toEqual([0, 1]);
    for (const { error } of sensitivity) {
      expect(error).toHaveLength(8);
      for (const [int8, int4, int2] of error) {
        expect(int8).toBeGreaterThan(0);
        expect(int8).toBeLessThan(int4!);
        expect(int4).toBeLessThan(int2!);
        expect(int2).toBeLessThan(1);
      }
    }
    expect(source.reads.every((r) => r.rows && r.rows.end - r.rows.begin === 1)).toBe(true);
    expect(source.reads).toHaveLength(2 * 8 * 3);

    const [layer, expert] = [1, 5];
    let error = 0;
    let norm = 0;
    for (const name of ['gate', 'up', 'down']) {
      const all = model.weights.get(`layers.${layer}.moe.experts.${name}`)!;
      const w = all.subarray(expert * 64 * 96, (expert + 1) * 64 * 96);
      error += int8SquaredError(w, GROUP);
      norm += squaredNorm(w);
    }
    expectRelativelyClose(sensitivity[1]!.error[expert]![0]!, error / norm);
  });

  it('gives the same errors from a source that ignores the row range', async () => {
    const rows = await measureExpertSensitivity(model.graph, recordingSource(model.weights), CHOICES.slice(0, 2));
    const whole = await measureExpertSensitivity(model.graph, recordingSource(model.weights, { ignoreRows: true }), CHOICES.slice(0, 2));
    expect(whole).toEqual(rows);
  });

  it('reads a gpt-oss checkpoint\'s fused gate_up_proj expert by expert', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moec-sensitivity-'));
    const sizes: CheckpointSizes = { hidden: 32, experts: 4, topK: 2, intermediate: 48 };
    const written = writeRandomCheckpoint(dir, 'gpt_oss', sizes, { seed: 5 });
    const { config } = checkSpec(specText('gpt_oss', sizes), 'tiny-gpt-oss.moe');
    const graph = buildModelGraph(config!);
    const group = 16;
    const sensitivity = await measureExpertSensitivity(graph, openHfCheckpoint(dir).weights, [{ format: 'int8', group }, { format: 'int4', group }]);
    const [H, I] = [sizes.hidden, sizes.intermediate];
    for (const { layer, error } of sensitivity) {
      const gateUp = written.values.get(`model.layers.${layer}.mlp.experts.gate_up_proj`)!; // [E, H, 2I], gate and up interleaved, [in, out]
      const down = written.values.get(`model.layers.${layer}.mlp.experts.down_proj`)!; // [E, I, H], [in, out]
      error.forEach(([int8, int4], e) => {
        // The IR's [out, in] rows: gate/up [I, H] (row i: gate_up[e][h][2i + half] over h), down [H, I] (row h: down[e][i][h] over i).
        const half = (which: number) => Float32Array.from({ length: I * H }, (_, k) => gateUp[e * H * 2 * I + (k % H) * 2 * I + 2 * Math.floor(k / H) + which]!);
        const downRows = Float32Array.from({ length: H * I }, (_, k) => down[e * I * H + (k % I) * H + Math.floor(k / I)]!);
        const matrices = [half(0), half(1), downRows];
        const expected = matrices.reduce((s, w) => s + int8SquaredError(w, group), 0) / matrices.reduce((s, w) => s + squaredNorm(w), 0);
        expectRelativelyClose(int8!, expected);
        expect(int8).toBeLessThan(int4!);
      });
    }
  });
});
