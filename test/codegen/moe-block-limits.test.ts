// The MoE block's promises beyond numbers: exactly one GPU -> CPU read per forward (none
// between router and combine), correct results under WebGPU's default limits, and with expert
// weights sharded across bindings (a tiny maxStorageBufferBindingSize), on both paths.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../codegen/moe-block/compile-moe-block.js';
import { readbackCount } from '../../runtime/buffer-pool.js';
import { DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { blockGraphOf, families, HIDDEN, normals, randomWeights, reference, relativeError, seededRandom, type Family } from './moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-limits: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);
const family = (name: string): Family => families.find((f) => f.name === name)!;

async function runAgainstReference(rt: GpuRuntime, fam: Family, plan: MoeBlockPlan | undefined, tokenCounts: number[], options = {}): Promise<number[]> {
  const { config, graph } = blockGraphOf(fam);
  const weights = randomWeights(graph, random);
  const executor = await createMoeBlockExecutor(rt, plan ?? compileMoeBlockPlan(graph, config, options), { readF32: (name) => weights.get(name)! });
  try {
    const errors: number[] = [];
    for (const tokens of tokenCounts) {
      const x = normals(random, tokens * HIDDEN, 1);
      executor.poisonScratch(tokens);
      const out = await executor.run(x, tokens);
      await rt.settle();
      errors.push(relativeError(out, reference(graph, x, tokens, weights), HIDDEN));
    }
    return errors;
  } finally {
    executor.destroy();
  }
}

describe('on the adapter with its raised limits', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
  });
  afterAll(() => rt?.destroy());

  it('reads the GPU once per forward: nothing between router and combine', async () => {
    const { config, graph } = blockGraphOf(family('deepseek-v3'));
    const weights = randomWeights(graph, random);
    const executor = await createMoeBlockExecutor(rt, compileMoeBlockPlan(graph, config), { readF32: (name) => weights.get(name)! });
    for (const tokens of [3, 200]) {
      const before = readbackCount();
      await executor.run(normals(random, tokens * HIDDEN, 1), tokens);
      expect(readbackCount() - before, `${tokens} tokens (${executor.dispatchCount(tokens)} dispatches)`).toBe(1);
    }
    executor.destroy();
  });

  it('runs a plan that went through JSON (what a bundle ships)', async () => {
    const fam = family('qwen2-moe');
    const { config, graph } = blockGraphOf(fam);
    const plan = JSON.parse(JSON.stringify(compileMoeBlockPlan(graph, config))) as MoeBlockPlan;
    const errors = await runAgainstReference(rt, fam, plan, [5, 8, 33]);
    console.log(`JSON plan, qwen2-moe: relative errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  it('shards expert weights across bindings when one binding cannot hold them', async () => {
    // 16 experts of 40 x 72 f32 (11520 bytes per matrix): 4 experts per 46080-byte binding -> 4 shards.
    const fam: Family = { name: 'sharded', moe: 'experts = 16\n top_k = 2\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 40, bias = true)' };
    const maxStorageBufferBindingSize = 4 * 40 * HIDDEN * 4;
    const { config, graph } = blockGraphOf(fam);
    const plan = compileMoeBlockPlan(graph, config, { maxStorageBufferBindingSize });
    expect(plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate')).map((b) => b.name)).toHaveLength(4);
    expect(plan.maxTokens).toBeGreaterThanOrEqual(20);
    const tokens = [1, 7, plan.maxTokens];
    const errors = await runAgainstReference(rt, fam, plan, tokens);
    console.log(`sharded (4 shards, maxTokens ${plan.maxTokens}): relative errors at ${tokens.join(', ')} tokens: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });
});

describe("under WebGPU's default limits", () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
  });
  afterAll(() => rt?.destroy());

  it('gets the default limits and matches the reference on both paths', async () => {
    expect(rt.limits.maxStorageBufferBindingSize).toBe(DEFAULT_LIMITS.maxStorageBufferBindingSize);
    expect(rt.limits.maxComputeWorkgroupStorageSize).toBe(DEFAULT_LIMITS.maxComputeWorkgroupStorageSize);
    const errors = await runAgainstReference(rt, family('mixtral'), undefined, [4, 100]);
    console.log(`default limits, mixtral: relative errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  it('refuses a plan compiled for a larger binding than the device allows', async () => {
    const { config, graph } = blockGraphOf(family('mixtral'));
    const plan = compileMoeBlockPlan(graph, config, { maxStorageBufferBindingSize: 2 * DEFAULT_LIMITS.maxStorageBufferBindingSize });
    await expect(createMoeBlockExecutor(rt, plan, { readF32: () => new Float32Array(0) })).rejects.toThrow(/maxStorageBufferBindingSize/);
  });
});
