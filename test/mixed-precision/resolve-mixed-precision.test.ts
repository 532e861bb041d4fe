// End to end on a small random checkpoint (tiny-phimoe, 2 MoE layers x 8 experts) and a trace
// where a few experts take most tokens: trace -> importance, weights -> sensitivity, HiGHS ->
// each expert's format, and the report. What issue 10 asks: the budget is met, the hot experts
// get more bits than the cold ones, and the weighted error beats uniform int4 at 4 bits.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExpertFormatError } from '../../compiler/mixed-precision/choose-expert-formats.js';
import { ExpertImportanceError } from '../../compiler/mixed-precision/expert-importance.js';
import { formatChoiceCosts, resolveMixedPrecision, type MixedPrecisionChoice } from '../../compiler/mixed-precision/resolve-mixed-precision.js';
import { byCountDescending, recordingSource, tinyModel, writeTrace, zipfCounts } from './mixed-precision-fixtures.js';

const GROUP = 32;
const CHOICES: MixedPrecisionChoice[] = [{ format: { format: 'int2', group: GROUP } }, { format: { format: 'int4', group: GROUP } }, { format: { format: 'int8', group: GROUP } }];
const INT4 = 1;
const dir = mkdtempSync(join(tmpdir(), 'moec-mixed-'));
const model = tinyModel(21);
const E = 8;
/** Zipf exponent 2.5 over 8 experts: the top expert takes about two thirds of a layer's tokens, the last two about 1%. */
const counts = [zipfCounts(E, 20000, 2.5, 31), zipfCounts(E, 20000, 2.5, 32)];
const trace = writeTrace(dir, [{ layer: 0, counts: counts[0]! }, { layer: 1, counts: counts[1]! }]);

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('resolveMixedPrecision', () => {
  it('takes each choice\'s bits from its format: 32 / values per word, scales reported apart', () => {
    expect(formatChoiceCosts(CHOICES)).toEqual([{ name: 'int2', bits: 2, scaleBits: 0.5 }, { name: 'int4', bits: 4, scaleBits: 0.5 }, { name: 'int8', bits: 8, scaleBits: 1 }]);
    expect(formatChoiceCosts([{ format: { format: 'int4', group: 32 } }, { format: { format: 'int4', group: 128 } }, { format: { format: 'f16' } }]).map((c) => [c.name, c.bits, c.scaleBits]))
      .toEqual([['int4(group = 32)', 4, 0.5], ['int4(group = 128)', 4, 0.125], ['f16', 16, 0]]);
  });

  it.each([4, 3.5])('meets a %f-bit budget, gives hot experts more bits than cold ones, and beats every uniform choice that fits', async (bits) => {
    const mixed = await resolveMixedPrecision({ model: model.graph, trace, weights: recordingSource(model.weights), bits, choices: CHOICES, timeLimit: 10 });
    const { solution, problem } = mixed;
    expect(solution.averageBits).toBeLessThanOrEqual(bits);
    // The average recomputed from the formats handed back, each expert's weight count from the graph.
    const bitsOf = (layer: number) => mixed.expertFormats.get(layer)!.map((f) => ({ int2: 2, int4: 4, int8: 8 })[f.format as 'int2' | 'int4' | 'int8']);
    expect(mean([...bitsOf(0), ...bitsOf(1)])).toBeLessThanOrEqual(bits);
    expect([...mixed.expertChoices.keys()]).toEqual([0, 1]);

    for (const layer of [0, 1]) {
      const order = byCountDescending(counts[layer]!);
      const perExpert = bitsOf(layer);
      const hot = order.slice(0, 2).map((e) => perExpert[e]!);
      const cold = order.slice(-2).map((e) => perExpert[e]!);
      expect(Math.min(...hot)).toBeGreaterThanOrEqual(Math.max(...cold));
      expect(mean(hot)).toBeGreaterThan(mean(cold));
      // Bits never fall as popularity rises by more than a factor of 2.
      for (const a of order) for (const b of order) if (counts[layer]![a]! > 2 * counts[layer]![b]!) expect(perExpert[a]).toBeGreaterThanOrEqual(perExpert[b]!);
    }
    const fitting = solution.uniform.filter((u) => u.fitsBudget);
    expect(fitting.map((u) => u.choice)).toEqual(bits >= 4 ? [0, 1] : [0]);
    for (const u of fitting) expect(solution.error).toBeLessThan(u.error);
    if (bits === 4) expect(solution.error).toBeLessThan(solution.uniform[INT4]!.error);
    // The predicted error is the trace's shares times the measured errors of the chosen formats.
    const direct = mean([0, 1].map((l) => {
      const total = counts[l]!.reduce((a, b) => a + b, 0);
      return mixed.expertChoices.get(l)!.reduce((s, c, e) => s + (counts[l]![e]! / total) * problem.layers[l]!.error[e]![c]!, 0);
    }));
    expect(solution.error).toBeCloseTo(direct, 14);
    expect(mixed.report).toContain(`budget ${bits} code bits per weight`);
  });

  it('prints the report: a line per layer naming each expert\'s format, and the uniform choices beside the mixed one', async () => {
    const mixed = await resolveMixedPrecision({ model: model.config, trace, weights: recordingSource(model.weights), bits: 4, choices: CHOICES, timeLimit: 10 });
    const lines = mixed.report.split('\n');
    for (const [layer, choice] of mixed.expertChoices) {
      const line = lines.find((l) => l.startsWith(`L${layer}: `))!;
      expect(line).toBeDefined();
      // Every expert named in the line has the format its group names; the unnamed ones share the most common.
      for (const part of line.slice(`L${layer}: `.length).split(/, (?=int)/)) {
        const [, name, n, listed] = /^(int\d) ×(\d+)(?: \[([\d, ]+)\])?$/.exec(part)!;
        const c = CHOICES.findIndex((ch) => ch.format.format === name);
        expect(choice.filter((x) => x === c)).toHaveLength(Number(n));
        if (listed) expect(listed.split(', ').map(Number)).toEqual(choice.flatMap((x, e) => (x === c ? [e] : [])));
      }
    }
    expect(lines.some((l) => /^uniform int4\s+4\.00\s+0\.50\s+\S+\s+\d+\.\d\dx$/.test(l))).toBe(true);
    expect(lines.some((l) => /^uniform int8\s+8\.00\s+1\.00\s+\S+\s+over budget$/.test(l))).toBe(true);
    expect(lines.some((l) => /^all\s+/.test(l))).toBe(true);
  });

  it('refuses a budget below every choice before reading any weight', async () => {
    const source = recordingSource(model.weights);
    await expect(resolveMixedPrecision({ model: model.graph, trace, weights: source, bits: 1, choices: CHOICES })).rejects.toThrow(ExpertFormatError);
    expect(source.reads).toEqual([]);
  });

  it('refuses a trace missing one of the model\'s MoE layers, naming the file and the layer', async () => {
    const partial = writeTrace(dir, [{ layer: 1, counts: counts[1]! }], 'partial.json');
    const source = recordingSource(model.weights);
    const resolve = () => resolveMixedPrecision({ model: model.graph, trace: partial, weights: source, bits: 4, choices: CHOICES });
    await expect(resolve()).rejects.toThrow(ExpertImportanceError);
    await expect(resolve()).rejects.toThrow(`${partial}: no entry for MoE layer 0 (the model's MoE layers are 0, 1)`);
    expect(source.reads).toEqual([]);
  });
});
