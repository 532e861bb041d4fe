// Tokens whose hidden states hold NaN or Inf (so their router logits do): every router family
// leaves their slots empty (id -1, weight 0) rather than indexing another token's row, and the
// other tokens still match the CPU reference, on both paths.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { readBackBytes } from '../../runtime/buffer-pool.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { blockGraphOf, families, hiddenOf, normals, randomWeights, reference, relativeError, seededRandom } from './moe-fixtures.js';

// A fixed seed: this test is about non-finite inputs, and does not excuse genuine near-ties in
// routing the way the family tests (fresh inputs every run, test/codegen/route-check.ts) do.
const seed = Number(process.env.MOEC_TEST_SEED ?? 20261122);
console.log(`moe-block-nonfinite: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

let rt: GpuRuntime;
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => rt?.destroy());

/** Every third token all NaN (from token 1, so each follows a finite one), and the last token one +Inf element. */
function poisonedTokens(x: Float32Array, tokens: number, hidden: number): { nan: number[]; inf: number[] } {
  const nan = Array.from({ length: tokens }, (_, t) => t).filter((t) => t % 3 === 1 && t < tokens - 1);
  for (const t of nan) x.fill(Number.NaN, t * hidden, (t + 1) * hidden);
  x[(tokens - 1) * hidden] = Number.POSITIVE_INFINITY;
  return { nan, inf: [tokens - 1] };
}

families.forEach((family, index) => {
  describe(family.name, () => {
    for (const tokens of [7, 64]) {
      it(`${tokens} tokens with NaN and Inf rows: empty slots for those, the reference for the rest`, async () => {
        const random = seededRandom(seed + 7919 * index + tokens);
        const { config, graph } = blockGraphOf(family);
        const H = hiddenOf(family);
        const weights = randomWeights(graph, random);
        const executor = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0), { readF32: (name) => weights.get(name)! });
        try {
          const x = normals(random, tokens * H, 1);
          const { nan, inf } = poisonedTokens(x, tokens, H);
          executor.poisonScratch(tokens);
          const out = await executor.run(x, tokens);
          await rt.settle();
          const K = executor.plan.topK;
          const ids = new Int32Array(await readBackBytes(rt.device, executor.scratchBuffer('route_ids'), tokens * K * 4));
          const ws = new Float32Array(await readBackBytes(rt.device, executor.scratchBuffer('routing_weights'), tokens * K * 4));
          for (const t of nan) {
            expect([...ids.subarray(t * K, (t + 1) * K)], `token ${t} (NaN) ids`).toEqual(Array(K).fill(-1));
            expect([...ws.subarray(t * K, (t + 1) * K)], `token ${t} (NaN) weights`).toEqual(Array(K).fill(0));
          }
          for (const t of inf) {
            for (let k = 0; k < K; k++) {
              const [id, w] = [ids[t * K + k]!, ws[t * K + k]!];
              expect(id >= -1 && id < executor.plan.experts && (id >= 0 || w === 0), `token ${t} (Inf) slot ${k}: id ${id}, weight ${w}`).toBe(true);
            }
          }
          // Tokens are independent: the reference on the finite tokens alone.
          const finite = Array.from({ length: tokens }, (_, t) => t).filter((t) => !nan.includes(t) && !inf.includes(t));
          const xFinite = new Float32Array(finite.length * H);
          finite.forEach((t, i) => xFinite.set(x.subarray(t * H, (t + 1) * H), i * H));
          const ref = reference(graph, xFinite, finite.length, weights);
          const got = new Float32Array(finite.length * H);
          finite.forEach((t, i) => got.set(out.subarray(t * H, (t + 1) * H), i * H));
          expect(got.every(Number.isFinite), 'a finite token has a non-finite output').toBe(true);
          expect(relativeError(got, ref, H)).toBeLessThan(1e-4);
        } finally {
          executor.destroy();
        }
      });
    }
  });
});
