// Mixed precision per expert (`quantize experts = mixed(...)`) through the WebGPU MoE block: the
// experts in int2, int4 and int8 interleaved by id (so group-experts-by-format reorders them and
// the router writes storage positions), with expert biases (gpt-oss-like), group-limited routing
// with a correction bias and a shared expert (deepseek-v3-like), null experts, and split into shards
// by binding size within each format. The GPU output against the CPU reference fed each expert's
// own dequantized weights, at 1, 7 (decode) and 64, 300 tokens (prefill), scratch poisoned.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import type { KindRef } from '../../ir/model-config.js';
import { printModule } from '../../ir/print.js';
import { compileMoeBlockModule } from '../../compiler/pipeline.js';
import { formatOrder } from '../../passes/group-experts-by-format.js';
import { isMixed } from '../../ir/types.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { configOf, dequantizedWeights, normals, randomWeights, reference, relativeError, seededRandom, type Family } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-mixed: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const H = 96;
const int2: KindRef = { kind: 'int2', params: { group: 32 } };
const int4: KindRef = { kind: 'int4', params: { group: 32 } };
const int8: KindRef = { kind: 'int8', params: { group: 24 } };
/** Interleaved, so no format is one run of ids. */
const CHOICE = [int4, int2, int8, int4, int2, int2, int8, int4];

const FAMILIES: Family[] = [
  { name: 'mixtral-like', hidden: H, moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 288)' },
  { name: 'gpt-oss-like', hidden: H, moe: 'experts = 8\n top_k = 4\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 96, limit = 7, alpha = 1.702, bias = true)' },
  // Group-limited routing picks groups by expert id: the router maps ids to positions only after choosing.
  {
    name: 'deepseek-v3-like', hidden: H,
    moe: 'experts = 8\n top_k = 2\n router = sigmoid_topk(renormalize = true, groups = 4, topk_groups = 2, scale = 2.5, correction_bias = true)\n expert = swiglu(intermediate = 96)\n shared = swiglu(intermediate = 192)',
  },
  // Null experts (id -1) stay -1.
  { name: 'null-experts-like', hidden: H, moe: 'experts = 8\n top_k = 3\n router = softmax_topk(renormalize = true, null_experts = 4)\n expert = swiglu(intermediate = 96)' },
];

function mixedConfig(family: Family) {
  const config = configOf(family, 'target = webgpu\n dtype = f32\n quantize experts = mixed(bits = 4, choices = [int2, int4, int8(group = 24)], trace = "unused.json")');
  config.compile.expertFormats = { 0: CHOICE };
  return config;
}

let rt: GpuRuntime;
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => rt?.destroy());

describe('the IR of a mixed block', () => {
  it('reorders experts by format, the router writes positions, every launch reads one format', () => {
    const config = mixedConfig(FAMILIES[0]!);
    const text = printModule(compileMoeBlockModule(config, 0));
    const order = [0, 3, 7, 1, 4, 5, 2, 6];
    expect(text).toContain(`permute_rows(%layers.0.moe.experts.gate) {order = [${order.join(', ')}]}`);
    expect(text).toContain('expert_order = [0, 3, 6, 1, 4, 5, 7, 2]');
    // Each grouped op reads a slice of one format: int4 [0, 3), int2 [3, 6), int8 [6, 8).
    expect(text).toMatch(/slice_rows\(%layers\.0\.moe\.experts\.gate\.by_format\) \{begin = 0, end = 3\} : \[3, 288, 96\] int4<g32>/);
    expect(text).toMatch(/\{begin = 3, end = 6\} : \[3, 288, 96\] int2<g32>/);
    expect(text).toMatch(/\{begin = 6, end = 8\} : \[2, 288, 96\] int8<g24>/);
    expect(text).not.toMatch(/moe\.(grouped_gemm|expert_gemv|decode_gate_up)\([^)]*experts\.gate[,)]/);
  });

  it('splits a format\'s run further where its experts do not fit one binding', () => {
    // One int8 (group 24) gate matrix [288, 768] is 221184 + 36864 bytes: 1.5 of them per binding puts each int8 expert alone.
    const config = mixedConfig({ ...FAMILIES[0]!, hidden: 768 });
    const int8Bytes = 288 * 768 + (288 * 768 / 24) * 4;
    const plan = compileMoeBlockPlan(config, 0, { maxStorageBufferBindingSize: Math.floor(1.5 * int8Bytes) });
    const gate = plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate')).map((b) => [b.weight!.format!.format, b.weight!.rows ?? [b.weight!.rowBegin, b.weight!.rowEnd]]);
    // int4 experts 0, 3, 7 (3 x 124416 bytes fit) and int2 1, 4, 5 stay together; int8 2 and 6 go alone.
    expect(gate).toEqual([['int4', [0, 3, 7]], ['int2', [1, 4, 5]], ['int8', [2, 3]], ['int8', [6, 7]]]);
  });
});

