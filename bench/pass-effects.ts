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

export interface BenchTools {
  seededNormals(seed: number, n: number, std: number): Float32Array;
  timeIt(iterations: number, body: () => Promise<unknown>): Promise<number>;
  printTable(rows: string[][]): void;
  iterations: number;
}

const blockSpec = (name: string, moe: string, compile = ''): string => `
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
  dtype = f32
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

/** Decode with fuse-decode vs without it, for a block without and one with a shared expert. */
export async function compareFusedDecode(rt: GpuRuntime, tools: BenchTools): Promise<void> {
  console.log('\nfuse-decode on vs off (--disable-pass=fuse-decode), same blocks, weights and inputs; run(): upload, forward, readback:');
  const rows: string[][] = [['block', 'tokens', 'path', 'disp. on', 'disp. off', 'on ms', 'off ms', 'on/off speed', 'rel. diff']];
  for (const [name, moe] of BLOCKS) {
    const config = configOf(blockSpec(name, moe));
    const weights = weightsOf(config, tools);
    const on = await executorFor(rt, config, weights, {});
    const off = await executorFor(rt, config, weights, { disabledPasses: ['fuse-decode'] });
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
  console.log('on/off speed = off time / on time (higher: the fused decode is faster). Prefill rows are the same plan either way (a control).');
}
