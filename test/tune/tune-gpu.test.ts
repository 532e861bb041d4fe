// `moec tune` end to end on the machine's adapter (lavapipe here): tunes tiny-mixtral with a small
// budget, reloads the cache, resumes without re-measuring, compiles with the result (a bundle with
// plans for this adapter and another), and the chosen plans still match the CPU interpreter. Also
// a candidate the adapter refuses is skipped with the reason, and one whose WGSL computes a wrong
// result is discarded and reported. Nothing here depends on timings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileBundleData } from '../../compiler/compile-bundle.js';
import { compileMoeBlock } from '../../compiler/moe-block-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { tunedTargetFor } from '../../compiler/tune/apply-tuning.js';
import { resultTable } from '../../compiler/cli/tune-command.js';
import { cacheFileOf, readTuningCache, writeTuningFile } from '../../compiler/tune/tuning-cache.js';
import { tuneMoeBlock, type TuneEvent } from '../../compiler/tune/tuner.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { loadModel } from '../../runtime/bundle.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { adapterIdentity } from '../../runtime/tuning/adapter-identity.js';
import { emptyTuningFile, type TuningFile } from '../../runtime/tuning/tuning-file.js';
import { blockCase } from '../support/block-case.js';

const spec = readFileSync(new URL('../../examples/tiny-mixtral.moe', import.meta.url), 'utf8');
const config = checkSpec(spec, 'tiny-mixtral.moe').config!;
const dir = mkdtempSync(join(tmpdir(), 'moec-tune-gpu-'));
const fast = { timing: { samples: 2, sampleMs: 1 }, retimeRounds: 1, repeat: 1 };
let rt: GpuRuntime;

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => {
  rt?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Fresh random weights for layer `layer`'s block, an input of `tokens` rows and the interpreter's output. */
function blockCaseAt(layer: number, tokens: number, seed: number) {
  const { weights, runs: [run] } = blockCase(config, layer, [tokens], seed);
  return { weights, x: run!.x, expected: run!.expected };
}

describe('moec tune on the adapter', () => {
  it('tunes, reloads, resumes, compiles with the result, and the tuned plans match the interpreter', async () => {
    const cache = join(dir, 'cache');
    const path = cacheFileOf(cache, adapterIdentity(rt.info, rt.adapter));
    const file = emptyTuningFile();
    const events: TuneEvent[] = [];
    const result = await tuneMoeBlock(rt, config, {
      tokens: [4, 64], budgetMs: 12_000, maxCandidates: 3, file, save: (f) => writeTuningFile(path, f), onEvent: (e) => events.push(e), ...fast,
    });
    expect(result.entries.map((e) => `${e.family} ${e.tokens}`).sort()).toEqual(['decode.rows 4', 'decode_max_tokens 4', 'grouped_gemm.down 64', 'grouped_gemm.gate_up 64']);
    const gateUp = result.entries.find((e) => e.family === 'grouped_gemm.gate_up')!;
    expect(gateUp.measured.length).toBeGreaterThanOrEqual(1); // the default is always measured
    expect(events.some((e) => e.kind === 'candidate' && e.outcome === 'measured')).toBe(true);

    // The cache holds what the run produced; a rerun re-measures nothing it already has.
    const reloaded: TuningFile = readTuningCache(cache, (m) => { throw new Error(m); });
    expect(reloaded.adapters[0]!.entries.length).toBe(4);
    const before = new Map(gateUp.measured.map((m) => [JSON.stringify(m.config), m.ms]));
    const rerunEvents: TuneEvent[] = [];
    const rerun = await tuneMoeBlock(rt, config, { tokens: [4, 64], budgetMs: 6_000, maxCandidates: 3, file: reloaded, save: (f) => writeTuningFile(path, f), onEvent: (e) => rerunEvents.push(e), ...fast });
    const again = rerun.entries.find((e) => e.family === 'grouped_gemm.gate_up')!;
    for (const [config, ms] of before) expect(again.measured.find((m) => JSON.stringify(m.config) === config)?.ms).toBe(ms);
    expect(rerunEvents.filter((e) => e.kind === 'candidate' && e.outcome === 'measured' && e.task.startsWith('grouped_gemm.gate_up') && before.has(JSON.stringify(e.config)))).toEqual([]);

    // Bake in a measured candidate other than the default when there is one (the check passed for it), as a winner would be.
    const section = reloaded.adapters[0]!;
    const entry = section.entries.find((e) => e.family === 'grouped_gemm.gate_up')!;
    const other = entry.measured.find((m) => JSON.stringify(m.config) !== JSON.stringify(entry.default));
    // (Without one, budget permitting none, a fixed other tile: the compile path is what this checks.)
    Object.assign(entry, { config: other?.config ?? { bm: 16, bn: 32, bk: 8, tm: 2, tn: 2 }, kept: 'tuned' });
    expect(entry.config).not.toEqual(entry.default);
    // And decode rows other than the default (the decode path at 3 tokens runs them).
    Object.assign(section.entries.find((e) => e.family === 'decode.rows')!, { config: { rows: 64 }, kept: 'tuned' });
    const tuned = tunedTargetFor(section, config)!;
    expect(tuned.target.expertGemmTiles!.gateUp).toEqual(entry.config);
    expect(tuned.target.decodeRows).toBe(64);

    for (const tokens of [3, 64]) {
      const { weights, x, expected } = blockCaseAt(0, tokens, 7 + tokens);
      const plan = compileMoeBlock(config, 0, { target: tuned.target }).plan;
      const executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
      executor.poisonScratch(tokens);
      expect(relativeError(await executor.run(x, tokens), expected), `T=${tokens}`).toBeLessThan(1e-4);
      executor.destroy();
    }

    // A bundle with plans for this adapter and for another: load picks this adapter's, and its results match.
    const elsewhere = { ...tuned, adapter: { ...tuned.adapter, description: 'another GPU' }, key: 'another', target: { ...tuned.target, source: 'tuning for another GPU' } };
    const bundle = compileBundleData(config, spec, [0], {}, { tuned: [elsewhere, tuned] });
    expect(bundle.data.tuned!.map((t) => t.key)).toEqual(['another', tuned.key]);
    const { weights, x, expected } = blockCaseAt(0, 64, 99);
    const model = await loadModel(bundle.data, { gpu: createNodeGpu(), weights: { readF32: (name) => weights.get(name)! } });
    try {
      expect(model.tuning).toBe(tuned.target.source);
      await model.poisonScratch(0, 64);
      expect(relativeError(await model.runMoeBlock(0, x, 64), expected)).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
    const other2 = compileBundleData(config, spec, [0], {}, { tuned: [elsewhere] });
    const fallback = await loadModel(other2.data, { gpu: createNodeGpu(), weights: { readF32: (name) => weights.get(name)! } });
    expect(fallback.tuning).toBe('defaults: no tuning cache');
    fallback.destroy();
  });

  it('skips a candidate the adapter refuses, with the reason, and keeps tuning', async () => {
    const file = emptyTuningFile();
    const tooWide = { bm: 16, bn: 128, bk: 32, tm: 1, tn: 1 }; // 2048 threads, 35 KB of workgroup memory
    const result = await tuneMoeBlock(rt, config, {
      tokens: [64], budgetMs: 10_000, maxCandidates: 1, file, save: () => undefined, ...fast,
      candidates: { 'grouped_gemm.gate_up': [{ bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 }, tooWide] },
    });
    const entry = result.entries.find((e) => e.family === 'grouped_gemm.gate_up')!;
    expect(entry.refused).toHaveLength(1);
    expect(entry.refused[0]!.config).toEqual(tooWide);
    expect(entry.refused[0]!.reason).toMatch(/^skipped: the adapter refuses it: /);
    expect(entry.config).toEqual(entry.default);
    expect(result.refused[0]).toContain('bn=128');
  });

  it('discards and reports a candidate whose kernels compute a wrong result, and keeps tuning', async () => {
    const cache = join(dir, 'wrong');
    const path = cacheFileOf(cache, adapterIdentity(rt.info, rt.adapter));
    const good = { bm: 16, bn: 32, bk: 16, tm: 2, tn: 2 };
    const wrong = { bm: 16, bn: 32, bk: 8, tm: 2, tn: 2 }; // a valid tile, its gate/up epilogue's sign flipped below
    let rewritten = 0;
    const events: TuneEvent[] = [];
    const result = await tuneMoeBlock(rt, config, {
      tokens: [64], budgetMs: 60_000, maxCandidates: 1, file: emptyTuningFile(), save: (f) => writeTuningFile(path, f), onEvent: (e) => events.push(e), ...fast,
      candidates: { 'grouped_gemm.gate_up': [good, wrong] },
      rewritePlan(plan, target) {
        if (JSON.stringify(target.expertGemmTiles?.gateUp) !== JSON.stringify(wrong)) return plan;
        const kernels = plan.kernels.map((k) => {
          if (!k.name.startsWith('grouped_gemm_gateup') || !k.wgsl.includes('to_act(act(g, u))')) return k;
          rewritten++;
          return { ...k, wgsl: k.wgsl.replaceAll('to_act(act(g, u))', 'to_act(-act(g, u))') };
        });
        return { ...plan, kernels };
      },
    });
    expect(rewritten).toBeGreaterThan(0); // the template still has the epilogue this rewrites

    const entry = result.entries.find((e) => e.family === 'grouped_gemm.gate_up')!;
    expect(entry.done).toBe(true);
    expect(entry.refused.map((r) => r.config)).toEqual([wrong]);
    const reason = entry.refused[0]!.reason;
    const m = /^wrong: relative error (\S+) against the CPU interpreter \(tolerance 0\.0001\)$/.exec(reason);
    expect(m, reason).not.toBeNull();
    // Every expert's gate/up output negated negates the block's output: ||-y - y|| / ||y|| = 2.
    expect(Number(m![1])).toBeCloseTo(2, 1);
    // The default and the good candidate were both checked and timed; the wrong one never.
    expect(entry.measured.map((x) => x.config)).toEqual([entry.default, good]);
    expect(entry.measured.every((x) => x.ms > 0)).toBe(true);
    expect(entry.config).not.toEqual(wrong);
    const outcomes = events.flatMap((e) => (e.kind === 'candidate' && e.task === 'grouped_gemm.gate_up T=64' ? [`${JSON.stringify(e.config)} ${e.outcome}`] : []));
    expect(outcomes).toEqual([`${JSON.stringify(entry.default)} measured`, `${JSON.stringify(good)} measured`, `${JSON.stringify(wrong)} wrong`]);
    // The down task still ran, with gate/up's kept tile.
    expect(result.entries.find((e) => e.family === 'grouped_gemm.down')!.measured.length).toBeGreaterThanOrEqual(1);

    // What `moec tune` prints: `refused: <line>` on stderr, the refused count in the table.
    expect(result.refused).toEqual([`grouped_gemm.gate_up T=64 bm=16 bn=32 bk=8 tm=2 tn=2: ${reason}`]);
    const [header, ...rows] = resultTable(result.entries).split('\n').map((r) => r.split(/\s{2,}/));
    expect(rows.find((r) => r[0] === 'grouped_gemm.gate_up')![header!.indexOf('refused')]).toBe('1');

    // The cache file holds the refusal and never the wrong tile as the winner.
    const saved = readTuningCache(cache, (msg) => { throw new Error(msg); }).adapters[0]!.entries.find((e) => e.family === 'grouped_gemm.gate_up')!;
    expect(saved.config).not.toEqual(wrong);
    expect(saved.config).toEqual(entry.config);
    expect(saved.refused).toEqual([{ config: wrong, reason }]);
    expect(saved.measured.some((x) => JSON.stringify(x.config) === JSON.stringify(wrong))).toBe(false);
  });
});