for (const [index, family] of FAMILIES.entries()) {
  // gpt-oss-like's small intermediate lets an 81 KiB binding hold its activations: runs of fewer tokens.
  for (const maxBinding of index === 1 ? [undefined, 3 * 288 * 96] : [undefined]) {
    describe(`${family.name}, int2/int4/int8 experts${maxBinding ? `, shards of at most ${maxBinding} bytes` : ''}`, () => {
      const config = mixedConfig(family);
      const graph = compileMoeBlockGraph(config, 0);
      const random = seededRandom(seed + 7919 * index + (maxBinding ? 13 : 0));
      const weights = randomWeights(graph, random);
      const dequantized = dequantizedWeights(graph, weights);
      const gate = graph.params.find((p) => p.name.endsWith('experts.gate'))!;
      const stored = isMixed(gate.type.dtype) ? formatOrder(gate.type.dtype) : undefined;
      let plan: MoeBlockPlan;
      let executor: Awaited<ReturnType<typeof createMoeBlockExecutor>>;
      beforeAll(async () => {
        plan = JSON.parse(JSON.stringify(compileMoeBlockPlan(config, 0, maxBinding ? { maxStorageBufferBindingSize: maxBinding } : {}))) as MoeBlockPlan;
        executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
      });
      afterAll(() => executor?.destroy());

      it('stores each weight buffer in one format, the experts in storage order', () => {
        const gateBuffers = plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate'));
        const formats = gateBuffers.map((b) => b.weight!.format!.format);
        expect(new Set(formats)).toEqual(new Set(['int4', 'int2', 'int8']));
        expect(gateBuffers.flatMap((b) => b.weight!.rows ?? Array.from({ length: b.weight!.rowEnd - b.weight!.rowBegin }, (_, i) => b.weight!.rowBegin + i))).toEqual(stored);
      });

      for (const tokens of maxBinding ? [1, 7, 'most'] as const : [1, 7, 64, 300] as const) {
        it(`${tokens} tokens${tokens === 'most' ? ' a run holds' : ''} match the reference on each expert's dequantized weights`, async () => {
          const t = tokens === 'most' ? plan.maxTokens : tokens;
          const x = normals(random, t * H, 1);
          executor.poisonScratch(t);
          const out = await executor.run(x, t);
          await rt.settle();
          const routing = await checkRouting(rt.device, executor, graph, x, t, dequantized, stored);
          expect(routing.unexplained).toEqual([]);
          const kept = Array.from({ length: t }, (_, i) => i).filter((i) => !routing.excluded.includes(i));
          const error = relativeError(out, reference(graph, x, t, dequantized), H, kept);
          console.log(`${family.name} mixed${maxBinding ? ' sharded' : ''}, ${t} tokens: relative error ${error.toExponential(2)}`);
          expect(out.every(Number.isFinite)).toBe(true);
          expect(error).toBeLessThan(1e-4);
        });
      }
    });
  }
}
