// Every router family through the WebGPU MoE block (both paths: decode at 1 and 7 tokens,
// grouped-GEMM prefill at 64 and 300) against the CPU reference interpreter, on fresh random
// weights and inputs, with every scratch and output buffer poisoned (NaN) before each run; with
// activations stored in f32, and in f16 (compile `dtype = f16`, on adapters with shader-f16). For
// f16 the input is rounded to f16 before the reference sees it, so the error is what storing the
// intermediates and the output in f16 costs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { blockGraphOf, families, hiddenOf, normals, randomWeights, reference, relativeError, seededRandom } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';

const TOKEN_COUNTS = [1, 7, 64, 300];
const ACTIVATIONS = [
  { dtype: 'f32', tolerance: 1e-4, input: (x: Float32Array) => x },
  // f16 keeps 11 significant bits (rounding <= 4.9e-4 relative); three roundings in a row stay well under this.
  { dtype: 'f16', tolerance: 5e-3, input: (x: Float32Array) => float16BitsToFloat32(float32ToFloat16Bits(x)) },
] as const;

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-families: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

let rt: GpuRuntime;
const results: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});

afterAll(() => {
  console.log(['family               act  tokens  path     rel.error   near-tie tokens excluded', ...results].join('\n'));
  rt?.destroy();
});

ACTIVATIONS.forEach(({ dtype, tolerance, input }) => families.forEach((family, index) => {
  describe(`${family.name}, ${dtype} activations`, () => {
    const { config, graph } = blockGraphOf(family, `target = webgpu\n dtype = ${dtype}`);
    const H = hiddenOf(family);
    let executor: MoeBlockExecutor | undefined;
    let weights: Map<string, Float32Array>;
    let random: () => number;

    beforeAll(async () => {
      if (dtype === 'f16' && !rt.features.has('shader-f16')) return;
      random = seededRandom(seed + 1_000_003 * index);
      weights = randomWeights(graph, random);
      const plan = compileMoeBlockPlan(config, 0);
      executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
    });
    afterAll(() => executor?.destroy());

    for (const tokens of TOKEN_COUNTS) {
      it(`${tokens} token${tokens > 1 ? 's' : ''} match the reference interpreter`, async (ctx) => {
        if (!executor) return ctx.skip('this adapter has no shader-f16');
        const x = input(normals(random, tokens * H, 1));
        executor.poisonScratch(tokens);
        const out = await executor.run(x, tokens);
        await rt.settle();
        const ref = reference(graph, x, tokens, weights);
        const routing = await checkRouting(rt.device, executor, graph, x, tokens, weights);
        expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
        const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
        const error = relativeError(out, ref, H, kept);
        const path = tokens <= executor.plan.decodeMaxTokens ? 'decode' : 'prefill';
        results.push(`${family.name.padEnd(20)} ${dtype}  ${String(tokens).padStart(6)}  ${path.padEnd(8)} ${error.toExponential(2).padStart(9)}   ${routing.excluded.length}`);
        expect(out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
        expect(error).toBeLessThan(tolerance);
        expect(routing.excluded.length, 'near-ties should be rare').toBeLessThanOrEqual(Math.max(1, tokens / 20));
      });
    }
  });
}));
