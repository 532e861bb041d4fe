// Every grouped GEMM loop variant the tuner can pick (GemmTile kvec / direct: vec4 along K through
// workgroup tiles, vec4 along K read directly) against the CPU interpreter, on blocks whose widths
// are not tile multiples and some not multiples of 4 (the variants' element-by-element loads), with
// f32, int4 and int8 experts and a shared expert folded into the grouped GEMMs; scratch poisoned
// before each run, fresh random weights and inputs per seed. Nothing here depends on timings.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBench } from '../../compiler/tune/block-bench.js';
import { gemmTileCandidates } from '../../compiler/tune/search-space.js';
import type { GemmTile } from '../../ir/ops-lowered.js';
import { DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { configOf, type Family } from '../codegen/moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`gemm-variants: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const TOKEN_COUNTS = [24, 100];
const TOLERANCE = 1e-4;

/** Gate/up and down tiles (sharing bm), one pair per variant, with bk and bn that do not divide the widths. */
const VARIANT_TILES: Array<{ name: string; gateUp: GemmTile; down: GemmTile }> = [
  { name: 'vec4 along K, workgroup tiles', gateUp: { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4, kvec: 4 }, down: { bm: 16, bn: 32, bk: 32, tm: 2, tn: 4, kvec: 4 } },
  { name: 'vec4 along K, small tiles', gateUp: { bm: 8, bn: 16, bk: 8, tm: 2, tn: 1, kvec: 4 }, down: { bm: 8, bn: 32, bk: 4, tm: 1, tn: 4, kvec: 4 } },
  { name: 'vec4 along K, direct reads', gateUp: { bm: 32, bn: 64, bk: 64, tm: 8, tn: 4, kvec: 4, direct: 1 }, down: { bm: 32, bn: 16, bk: 8, tm: 4, tn: 2, kvec: 4, direct: 1 } },
];

/** Hidden 72 and 70; intermediates 48, 54, 50: vec4 and element-by-element rows on each side. */
const BLOCKS: Array<{ family: Family; compile: string }> = [
  { family: { name: 'mixtral-f32', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 50)' }, compile: 'dtype = f32' },
  { family: { name: 'relu-gate-f32', hidden: 70, moe: 'experts = 8\n top_k = 4\n router = relu_gate\n expert = swiglu(intermediate = 48)' }, compile: 'dtype = f32' },
  { family: { name: 'mixtral-int4', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 48)' }, compile: 'dtype = f32\n quantize experts = int4(group = 24)' },
  {
    family: { name: 'qwen2-moe-int8', moe: 'experts = 12\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 54)\n shared = swiglu(intermediate = 90)\n shared_gate = sigmoid' },
    compile: 'dtype = f32\n quantize experts = int8(group = 18)',
  },
];

let rt: GpuRuntime;
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => rt?.destroy());

describe('the search space', () => {
  it('offers every loop variant, each tile at most once', () => {
    const tiles = gemmTileCandidates({ kdim: 256, ndim: 512, gateup: true, rowsPerExpert: 64, limits: DEFAULT_LIMITS }, undefined, 200);
    const texts = tiles.map((t) => JSON.stringify(t));
    expect(new Set(texts).size).toBe(texts.length);
    expect(tiles.some((t) => t.kvec === undefined)).toBe(true);
    expect(tiles.some((t) => t.kvec === 4 && t.direct === undefined)).toBe(true);
    expect(tiles.some((t) => t.kvec === 4 && t.direct === 1)).toBe(true);
    expect(tiles.every((t) => t.kvec !== 4 || t.bk % 4 === 0)).toBe(true);
  });
});

BLOCKS.forEach(({ family, compile }, blockIndex) => {
  describe(family.name, () => {
    let bench: BlockBench;
    beforeAll(() => {
      bench = new BlockBench(rt, configOf(family, `target = webgpu\n ${compile}`), 0, {}, seed + 7919 * blockIndex);
    });
    for (const variant of VARIANT_TILES) {
      it(`${variant.name} matches the interpreter at ${TOKEN_COUNTS.join(' and ')} tokens`, async () => {
        const target = { expertGemmTiles: { gateUp: variant.gateUp, down: variant.down } };
        const plan = bench.plan(target);
        // The plan really runs the variant: its grouped GEMM kernels are the kvec template's, each
        // thread's sums scalars in unrolled code (SwiftShader's Subzero keeps an indexed array in memory).
        const gemms = plan.kernels.filter((k) => k.name.includes('grouped_gemm'));
        expect(gemms.every((k) => k.wgsl.includes('acc0_0_0 += dot(av0, wv0_0)'))).toBe(true);
        expect(gemms.every((k) => !/\bacc[01]\[|array<f32, TM/.test(k.wgsl))).toBe(true);
        const executor = await bench.executor(plan);
        try {
          for (const tokens of TOKEN_COUNTS) {
            const error = await bench.check(executor, tokens, target);
            expect(error, `${tokens} tokens`).toBeLessThan(TOLERANCE);
          }
        } finally {
          executor.destroy();
        }
      }, 120_000);
    }
  });
});
