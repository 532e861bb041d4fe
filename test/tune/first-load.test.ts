// load({ tune: 'first-load' }) on the machine's adapter (lavapipe here), with the Node store in a
// temporary cache directory: the first load times the bundle's candidates within the budget
// (discarding one the adapter refuses and one whose output is wrong, with reasons) and stores the
// choice; the next load reads it back and times nothing; a chosen candidate's results match the CPU
// interpreter; a corrupt store file is reported with its path and ignored. Nothing depends on
// which candidate is faster here.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileBundleData } from '../../compiler/compile-bundle.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { loadModel, type BundleData, type LoadOptions } from '../../runtime/bundle.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { nodeTuneStore } from '../../runtime/node/tune-file-store.js';
import type { StoredLoadTuning, TuneStore } from '../../runtime/tuning/tune-store.js';
import { blockCase } from '../support/block-case.js';

const spec = readFileSync(new URL('../../examples/tiny-mixtral.moe', import.meta.url), 'utf8');
const config = checkSpec(spec, 'tiny-mixtral.moe').config!;
const root = mkdtempSync(join(tmpdir(), 'moec-first-load-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const good = { gateUp: { bm: 16, bn: 32, bk: 16, tm: 2, tn: 4 }, down: { bm: 16, bn: 32, bk: 16, tm: 2, tn: 4 } };
const tooWide = { gateUp: { bm: 16, bn: 128, bk: 32, tm: 1, tn: 1 }, down: { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 } }; // 2048 threads
const other = { gateUp: { bm: 16, bn: 64, bk: 32, tm: 4, tn: 4, kvec: 4 as const }, down: { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 } };

/** A bundle whose candidates are c1 (good), c2 (refused by the adapter) and c3 (made wrong: its block never writes its output). */
function bundleWithCandidates(): BundleData {
  const { data } = compileBundleData(config, spec, undefined, {}, { wholeModel: true, loadCandidates: { count: 0, tiles: [good, tooWide, other], prefillTokens: 64 } });
  const c3 = data.loadCandidates!.sets.find((s) => s.id === 'c3')!;
  const template = (c3.plans['0'] as { $template: number }).$template;
  const plan = structuredClone(c3.planTemplates[template]) as { output: string; prefill: Array<{ bindings: Array<{ buffer: string; access: string }> }> };
  plan.prefill = plan.prefill.filter((s) => !s.bindings.some((b) => b.buffer === plan.output && b.access === 'read_write'));
  c3.planTemplates = [...c3.planTemplates, plan];
  c3.plans = { ...c3.plans, 0: { $template: c3.planTemplates.length - 1 } };
  return data;
}

const unusedWeights = { readF32: () => { throw new Error('no weights: the test runs no block'); } };

async function load(data: BundleData, options: Partial<LoadOptions>, weights: LoadOptions['weights'] = unusedWeights) {
  const warnings: string[] = [];
  const model = await loadModel(data, { gpu: createNodeGpu(), weights, tune: 'first-load', onWarning: (m) => warnings.push(m), ...options });
  return { model, warnings };
}

describe("load({ tune: 'first-load' })", () => {
  const data = bundleWithCandidates();
  const cacheDir = join(root, 'cache');
  const store = nodeTuneStore({ cacheDir });

  it('tunes on the first load within the budget, discarding a refused and a wrong candidate with reasons, and stores the choice', async () => {
    const { model, warnings } = await load(data, { tuneBudgetMs: 60_000, tuneStore: store });
    model.destroy();
    expect(warnings).toEqual([]);
    const report = model.loadTuning!;
    expect(report.from).toBe('measured');
    const outcome = report.outcome!;
    expect(outcome.elapsedMs).toBeLessThanOrEqual(60_000);
    expect(outcome.measured.map((m) => m.id).sort()).toEqual(['c1', 'default']);
    expect(outcome.discarded.map((d) => d.id).sort()).toEqual(['c2', 'c3']);
    expect(outcome.discarded.find((d) => d.id === 'c2')!.reason).toMatch(/^skipped: the adapter refuses it: /);
    expect(outcome.discarded.find((d) => d.id === 'c3')!.reason).toMatch(/^wrong: its output differs from the default plan's/);
    expect(outcome.unmeasured).toEqual([]);
    expect(['default', 'c1']).toContain(report.chosen);
    expect(model.tuning).toMatch(/load-time tuning on .*, measured now in \d+ ms: /);
    expect(report.storedAt).toMatch(/load-tuning[\\/].+\.json$/);
    const stored = JSON.parse(readFileSync(report.storedAt!, 'utf8')) as StoredLoadTuning;
    expect(stored.chosen).toBe(report.chosen);
    expect(stored.format).toBe('moec-load-tuning/1');
  });

  it('uses the stored choice on the next load without timing anything', async () => {
    const path = readdirStored(cacheDir);
    const before = readFileSync(path, 'utf8');
    const { model, warnings } = await load(data, { tuneBudgetMs: 60_000, tuneStore: store });
    model.destroy();
    expect(warnings).toEqual([]);
    expect(model.loadTuning!.from).toBe('stored');
    expect(model.loadTuning!.outcome).toEqual(JSON.parse(before));
    expect(model.tuning).toMatch(/stored at .*load-tuning/);
    expect(readFileSync(path, 'utf8')).toBe(before); // nothing measured, nothing rewritten
  });

  it('runs a stored candidate, and its results match the CPU interpreter', async () => {
    const path = readdirStored(cacheDir);
    const record = JSON.parse(readFileSync(path, 'utf8')) as StoredLoadTuning;
    const c1 = data.loadCandidates!.sets.find((s) => s.id === 'c1')!;
    writeFileSync(path, JSON.stringify({ ...record, chosen: 'c1', params: c1.params }));
    const cases = moeLayerIndices(config).map((layer) => blockCase(config, layer, [3, 64], 40 + layer));
    const weights = new Map(cases.flatMap((c) => [...c.weights])); // weight names carry the layer
    const { model } = await load(data, { tuneStore: store }, { readF32: (name) => weights.get(name)! });
    try {
      expect(model.loadTuning!.chosen).toBe('c1');
      for (const { layer, tokens, x, expected } of cases.flatMap((c) => c.runs)) {
        await model.poisonScratch(layer, tokens);
        expect(relativeError(await model.runMoeBlock(layer, x, tokens), expected), `layer ${layer}, T=${tokens}`).toBeLessThan(1e-4);
      }
    } finally {
      model.destroy();
    }
  });

  it('reports a corrupt store file with its path, ignores it, tunes again and rewrites it', async () => {
    const path = readdirStored(cacheDir);
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, 40)); // truncated
    const { model, warnings } = await load(data, { tuneBudgetMs: 1, tuneStore: store });
    model.destroy();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(path);
    expect(warnings[0]).toMatch(/not valid JSON .*ignored, tuning again/);
    expect(model.loadTuning!.from).toBe('measured');
    // A 1 ms budget: the default is measured (it is the reference), no candidate is.
    expect(model.loadTuning!.outcome!.outOfBudget).toBe(true);
    expect(model.loadTuning!.outcome!.unmeasured).toEqual(['c1', 'c2', 'c3']);
    expect(model.loadTuning!.chosen).toBe('default');
    expect(JSON.parse(readFileSync(path, 'utf8')).chosen).toBe('default');

    // Valid JSON that is not a record of this bundle's candidates: reported with the path, ignored too.
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), chosen: 'c9' }));
    const foreign = await load(data, { tuneBudgetMs: 1, tuneStore: store });
    foreign.model.destroy();
    expect(foreign.warnings).toEqual([`${path}: chooses "c9", which this bundle lacks; ignored, tuning again`]);
    expect(foreign.model.loadTuning!.from).toBe('measured');
  });

  it('without a store in Node, and for a bundle without candidates, says so and runs the defaults', async () => {
    const noStore = await load(data, { tuneBudgetMs: 1 });
    noStore.model.destroy();
    expect(noStore.warnings.join('\n')).toMatch(/no IndexedDB here and no load\(\{ tuneStore \}\), so the choice is not kept/);
    expect(noStore.model.loadTuning!.from).toBe('measured');

    const plain = compileBundleData(config, spec, [0], {}, {}).data;
    const none = await load(plain, { tuneStore: store });
    none.model.destroy();
    expect(none.warnings).toEqual([expect.stringMatching(/tune: 'first-load': tiny-mixtral: this bundle has no load-time candidates/)]);
    expect(none.model.loadTuning).toMatchObject({ from: 'none', chosen: 'default' });
    expect(none.model.tuning).toBe('defaults: no tuning cache');
  });

  it('with crossover candidates, times the lower bound against the decode path at the tokens where they differ', async () => {
    const { data: withCrossovers } = compileBundleData(config, spec, [0], {}, { loadCandidates: { count: 0, tiles: [good], crossovers: [4], prefillTokens: 64 } });
    expect(withCrossovers.loadCandidates!.sets.map((s) => [s.id, s.params.decodeMaxTokens])).toEqual([['c1', 4], ['c2', 8], ['c3', 4]]);
    const { weights, runs } = blockCase(config, 0, [5], 77);
    const { model, warnings } = await load(withCrossovers, { tuneBudgetMs: 20_000, tuneStore: nodeTuneStore({ cacheDir: join(root, 'crossover') }) }, { readF32: (name) => weights.get(name)! });
    try {
      expect(warnings).toEqual([]);
      const outcome = model.loadTuning!.outcome!;
      expect([outcome.discarded, outcome.unmeasured]).toEqual([[], []]);
      // The tiles first (at 64 tokens), then the chosen tiles' set with bound 4 against bound 8 at 5 tokens.
      expect(outcome.measured.filter((m) => m.tokens === 64).map((m) => m.id)).toEqual(['default', 'c2']);
      const tilesChosen = outcome.measured.filter((m) => m.tokens === 5);
      expect(tilesChosen.map((m) => m.params.decodeMaxTokens)).toEqual([8, 4]);
      expect(['default', 'c2']).toContain(tilesChosen[0]!.id);
      expect([tilesChosen[0]!.id, tilesChosen[1]!.id]).toContain(outcome.chosen);
      // Whichever path it chose for 5 tokens, the block still matches the interpreter there.
      const { x, expected } = runs[0]!;
      await model.poisonScratch(0, 5);
      expect(relativeError(await model.runMoeBlock(0, x, 5), expected)).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });

  it('refuses tune options it cannot follow, before opening a device', async () => {
    await expect(load(data, { tune: 'always' as 'first-load' })).rejects.toThrow("load: tune must be 'first-load' (or left out), got \"always\"");
    await expect(load(data, { tuneBudgetMs: -1 })).rejects.toThrow('load: tuneBudgetMs must be a number of milliseconds >= 0, got -1');
    await expect(load(data, { tuneStore: {} as TuneStore })).rejects.toThrow(/load: tuneStore must be a TuneStore/);
  });
});

/** The one record file the store wrote. */
function readdirStored(cacheDir: string): string {
  const dir = join(cacheDir, 'load-tuning');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  expect(files).toHaveLength(1);
  return join(dir, files[0]!);
}
