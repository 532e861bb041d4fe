// The fused decode kernels' rows per workgroup (target.decodeRows, `moec tune`'s decode.rows): plans
// compiled with rows other than the default match the CPU interpreter at 1, 3 and 8 tokens with
// f32 and int4 experts and a sigmoid-gated shared expert (its gate's tree spans the workgroup),
// scratch poisoned, fresh random weights and inputs per seed; the search space follows the
// adapter's limits; and the tuner measures the family at a decode bucket, writes it to the cache,
// and `moec compile --tuning` applies it. Nothing here depends on timings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlock } from '../../compiler/moe-block-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { tunedTargetFor } from '../../compiler/tune/apply-tuning.js';
import { BlockBench } from '../../compiler/tune/block-bench.js';
import { decodeRowsCandidates } from '../../compiler/tune/search-space.js';
import { readKernelTemplate } from '../../compiler/tune/template-hash.js';
import { cacheFileOf, readTuningCache, writeTuningFile } from '../../compiler/tune/tuning-cache.js';
import { tuneMoeBlock, type TuneEvent } from '../../compiler/tune/tuner.js';
import { DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { adapterIdentity } from '../../runtime/tuning/adapter-identity.js';
import { emptyTuningFile } from '../../runtime/tuning/tuning-file.js';
import { evalTokenExpr } from '../../runtime/plan.js';
import { configOf, type Family } from '../codegen/moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`decode-rows: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const TOKEN_COUNTS = [1, 3, 8];
const TOLERANCE = 1e-4;
const fast = { timing: { samples: 2, sampleMs: 1 }, retimeRounds: 1, repeat: 1 };

/** Widths that are not multiples of the rows tried (hidden 72, intermediates 50, 48, 54, 90). */
const BLOCKS: Array<{ family: Family; compile: string; rows: number[] }> = [
  { family: { name: 'mixtral-f32', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 50)' }, compile: 'dtype = f32', rows: [8, 64] },
  { family: { name: 'mixtral-int4', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 48)' }, compile: 'dtype = f32\n quantize experts = int4(group = 24)', rows: [128] },
  {
    family: { name: 'qwen2-moe-shared-gate', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 54)\n shared = swiglu(intermediate = 90)\n shared_gate = sigmoid' },
    compile: 'dtype = f32', rows: [16, 256],
  },
];

let rt: GpuRuntime;
const dir = mkdtempSync(join(tmpdir(), 'moec-decode-rows-'));
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => {
  rt?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('the decode rows search space', () => {
  it('starts with the default and keeps within the adapter\'s workgroup size and the widest output', () => {
    expect(decodeRowsCandidates({ widest: 1024, sharedGate: false, limits: DEFAULT_LIMITS }, 32)).toEqual([32, 16, 64, 8, 128, 256]);
    expect(decodeRowsCandidates({ widest: 1024, sharedGate: true, limits: { ...DEFAULT_LIMITS, maxComputeWorkgroupSizeX: 64 } }, 32)).toEqual([32, 16, 64, 8]);
    expect(decodeRowsCandidates({ widest: 1024, sharedGate: true, limits: { ...DEFAULT_LIMITS, maxComputeWorkgroupStorageSize: 2048 } }, 32)).toEqual([32, 16, 64, 8]);
    expect(decodeRowsCandidates({ widest: 40, sharedGate: false, limits: DEFAULT_LIMITS }, 32)).toEqual([32, 16, 64, 8]);
  });
});

BLOCKS.forEach(({ family, compile, rows }, blockIndex) => {
  describe(family.name, () => {
    let bench: BlockBench;
    beforeAll(() => {
      bench = new BlockBench(rt, configOf(family, `target = webgpu\n ${compile}`), 0, {}, seed + 7919 * blockIndex);
    });
    for (const r of rows) {
      it(`rows = ${r} matches the interpreter at ${TOKEN_COUNTS.join(', ')} tokens`, async () => {
        const plan = bench.plan({ decodeRows: r });
        // The plan really runs r threads per fused decode workgroup, on a grid of r-row tiles.
        const fused = plan.kernels.filter((k) => k.name.startsWith('decode_'));
        expect(fused.map((k) => k.workgroupSize)).toEqual([[r, 1, 1], [r, 1, 1]]);
        const down = plan.decode.find((s) => s.kernel.startsWith('decode_down_combine'))!;
        expect(down.grid.kind === 'fixed' && evalTokenExpr(down.grid.x, 1)).toBe(Math.ceil(bench.hidden / r));
        const executor = await bench.executor(plan);
        try {
          for (const tokens of TOKEN_COUNTS) {
            const error = await bench.check(executor, tokens, {});
            expect(error, `${tokens} tokens`).toBeLessThan(TOLERANCE);
          }
        } finally {
          executor.destroy();
        }
      }, 120_000);
    }
  });
});

describe('moec tune: the decode.rows family', () => {
  it('is measured at a decode bucket, cached, and applied by compile --tuning', async () => {
    const spec = readFileSync(new URL('../../examples/tiny-mixtral.moe', import.meta.url), 'utf8');
    const config = checkSpec(spec, 'tiny-mixtral.moe').config!;
    const cache = join(dir, 'cache');
    const path = cacheFileOf(cache, adapterIdentity(rt.info, rt.adapter));
    const events: TuneEvent[] = [];
    const result = await tuneMoeBlock(rt, config, {
      tokens: [1], budgetMs: 20_000, file: emptyTuningFile(), save: (f) => writeTuningFile(path, f), onEvent: (e) => events.push(e), ...fast,
      candidates: { 'decode.rows': [32, 64] },
    });
    expect(result.entries.map((e) => `${e.family} ${e.tokens}`)).toEqual(['decode.rows 1']);
    const entry = result.entries[0]!;
    expect(entry.default).toEqual({ rows: 32 });
    expect(entry.done).toBe(true);
    // Both candidates passed the interpreter check and were timed.
    expect(entry.measured.map((m) => m.config)).toEqual([{ rows: 32 }, { rows: 64 }]);
    expect(entry.refused).toEqual([]);
    expect(events.filter((e) => e.kind === 'candidate' && e.outcome === 'measured').map((e) => e.kind === 'candidate' && e.task)).toEqual(['decode.rows T=1', 'decode.rows T=1']);

    const saved = readTuningCache(cache, (m) => { throw new Error(m); }).adapters[0]!;
    const cached = saved.entries.find((e) => e.family === 'decode.rows')!;
    expect(cached.measured).toEqual(entry.measured);
    expect(cached.templateHash).toMatch(/^[0-9a-f]{16}$/);

    // A winner (as if rows 64 had won beyond the noise) becomes the target's decodeRows and the plan's kernels.
    Object.assign(cached, { config: { rows: 64 }, kept: 'tuned' });
    const tuned = tunedTargetFor(saved, config)!;
    expect(tuned.target.decodeRows).toBe(64);
    expect(tuned.target.source).toContain('decode rows 64 (T=1, tuned)');
    expect(tuned.requires.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(64);
    const plan = compileMoeBlock(config, 0, { target: tuned.target }).plan;
    expect(plan.kernels.filter((k) => k.name.startsWith('decode_')).map((k) => k.workgroupSize[0])).toEqual([64, 64]);

    // A template edit makes the entry stale: reported and not applied.
    const warnings: string[] = [];
    const stale = tunedTargetFor(saved, config, {}, { warn: (m) => warnings.push(m), readTemplate: (p) => (p.startsWith('decode-gate-up/') ? 'edited' : readKernelTemplate(p)) });
    expect(stale).toBeUndefined();
    expect(warnings.join('\n')).toContain('decode.rows entry was tuned with other templates');
  }, 120_000);
});
