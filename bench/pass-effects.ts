// What the optimization passes buy, measured in one run on the adapter at hand: each block compiled
// with the whole pipeline and with a pass left out (`--disable-pass`), same weights and inputs.
// Prints dispatches and median time per MoE block; never passes or fails on time.
import { compileMoeBlockPlan, type PlanOptions } from '../compiler/moe-block-plan.js';
import { compileMoeBlockGraph } from '../compiler/pipeline.js';
import { checkSpec } from '../compiler/spec/check.js';
import { relativeError } from '../ir/interpret/relative-error.js';
import type { GpuRuntime } from '../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../runtime/moe-executor.js';
import type { ModelConfig } from '../ir/model-config.js';
import { decodeRoundStats } from '../ir/interpret/rounding-ops.js';
import { readBackBytes } from '../runtime/buffer-pool.js';

export interface BenchTools {
  seededNormals(seed: number, n: number, std: number): Float32Array;
  timeIt(iterations: number, body: () => Promise<unknown>): Promise<number>;
  printTable(rows: string[][]): void;
  iterations: number;
}

/** One MoE block spec at the benchmarks' width (hidden 256). */
export const blockSpec = (name: string, moe: string, compile = '', dtype = 'f32'): string => `
model "${name}" {
  hidden = 256
  vocab = 64
  layers = 1
  norm = rmsnorm(eps = 1e-6)
  attention = gqa(heads = 4)
  moe {
    ${moe}
  }
}
compile {
  target = webgpu
  dtype = ${dtype}
  ${compile}
}
`;

const BLOCKS = [
  ['mixtral-like', 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 512)'],
  ['qwen2-moe-like (shared + gate)', 'experts = 16\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 256)\n shared = swiglu(intermediate = 1024)\n shared_gate = sigmoid'],
] as const;

function configOf(spec: string): ModelConfig {
  const checked = checkSpec(spec, 'bench.moe');
  if (!checked.config) throw new Error(checked.diagnostics.map((d) => d.message).join('\n'));
  return checked.config;
}

function weightsOf(config: ModelConfig, tools: BenchTools): Map<string, Float32Array> {
  const graph = compileMoeBlockGraph(config, 0);
  return new Map(graph.params.map((p, i) => {
    const shape = p.type.shape as number[];
    const std = (p.name.endsWith('router.weight') ? 2 : 1) / Math.sqrt(shape.at(-1)!);
    return [p.name, tools.seededNormals(500 + i, shape.reduce((n, d) => n * d, 1), std)] as const;
  }));
}

async function executorFor(rt: GpuRuntime, config: ModelConfig, weights: Map<string, Float32Array>, options: PlanOptions): Promise<MoeBlockExecutor> {
  return createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0, options), { readF32: (name) => weights.get(name)! });
}

/** The fusing passes on vs off (fuse-decode, group-shared-expert), for a block without and one with a shared expert. */
export async function compareFusedDecode(rt: GpuRuntime, tools: BenchTools): Promise<void> {
  console.log('\nfusing passes on vs off (--disable-pass=fuse-decode --disable-pass=group-shared-expert), same blocks, weights and inputs; run(): upload, forward, readback:');
  const rows: string[][] = [['block', 'tokens', 'path', 'disp. on', 'disp. off', 'on ms', 'off ms', 'on/off speed', 'rel. diff']];
  for (const [name, moe] of BLOCKS) {
    const config = configOf(blockSpec(name, moe));
    const weights = weightsOf(config, tools);
    const on = await executorFor(rt, config, weights, {});
    const off = await executorFor(rt, config, weights, { disabledPasses: ['fuse-decode', 'group-shared-expert'] });
    for (const tokens of [1, 4, 8, 64]) {
      const x = tools.seededNormals(tokens, tokens * config.hidden, 1);
      let a: Float32Array = new Float32Array(0);
      let b: Float32Array = new Float32Array(0);
      const onMs = await tools.timeIt(tools.iterations, async () => (a = await on.run(x, tokens)));
      const offMs = await tools.timeIt(tools.iterations, async () => (b = await off.run(x, tokens)));
      rows.push([name, String(tokens), tokens <= on.plan.decodeMaxTokens ? 'decode' : 'prefill', String(on.dispatchCount(tokens)), String(off.dispatchCount(tokens)),
        onMs.toFixed(2), offMs.toFixed(2), `${(offMs / onMs).toFixed(2)}x`, relativeError(a, b).toExponential(1)]);
    }
    on.destroy();
    off.destroy();
  }
  tools.printTable(rows);
  console.log('on/off speed = off time / on time (higher: fused is faster). Prefill without a shared expert is the same plan either way (a control).');
}

