// Quantized and 16-bit weights through the WebGPU MoE block: for mixtral-, qwen2-moe- (shared
// expert, shared gate and router int8) and gpt-oss-like (biases, clamped SwiGLU) blocks, with the
// experts in each of int4, int8, mxfp4, f16 and bf16, the GPU output against the CPU reference fed
// the dequantized weights (the values the kernels decode), at 1, 7 (decode) and 64, 300 tokens
// (prefill), outputs and scratch poisoned; then a sharded int4 run on both paths.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { blockGraphOf, dequantizedWeights, normals, randomWeights, reference, relativeError, seededRandom, type Family } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';

const TOKEN_COUNTS = [1, 7, 64, 300];
const TOLERANCE = 1e-4;

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-quantized: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

/** Widths are multiples of 96 so every group below divides them; 96 and 288 are not multiples of the 64-wide N tile. */
const H = 96;
const quantFamilies: Array<Family & { compile?: string }> = [
  { name: 'mixtral-like', hidden: H, moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 288)' },
  {
    name: 'qwen2-moe-like',
    hidden: H,
    moe: 'experts = 12\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 96)\n shared = swiglu(intermediate = 192)\n shared_gate = sigmoid',
    compile: 'quantize shared = int8(group = 32)\n quantize router = int8(group = 32)',
  },
  { name: 'gpt-oss-like', hidden: H, moe: 'experts = 8\n top_k = 4\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 96, limit = 7, alpha = 1.702, bias = true)' },
];
/** int8's group 24 straddles the 16-wide K tile of the GEMM. */
const FORMATS = ['int4(group = 32)', 'int8(group = 24)', 'mxfp4(group = 32)', 'f16', 'bf16'];

const compileBlock = (format: string, extra?: string): string => ['target = webgpu', 'dtype = f32', `quantize experts = ${format}`, ...(extra ? [extra] : [])].join('\n ');

let rt: GpuRuntime;
const results: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});

afterAll(() => {
  console.log(['family           experts            tokens  path     rel.error   near-ties   vs f32 weights', ...results].join('\n'));
  rt?.destroy();
});

quantFamilies.forEach((family, familyIndex) => {
  FORMATS.forEach((format, formatIndex) => {
    describe(`${family.name}, experts ${format}`, () => {
      const { config, graph } = blockGraphOf(family, compileBlock(format, family.compile));
      let executor: MoeBlockExecutor;
      let weights: Map<string, Float32Array>;
      let dequantized: Map<string, Float32Array>;
      let random: () => number;

      beforeAll(async () => {
        random = seededRandom(seed + 1_000_003 * (familyIndex * FORMATS.length + formatIndex));
        weights = randomWeights(graph, random);
        dequantized = dequantizedWeights(graph, weights);
        const plan = compileMoeBlockPlan(config, 0);
        executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
      });
      afterAll(() => executor?.destroy());

      for (const tokens of TOKEN_COUNTS) {
        it(`${tokens} token${tokens > 1 ? 's' : ''} match the reference on dequantized weights`, async () => {
          const x = normals(random, tokens * H, 1);
          executor.poisonScratch(tokens);
          const out = await executor.run(x, tokens);
          await rt.settle();
          const ref = reference(graph, x, tokens, dequantized);
          const routing = await checkRouting(rt.device, executor, graph, x, tokens, dequantized);
          expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
          const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
          const error = relativeError(out, ref, H, kept);
          const path = tokens <= executor.plan.decodeMaxTokens ? 'decode' : 'prefill';
          // For scale: how far the same output is from the unquantized (f32) block, i.e. the format's own error.
          const formatError = relativeError(out, reference(graph, x, tokens, weights), H);
          results.push(`${family.name.padEnd(16)} ${format.padEnd(18)} ${String(tokens).padStart(6)}  ${path.padEnd(8)} ${error.toExponential(2).padStart(9)}   ${String(routing.excluded.length).padStart(8)}   ${formatError.toExponential(2).padStart(9)}`);
          expect(out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
          expect(error).toBeLessThan(TOLERANCE);
          expect(routing.excluded.length, 'near-ties should be rare').toBeLessThanOrEqual(Math.max(1, tokens / 20));
        });
      }
    });
  });
});

describe('sharded int4 experts', () => {
  it('split across bindings at their packed size, on both paths, from a plan that went through JSON', async () => {
    // int4 group 6: gate/up (K = 384) take the vec4 path with a scale per element; down (K = 42) the scalar path.
    // One [42, 384] int4 matrix is 2016 value words + 1344 scale words = 13440 bytes: 4 experts per binding -> 4 shards.
    const family: Family = { name: 'sharded-int4', hidden: 384, moe: 'experts = 16\n top_k = 2\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 42, bias = true)' };
    const { config, graph } = blockGraphOf(family, compileBlock('int4(group = 6)'));
    const plan = JSON.parse(JSON.stringify(compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: 4 * 13440 }))) as MoeBlockPlan;
    const gateShards = plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate'));
    expect(gateShards.map((b) => [b.dtype, b.elements.constant])).toEqual(Array(4).fill(['u32', 4 * 3360]));
    expect(plan.weights.find((w) => w.name.endsWith('experts.down'))).toMatchObject({ format: { format: 'int4', group: 6 }, storage: 'packed' });
    const random = seededRandom(seed + 77);
    const weights = randomWeights(graph, random);
    const dequantized = dequantizedWeights(graph, weights);
    const executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
    try {
      const tokenCounts = [1, 7, plan.maxTokens];
      expect(plan.maxTokens).toBeGreaterThan(plan.decodeMaxTokens);
      const errors: number[] = [];
      for (const tokens of tokenCounts) {
        const x = normals(random, tokens * 384, 1);
        executor.poisonScratch(tokens);
        const out = await executor.run(x, tokens);
        await rt.settle();
        const routing = await checkRouting(rt.device, executor, graph, x, tokens, dequantized);
        expect(routing.unexplained).toEqual([]);
        const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
        errors.push(relativeError(out, reference(graph, x, tokens, dequantized), 384, kept));
      }
      console.log(`sharded int4 (4 shards, maxTokens ${plan.maxTokens}): relative errors at ${tokenCounts.join(', ')} tokens: ${errors.map((e) => e.toExponential(2)).join(', ')}`);
      for (const e of errors) expect(e).toBeLessThan(TOLERANCE);
    } finally {
      executor.destroy();
    }
  });
});
