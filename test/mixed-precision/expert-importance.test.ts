// An expert's importance is its share of its layer's routed tokens; the trace must cover every
// MoE layer of the model, and a missing one is named with the file.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { activationFrequency, ExpertImportanceError, readExpertImportance } from '../../compiler/mixed-precision/expert-importance.js';
import { TraceError } from '../../compiler/placement/routing-trace.js';
import { writeTrace, zipfCounts } from './mixed-precision-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'moec-importance-'));
const E = 6;

describe('expert importance', () => {
  it('is each expert\'s share of its layer\'s tokens, summing to 1 per layer', () => {
    const counts = [zipfCounts(E, 5000, 1.5, 1), zipfCounts(E, 900, 2, 2)];
    const path = writeTrace(dir, [{ layer: 1, counts: counts[0]! }, { layer: 3, counts: counts[1]! }], 'share.json');
    const importance = readExpertImportance(path, { experts: E, moeLayers: [1, 3] });
    expect(importance.map((l) => l.layer)).toEqual([1, 3]);
    importance.forEach(({ importance: shares }, l) => {
      const total = counts[l]!.reduce((a, b) => a + b, 0);
      shares.forEach((share, e) => expect(share).toBeCloseTo(counts[l]![e]! / total, 15));
      expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    });
  });

  it('is uniform on a layer no token reached', () => {
    expect(activationFrequency([0, 0, 0, 0])).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(activationFrequency([0, 3, 1, 0])).toEqual([0, 0.75, 0.25, 0]);
  });

  it('refuses a trace missing one of the model\'s MoE layers, naming the file and the layer', () => {
    const path = writeTrace(dir, [{ layer: 1, counts: zipfCounts(E, 100, 1, 3) }, { layer: 5, counts: zipfCounts(E, 100, 1, 4) }], 'missing.json');
    const read = () => readExpertImportance(path, { experts: E, moeLayers: [1, 3, 5] });
    expect(read).toThrow(ExpertImportanceError);
    expect(read).toThrow(`${path}: no entry for MoE layer 3 (the model's MoE layers are 1, 3, 5)`);
  });

  it('refuses a trace with a layer the model does not route, and one for another expert count', () => {
    const extra = writeTrace(dir, [{ layer: 1, counts: zipfCounts(E, 100, 1, 5) }, { layer: 2, counts: zipfCounts(E, 100, 1, 6) }], 'extra.json');
    expect(() => readExpertImportance(extra, { experts: E, moeLayers: [1] })).toThrow(`${extra}: has layer 2, which is not an MoE layer of the model`);
    const wide = writeTrace(dir, [{ layer: 1, counts: zipfCounts(E + 2, 100, 1, 7) }], 'wide.json');
    expect(() => readExpertImportance(wide, { experts: E, moeLayers: [1] })).toThrow(TraceError);
    expect(() => readExpertImportance(wide, { experts: E, moeLayers: [1] })).toThrow(`${wide}: layers[0].counts has ${E + 2} numbers, expected ${E}`);
  });
});
