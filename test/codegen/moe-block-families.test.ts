// Every router family through the WebGPU MoE block (both paths: decode at 1 and 7 tokens,
// grouped-GEMM prefill at 64 and 300) against the CPU reference interpreter, on fresh random
// weights and inputs, with every scratch and output buffer poisoned (NaN) before each run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../codegen/moe-block/compile-moe-block.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { blockGraphOf, families, hiddenOf, normals, randomWeights, reference, relativeError, seededRandom } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';

const TOKEN_COUNTS = [1, 7, 64, 300];
const TOLERANCE = 1e-4;

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-families: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

let rt: GpuRuntime;
const results: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});

afterAll(() => {
  console.log(['family               tokens  path     rel.error   near-tie tokens excluded', ...results].join('\n'));
  rt?.destroy();
});

families.forEach((family, index) => {
  describe(family.name, () => {
    const { config, graph } = blockGraphOf(family);
    const H = hiddenOf(family);
    let executor: MoeBlockExecutor;
    let weights: Map<string, Float32Array>;
    let random: () => number;

    beforeAll(async () => {
      random = seededRandom(seed + 1_000_003 * index);
      weights = randomWeights(graph, random);
      const plan = compileMoeBlockPlan(graph, config);
      executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
    });
    afterAll(() => executor?.destroy());

    for (const tokens of TOKEN_COUNTS) {
      it(`${tokens} token${tokens > 1 ? 's' : ''} match the reference interpreter`, async () => {
        const x = normals(random, tokens * H, 1);
        executor.poisonScratch(tokens);
        const out = await executor.run(x, tokens);
        await rt.settle();
        const ref = reference(graph, x, tokens, weights);
        const routing = await checkRouting(rt.device, executor, graph, x, tokens, weights);
        expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
        const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
        const error = relativeError(out, ref, H, kept);
        const path = tokens <= executor.plan.decodeMaxTokens ? 'decode' : 'prefill';
        results.push(`${family.name.padEnd(20)} ${String(tokens).padStart(6)}  ${path.padEnd(8)} ${error.toExponential(2).padStart(9)}   ${routing.excluded.length}`);
        expect(out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
        expect(error).toBeLessThan(TOLERANCE);
        expect(routing.excluded.length, 'near-ties should be rare').toBeLessThanOrEqual(Math.max(1, tokens / 20));
      });
    }
  });
});
