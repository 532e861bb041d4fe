// Benchmark: the whole decoder on the WebGPU adapter at hand, one run: prefill tokens/s at 1, 64
// and 512 prompt tokens, decode tokens/s at context 64 and 1024 (GPU sampling, greedy: 4 bytes read
// back per token), dispatches per decoded token and per layer. Never passes or fails on time.
//   npm run build && node dist/bench/decoder.js        (MOEC_BENCH_ITERS=n decode steps per row)
import { compileModel } from '../compiler/model-plan.js';
import { checkSpec } from '../compiler/spec/check.js';
import { useSoftwareVulkanIfNeeded } from '../compiler/cli/run-command.js';
import { buildModelGraph } from '../ir/build-model.js';
import { openDevice } from '../runtime/device.js';
import { createModelExecutor } from '../runtime/model-executor.js';
import { createNodeGpu } from '../runtime/node/dawn.js';
import { samplingSteps } from '../runtime/plan.js';
import { seededNormals } from './seeded-normals.js';

// A Mixtral-shaped decoder scaled to run in minutes on a software rasterizer.
const SPEC = `
model "bench-decoder" {
  hidden = 256
  vocab = 2048
  layers = 4
  norm = rmsnorm(eps = 1e-5)
  attention = gqa(heads = 8, kv_heads = 2, head_dim = 32, rope_theta = 1e6)
  moe {
    experts = 8
    top_k = 2
    router = softmax_topk(renormalize = true)
    expert = swiglu(intermediate = 512)
  }
}
compile {
  context = 1100
}
`;
const STEPS = Number(process.env.MOEC_BENCH_ITERS ?? 16);
const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0, step: 0 };


async function main(): Promise<void> {
  await useSoftwareVulkanIfNeeded();
  const { config, diagnostics } = checkSpec(SPEC, 'bench-decoder.moe');
  if (!config) throw new Error(diagnostics.map((d) => d.message).join('\n'));
  const graph = buildModelGraph(config);
  const weights = new Map(graph.params.map((p, i) => {
    const shape = p.type.shape as number[];
    const n = shape.reduce((a, d) => a * d, 1);
    return [p.name, p.role === 'norm' ? new Float32Array(n).fill(1) : seededNormals(100 + i, n, 1 / Math.sqrt(shape.at(-1)!))] as const;
  }));
  const rt = await openDevice({ gpu: createNodeGpu() });
  const { plan } = compileModel(config);
  const executor = await createModelExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
  const ids = (n: number) => Array.from({ length: n }, (_, i) => (i * 31 + 5) % config.vocab);
  const rows: string[][] = [['measure', 'value']];
  for (const prompt of [1, 64, 512]) {
    // Warm-up (pipelines compile on first use), then one timed prefill of a fresh session.
    executor.reset();
    await executor.next(ids(prompt), GREEDY);
    executor.reset();
    const start = performance.now();
    await executor.next(ids(prompt), GREEDY);
    rows.push([`prefill tokens/s, ${prompt}-token prompt`, (prompt / ((performance.now() - start) / 1000)).toFixed(1)]);
  }
  for (const context of [64, 1024]) {
    executor.reset();
    let token = await executor.next(ids(context), GREEDY);
    const start = performance.now();
    for (let step = 1; step <= STEPS; step++) token = await executor.next([token], { ...GREEDY, step });
    rows.push([`decode tokens/s at context ${context}`, (STEPS / ((performance.now() - start) / 1000)).toFixed(1)]);
  }
  const sampling = plan.sampler ? samplingSteps(plan.sampler, GREEDY).length : 0;
  const perLayer = plan.decode.filter((s) => s.bindings.some((b) => b.buffer.startsWith('layers.0.'))).length;
  rows.push(['dispatches per decoded token (model + greedy sampler)', `${executor.dispatchCount(1)} + ${sampling}`]);
  rows.push(['dispatches per layer (decode)', String(perLayer)]);
  rows.push(['prefill dispatches (T = 64)', String(executor.dispatchCount(64))]);
  rows.push(['bytes read back per generated token', '4']);
  const width = Math.max(...rows.map((r) => r[0]!.length));
  process.stdout.write(`bench-decoder: hidden 256, 4 layers (GQA 8/2 x 32, 8 experts top-2 x 512), vocab 2048, f32, on ${rt.info.description}\n`);
  for (const r of rows) process.stdout.write(`${r[0]!.padEnd(width)}  ${r[1]}\n`);
  executor.destroy();
  rt.destroy();
}

await main();
