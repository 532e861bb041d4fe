// The executor's per-token-count caches stay bounded, and every buffer it lets go of is destroyed
// once the queue is done with it: evicted uniform buffers, and activation buffers outgrown by
// encode()-only callers that never call run().
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { blockGraphOf, normals, randomWeights, reference, relativeError, seededRandom, type Family } from './moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-executor-cache: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);

const tiny: Family = { name: 'tiny', hidden: 16, moe: 'experts = 4\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 8)' };
const { config, graph } = blockGraphOf(tiny);
const H = 16;

describe('executor caches', () => {
  let rt: GpuRuntime;
  let executor: MoeBlockExecutor;
  let weights: Map<string, Float32Array>;
  let destroySpy: MockInstance;
  /** Labels of the buffers destroyed so far. */
  const destroyedLabels = (): string[] => destroySpy.mock.contexts.map((b) => (b as GPUBuffer).label);

  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
    weights = randomWeights(graph, random);
    const probe = rt.device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE });
    destroySpy = vi.spyOn(Object.getPrototypeOf(probe) as GPUBuffer, 'destroy');
    probe.destroy();
  });
  afterAll(() => {
    executor?.destroy();
    destroySpy?.mockRestore();
    rt?.destroy();
  });

  it('70 distinct token counts: at most 64 cached, the evicted uniform buffers destroyed, results right', async () => {
    executor = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0), { readF32: (name) => weights.get(name)! });
    destroySpy.mockClear();
    for (let tokens = 1; tokens <= 70; tokens++) {
      const x = normals(random, tokens * H, 1);
      executor.poisonScratch(tokens);
      const out = await executor.run(x, tokens);
      expect(relativeError(out, reference(graph, x, tokens, weights), H), `${tokens} tokens`).toBeLessThan(1e-4);
    }
    await rt.settle();
    const stats = executor.stats();
    expect(stats.tokenCounts).toBe(64);
    expect(stats.bindGroupSets).toBeLessThanOrEqual(64);
    expect(stats.retiredBuffers).toBe(0);
    expect(destroyedLabels().filter((l) => l.includes('/params T=')).sort()).toEqual([1, 2, 3, 4, 5, 6].map((t) => `${executor.plan.name}/params T=${t}`).sort());
  });

  it('encode() alone: outgrown activation buffers are destroyed once the queue drains', async () => {
    destroySpy.mockClear();
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const counts = [100, 200, 400];
    const io = counts.map((tokens) => [0, 1].map(() => rt.device.createBuffer({ size: tokens * H * 4, usage })));
    counts.forEach((tokens, i) => {
      const encoder = rt.device.createCommandEncoder();
      executor.encode(encoder, io[i]![0]!, io[i]![1]!, tokens);
      rt.device.queue.submit([encoder.finish()]);
    });
    await rt.settle();
    expect(executor.stats().retiredBuffers).toBe(0);
    // Capacity went 128 (from the first test), 256, 512: two generations of activations retired.
    const name = `${executor.plan.name}/route_ids`;
    expect(destroyedLabels().filter((l) => l === name)).toHaveLength(2);
    for (const buffer of io.flat()) buffer.destroy();
  });
});