/** Padded expert rows of an exact run: each expert's count rounded up to the tile, from the routing the GPU wrote. */
async function exactPaddedRows(rt: GpuRuntime, executor: MoeBlockExecutor, tokens: number, tile: number): Promise<number> {
  const ids = new Int32Array(await readBackBytes(rt.device, executor.scratchBuffer('route_ids'), tokens * executor.plan.topK * 4));
  const counts = new Map<number, number>();
  for (const e of ids) if (e >= 0) counts.set(e, (counts.get(e) ?? 0) + 1);
  return [...counts.values()].reduce((n, c) => n + Math.ceil(c / tile) * tile, 0);
}

/** Exact routing vs SonicMoE token rounding at a sparse configuration (64 experts, top-2), prefill. */
export async function compareTokenRounding(rt: GpuRuntime, tools: BenchTools): Promise<void> {
  const moe = 'experts = 64\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 256)';
  const exactConfig = configOf(blockSpec('sparse', moe));
  const weights = weightsOf(exactConfig, tools);
  console.log('\nexact routing vs token_rounding = sonic, 64 experts, top-2, hidden 256, intermediate 256, tile 16; run(): upload, forward, readback:');
  const rows: string[][] = [['rounding', 'tokens', 'dispatches', 'padded rows', 'dropped', 'added', 'weight mass changed', 'ms', 'speed vs exact', 'rel. diff vs exact']];
  const exact = await executorFor(rt, exactConfig, weights, {});
  for (const tokens of [100, 400]) {
    const x = tools.seededNormals(77 + tokens, tokens * exactConfig.hidden, 1);
    let reference: Float32Array = new Float32Array(0);
    const exactMs = await tools.timeIt(tools.iterations, async () => (reference = await exact.run(x, tokens)));
    rows.push(['exact', String(tokens), String(exact.dispatchCount(tokens)), String(await exactPaddedRows(rt, exact, tokens, 16)), '0', '0', '0.0%', exactMs.toFixed(2), '1.00x', '0']);
    for (const mode of ['nearest', 'down', 'up']) {
      const config = configOf(blockSpec('sparse', moe, `token_rounding = sonic(mode = ${mode}, tile = 16)`));
      const sonic = await executorFor(rt, config, weights, {});
      let out: Float32Array = new Float32Array(0);
      const ms = await tools.timeIt(tools.iterations, async () => (out = await sonic.run(x, tokens)));
      const stats = decodeRoundStats(new Uint32Array(await readBackBytes(rt.device, sonic.scratchBuffer('round_stats'), 32)));
      rows.push([`sonic(${mode})`, String(tokens), String(sonic.dispatchCount(tokens)), `${stats.paddedRowsBefore} -> ${stats.paddedRowsAfter}`, String(stats.tokensDropped), String(stats.tokensAdded),
        `${(100 * stats.weightMassChanged).toFixed(1)}%`, ms.toFixed(2), `${(exactMs / ms).toFixed(2)}x`, relativeError(out, reference).toExponential(1)]);
      sonic.destroy();
    }
  }
  exact.destroy();
  tools.printTable(rows);
  console.log('padded rows: sum over experts of the count rounded up to the tile (sonic: before -> after rounding). rel. diff vs exact: what rounding changes in the output, not a kernel error.');
}
