// Compile `dtype = f16`: what the plan asks of the adapter and stores in f16, and the refusal on
// an adapter without shader-f16. The numbers of every family with f16 activations, against the
// CPU reference, are in moe-block-families.test.ts.
import { describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { openDevice } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { blockGraphOf, families, HIDDEN, normals, randomWeights, seededRandom } from './moe-fixtures.js';

const F16 = 'target = webgpu\n dtype = f16';

describe('the plan', () => {
  it('stores activations in f16, keeps the bookkeeping 32-bit, and asks for shader-f16', () => {
    const { config } = blockGraphOf(families[0]!, F16);
    const plan = compileMoeBlockPlan(config, 0);
    expect(plan.features).toEqual(['shader-f16']);
    const dtypes = Object.fromEntries(plan.buffers.filter((b) => b.role !== 'weight').map((b) => [b.name, b.dtype]));
    expect(dtypes).toMatchObject({ hidden_states: 'f16', block_out: 'f16', expert_inter: 'f16', slot_out: 'f16', route_ids: 'i32', routing_weights: 'f32' });
    expect(plan.kernels.every((k) => k.wgsl.includes('enable f16;') === /_f16act$/.test(k.name))).toBe(true);
  });

  it('is refused, naming the feature, by a device without shader-f16', async () => {
    const { config, graph } = blockGraphOf(families[0]!, F16);
    const bare = await openDevice({ gpu: createNodeGpu(), noOptionalFeatures: true });
    try {
      const weights = randomWeights(graph, seededRandom(1));
      await expect(createMoeBlockExecutor(bare, compileMoeBlockPlan(config, 0), { readF32: (n) => weights.get(n)! }))
        .rejects.toThrow(/need the adapter feature shader-f16 \(they store activations in f16: compiled with `dtype = f16`\), which this adapter \(.*\) lacks/);
    } finally {
      bare.destroy();
    }
  });

  it('saturates at +-65504 where a value overflows f16, instead of leaving infinities', async (ctx) => {
    const rt = await openDevice({ gpu: createNodeGpu() });
    try {
      if (!rt.features.has('shader-f16')) return ctx.skip('this adapter has no shader-f16');
      const { config, graph } = blockGraphOf(families[0]!, F16);
      const weights = randomWeights(graph, seededRandom(2));
      for (const [name, w] of weights) if (name.endsWith('experts.down')) w.forEach((v, i) => (w[i] = v * 1e6));
      const executor = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0), { readF32: (n) => weights.get(n)! });
      const out = await executor.run(normals(seededRandom(3), 5 * HIDDEN, 1), 5);
      executor.destroy();
      expect(out.every(Number.isFinite)).toBe(true);
      expect(Math.max(...out.map(Math.abs))).toBe(65504);
    } finally {
      rt.destroy();
    }
  });
});
