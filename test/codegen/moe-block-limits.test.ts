// The MoE block's promises beyond numbers: exactly one GPU -> CPU read per forward (none
// between router and combine), correct results under WebGPU's default limits, and with expert
// weights sharded across bindings (a tiny maxStorageBufferBindingSize), on both paths; weights
// read from the WeightSource one shard (or piece of one) at a time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import type { Graph } from '../../ir/graph.js';
import { readBackBytes, readbackCount } from '../../runtime/buffer-pool.js';
import { DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { pathSteps, type MoeBlockPlan, type PlanWeight, type WeightSource } from '../../runtime/plan.js';
import { packedBytes } from '../../runtime/quant/weight-format.js';
import { blockGraphOf, dequantizedWeights, families, HIDDEN, normals, randomWeights, reference, relativeError, seededRandom, type Family } from './moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-limits: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);
const family = (name: string): Family => families.find((f) => f.name === name)!;

async function runAgainstReference(rt: GpuRuntime, fam: Family, plan: MoeBlockPlan | undefined, tokenCounts: number[], options = {}): Promise<number[]> {
  const { config, graph } = blockGraphOf(fam);
  const weights = randomWeights(graph, random);
  const executor = await createMoeBlockExecutor(rt, plan ?? compileMoeBlockPlan(config, 0, options), { readF32: (name) => weights.get(name)! });
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
    const executor = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0), { readF32: (name) => weights.get(name)! });
    for (const tokens of [3, 200]) {
      const before = readbackCount();
      await executor.run(normals(random, tokens * HIDDEN, 1), tokens);
      expect(readbackCount() - before, `${tokens} tokens (${executor.dispatchCount(tokens)} dispatches)`).toBe(1);
    }
    executor.destroy();
  });

  it('runs a plan that went through JSON (what a bundle ships)', async () => {
    const fam = family('qwen2-moe');
    const { config } = blockGraphOf(fam);
    const plan = JSON.parse(JSON.stringify(compileMoeBlockPlan(config, 0))) as MoeBlockPlan;
    const errors = await runAgainstReference(rt, fam, plan, [5, 8, 33]);
    console.log(`JSON plan, qwen2-moe: relative errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  it('decodes a block split in 2 expert shards in 3 dispatches (the fused kernels bind both shards)', async () => {
    // 8 experts of 40 x 72 f32 (11520 bytes per matrix): 4 per 46080-byte binding -> 2 shards.
    const plan = compileMoeBlockPlan(blockGraphOf(family('mixtral')).config, 0, { maxStorageBufferBindingSize: 4 * 40 * HIDDEN * 4 });
    expect(plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate')).map((b) => b.name)).toHaveLength(2);
    expect(pathSteps(plan, 1).map((s) => s.label)).toEqual(['router', 'experts gate/up GEMV', 'experts down GEMV + combine']);
    expect(pathSteps(plan, 64)).toHaveLength(7);
    const errors = await runAgainstReference(rt, family('mixtral'), plan, [1, 5, 8, 64]);
    console.log(`2 shards, mixtral: relative errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  it('shards expert weights across bindings when one binding cannot hold them', async () => {
    // 16 experts of 40 x 72 f32 (11520 bytes per matrix): 4 experts per 46080-byte binding -> 4 shards.
    const fam: Family = { name: 'sharded', moe: 'experts = 16\n top_k = 2\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 40, bias = true)' };
    const maxStorageBufferBindingSize = 4 * 40 * HIDDEN * 4;
    const { config } = blockGraphOf(fam);
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize });
    expect(plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate')).map((b) => b.name)).toHaveLength(4);
    expect(plan.maxTokens).toBeGreaterThanOrEqual(20);
    // More than maxTokens: run() splits the batch into runs of at most maxTokens (the last one partial).
    const tokens = [1, 7, plan.maxTokens, 2 * plan.maxTokens + 3];
    const errors = await runAgainstReference(rt, fam, plan, tokens);
    console.log(`sharded (4 shards, maxTokens ${plan.maxTokens}): relative errors at ${tokens.join(', ')} tokens: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  it('runs a batch larger than maxTokens as runs of at most maxTokens; encode() refuses one', async () => {
    const fam: Family = { name: 'sharded', moe: 'experts = 16\n top_k = 2\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 40, bias = true)' };
    const { config, graph } = blockGraphOf(fam);
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: 4 * 40 * HIDDEN * 4 });
    const weights = randomWeights(graph, random);
    const executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
    try {
      const tokens = 2 * plan.maxTokens + 3;
      const before = readbackCount();
      await executor.run(normals(random, tokens * HIDDEN, 1), tokens);
      expect(readbackCount() - before).toBe(3);
      expect(executor.dispatchCount(tokens)).toBe(2 * executor.dispatchCount(plan.maxTokens) + executor.dispatchCount(3));
      const buffer = executor.scratchBuffer(plan.output);
      const encoder = rt.device.createCommandEncoder();
      expect(() => executor.encode(encoder, buffer, buffer, plan.maxTokens + 1)).toThrow(/split the batch/);
    } finally {
      executor.destroy();
    }
  });

  it('refuses to compile a block whose activation buffers leave a binding no room for one token', () => {
    const { config, graph } = blockGraphOf(family('phimoe'));
    // Just one expert matrix (16 experts, intermediate 120): the per-expert padded rows of the grouped GEMM no longer fit beside tokens.
    const tight = Math.max(...graph.params.filter((p) => p.role === 'expert').map((p) => (p.type.shape as number[]).slice(1).reduce((a, b) => a * b, 4)));
    expect(() => compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: tight })).toThrow(/one run cannot hold a single token/);
  });

  it('prefill with empty experts and empty shards: a router bias sends every token to experts 0 and 1', async () => {
    const fam: Family = { name: 'skewed', moe: 'experts = 16\n top_k = 2\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 40, bias = true)' };
    const { config, graph } = blockGraphOf(fam);
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: 4 * 40 * HIDDEN * 4 });
    expect(plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate')).map((b) => b.weight!.rowBegin)).toEqual([0, 4, 8, 12]);
    const weights = randomWeights(graph, random);
    const bias = weights.get('layers.0.moe.router.bias')!;
    bias.fill(0);
    bias.set([1000, 1000]); // logits are O(10): experts 0 and 1 win for every token; shards [4, 16) get no rows
    const executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
    try {
      // Prefill, T K a multiple of 16; experts 0 and 1 get T rows each: 16 fill one 16-row block, 24 leave padding rows.
      expect(plan.maxTokens).toBeGreaterThanOrEqual(24);
      for (const tokens of [16, 24]) {
        const x = normals(random, tokens * HIDDEN, 1);
        executor.poisonScratch(tokens);
        const out = await executor.run(x, tokens);
        await rt.settle();
        const ids = new Int32Array(await readBackBytes(rt.device, executor.scratchBuffer('route_ids'), tokens * 2 * 4));
        expect(new Set(ids), `${tokens} tokens`).toEqual(new Set([0, 1]));
        expect(out.every(Number.isFinite), `${tokens} tokens: an output element was never written`).toBe(true);
        expect(relativeError(out, reference(graph, x, tokens, weights), HIDDEN), `${tokens} tokens`).toBeLessThan(1e-4);
      }
    } finally {
      executor.destroy();
    }
  });
});

describe('weights are read one expert shard at a time', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
  });
  afterAll(() => rt?.destroy());

  // 16 experts of 40 x 72 (with biases): a binding of 4 experts' matrices -> 4 shards per expert weight.
  const fam: Family = { name: 'shard-reads', moe: 'experts = 16\n top_k = 2\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 40, bias = true)' };

  interface Request { name: string; begin: number; end: number }

  /** A WeightSource over `weights` that answers each request with just the rows asked for, and records it. */
  function countingSource(weights: Map<string, Float32Array>): { source: WeightSource; requests: Request[] } {
    const requests: Request[] = [];
    return {
      requests,
      source: {
        readF32(name, shape, rows) {
          const { begin, end } = rows ?? { begin: 0, end: shape[0]! };
          requests.push({ name, begin, end });
          const per = shape.slice(1).reduce((n, d) => n * d, 1);
          return weights.get(name)!.slice(begin * per, end * per); // a copy: nothing else of the weight is reachable
        },
      },
    };
  }

  /** Every request lies within one weight buffer of its param, at most `maxRows(w)` rows, and each param's rows are asked for exactly once. */
  function expectShardwise(plan: MoeBlockPlan, requests: Request[], maxRows: (w: PlanWeight) => number): void {
    for (const w of plan.weights) {
      const buffers = plan.buffers.filter((b) => b.weight?.param === w.name).map((b) => b.weight!);
      const mine = requests.filter((r) => r.name === w.name).sort((a, b) => a.begin - b.begin);
      for (const r of mine) {
        expect(buffers.some((b) => b.rowBegin <= r.begin && r.end <= b.rowEnd), `${w.name} rows [${r.begin}, ${r.end})`).toBe(true);
        if (buffers.length > 1) expect(r.end - r.begin, `${w.name} rows [${r.begin}, ${r.end})`).toBeLessThanOrEqual(maxRows(w));
      }
      // Consecutive and complete: the first begins at 0, each ends where the next begins, the last ends at the last row.
      expect(mine.flatMap((r) => [r.begin, r.end]), w.name).toEqual([0, ...mine.slice(1).flatMap((r) => [r.begin, r.begin]), w.shape[0]]);
    }
  }

  /** Relative errors against the CPU reference computing with `values` (the weights as the GPU decodes them). */
  async function runWith(plan: MoeBlockPlan, graph: Graph, source: WeightSource, values: Map<string, Float32Array>, options = {}): Promise<number[]> {
    const hidden = plan.hidden;
    const executor = await createMoeBlockExecutor(rt, plan, source, options);
    try {
      const errors: number[] = [];
      for (const tokens of [3, Math.min(20, plan.maxTokens)]) {
        const x = normals(random, tokens * hidden, 1);
        executor.poisonScratch(tokens);
        errors.push(relativeError(await executor.run(x, tokens), reference(graph, x, tokens, values), hidden));
      }
      return errors;
    } finally {
      executor.destroy();
    }
  }

  it('f32 experts: one request per shard, never more than one shard\'s rows', async () => {
    const { config, graph } = blockGraphOf(fam);
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: 4 * 40 * HIDDEN * 4 });
    const shards = plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate'));
    expect(shards.map((b) => [b.weight!.rowBegin, b.weight!.rowEnd])).toEqual([[0, 4], [4, 8], [8, 12], [12, 16]]);
    const weights = randomWeights(graph, random);
    const { source, requests } = countingSource(weights);
    const errors = await runWith(plan, graph, source, weights);
    expectShardwise(plan, requests, () => 4);
    expect(requests.filter((r) => r.name.endsWith('experts.gate'))).toHaveLength(4);
    console.log(`shard-wise reads, f32 experts: ${requests.length} requests, relative errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  // int4 experts are 7x smaller: hidden 384 (40 x 384: 8640 packed bytes) so that a binding of 6 of
  // them still holds the activations (padded expert rows: 16 x 15 x 40 f32) -> 3 shards.
  const wide: Family = { ...fam, hidden: 384 };
  const int4Block = () => blockGraphOf(wide, 'target = webgpu\n dtype = f32\n quantize experts = int4(group = 8)');
  const int4Binding = 6 * packedBytes({ format: 'int4', group: 8 }, [1, 40, 384]);
  const matrixF32 = 40 * 384 * 4;

  it('int4 experts: a shard is read and packed in pieces of maxReadBytes (4 experts)', async () => {
    const { config, graph } = int4Block();
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: int4Binding });
    const shards = plan.buffers.filter((b) => b.weight?.param.endsWith('experts.down'));
    expect(shards.map((b) => [b.weight!.rowBegin, b.weight!.rowEnd])).toEqual([[0, 6], [6, 12], [12, 16]]);
    const weights = randomWeights(graph, random);
    const { source, requests } = countingSource(weights);
    const errors = await runWith(plan, graph, source, dequantizedWeights(graph, weights), { maxReadBytes: 4 * matrixF32 + 100 });
    expectShardwise(plan, requests, (w) => (w.format.format === 'int4' ? 4 : 6)); // biases (f32) come a whole shard at a time
    expect(requests.filter((r) => r.name.endsWith('experts.up')).map((r) => [r.begin, r.end])).toEqual([[0, 4], [4, 6], [6, 10], [10, 12], [12, 16]]);
    console.log(`shard-wise reads, int4 experts in pieces of 4: ${requests.length} requests, relative errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) expect(e).toBeLessThan(1e-4);
  });

  it('a source that ignores the row range still works, and is read once per weight', async () => {
    const { config, graph } = int4Block();
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: int4Binding });
    const weights = randomWeights(graph, random);
    const calls: string[] = [];
    const legacy: WeightSource = { readF32: (name) => (calls.push(name), weights.get(name)!) };
    const errors = await runWith(plan, graph, legacy, dequantizedWeights(graph, weights), { maxReadBytes: 4 * matrixF32 });
    expect(calls.sort()).toEqual(plan.weights.map((w) => w.name).sort());
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
    const { config } = blockGraphOf(family('mixtral'));
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: 2 * DEFAULT_LIMITS.maxStorageBufferBindingSize });
    await expect(createMoeBlockExecutor(rt, plan, { readF32: () => new Float32Array(0) })).rejects.toThrow(/maxStorageBufferBindingSize/);
  });
});
