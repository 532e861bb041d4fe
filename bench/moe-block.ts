// Benchmark: the compiled (fused) MoE block against a naive baseline in the same runtime, the same
// block with int4 experts against f32 ones, with f16 activations (compile `dtype = f16`) against
// f32 ones, and with optimization passes on vs off (bench/pass-effects.ts), on whatever WebGPU
// adapter is at hand. Prints one table each; never passes or fails on time.
//   npm run build && npm run bench        (MOEC_BENCH_ITERS=n to change iterations per row)
import { compileMoeBlockPlan } from '../compiler/moe-block-plan.js';
import { DEFAULT_GEMM_TILE } from '../ir/target.js';
import { compileMoeBlockGraph } from '../compiler/pipeline.js';
import { checkSpec } from '../compiler/spec/check.js';
import { readBackBytes, readBackF32, readbackCount, uploadF32 } from '../runtime/buffer-pool.js';
import { openDevice, type GpuRuntime } from '../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../runtime/moe-executor.js';
import { createNodeGpu } from '../runtime/node/dawn.js';
import type { MoeBlockPlan } from '../runtime/plan.js';
import { packedBytes } from '../runtime/quant/weight-format.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createNaiveMoe, naiveBlockOf } from './naive-moe.js';
import { relativeError } from '../ir/interpret/relative-error.js';
import { blockSpec, compareFusedDecode, compareTokenRounding } from './pass-effects.js';
import { seededNormals } from './seeded-normals.js';

// Mixtral-shaped, scaled to run in seconds on a software rasterizer.
const specWith = (quantize = '', dtype = 'f32'): string =>
  blockSpec('bench-moe', 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 512)', quantize, dtype);
const QUANTIZED = 'quantize experts = int4(group = 32)';
const TOKEN_COUNTS = [1, 8, 64, 256];
const ITERATIONS = Number(process.env.MOEC_BENCH_ITERS ?? 5);


/** Median wall time of `iterations` calls after two warm-ups (the first dispatches compile shaders); the median shrugs off a busy neighbour. */
async function timeIt(iterations: number, body: () => Promise<unknown>): Promise<number> {
  await body();
  await body();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await body();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(iterations / 2)]!;
}

/** Without a GPU, point Dawn at lavapipe as the tests do (scripts/vulkan-env.mjs, found from the repo root). */
async function useSoftwareVulkanIfNeeded(): Promise<void> {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  const script = join(dir, 'scripts', 'vulkan-env.mjs');
  if (!existsSync(script)) return;
  const { vulkanIcdEnv } = (await import(pathToFileURL(script).href)) as { vulkanIcdEnv(): Record<string, string> };
  Object.assign(process.env, vulkanIcdEnv());
}

async function main(): Promise<void> {
  await useSoftwareVulkanIfNeeded();
  const checked = checkSpec(specWith(), 'bench-moe.moe');
  if (!checked.config) throw new Error(checked.diagnostics.map((d) => d.message).join('\n'));
  const config = checked.config;
  const graph = compileMoeBlockGraph(config, 0);
  const block = naiveBlockOf(graph);
  const plan = compileMoeBlockPlan(config, 0);
  const weights = new Map(graph.params.map((p, i) => {
    const shape = p.type.shape as number[];
    const fanIn = shape[shape.length - 1]!;
    return [p.name, seededNormals(1000 + i, shape.reduce((n, d) => n * d, 1), (p.name.endsWith('router.weight') ? 2 : 1) / Math.sqrt(fanIn))] as const;
  }));

  const rt = await openDevice({ gpu: createNodeGpu() });
  const { device } = rt;
  const maxTokens = Math.max(...TOKEN_COUNTS);
  const fused = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
  const naive = await createNaiveMoe(rt, plan, block, weights, maxTokens);
  const H = plan.hidden;
  const { STORAGE, COPY_SRC, COPY_DST } = GPUBufferUsage;
  const input = uploadF32(device, seededNormals(7, maxTokens * H, 1), STORAGE | COPY_SRC);
  const outFused = device.createBuffer({ size: maxTokens * H * 4, usage: STORAGE | COPY_SRC | COPY_DST });
  const outNaive = device.createBuffer({ size: maxTokens * H * 4, usage: STORAGE | COPY_SRC | COPY_DST });

  const { vendor, architecture, device: name, description } = rt.info;
  console.log(`adapter: ${[vendor, architecture, name, description].filter(Boolean).join(' / ')}`);
  console.log(`block: hidden ${H}, intermediate ${block.intermediate}, ${plan.experts} experts, top-${plan.topK} (${(graph.ops[0]!.attrs['router'] as { kind: string }).kind}), f32; ${ITERATIONS} timed iterations per row after 2 warm-ups, median`);
  console.log('fused: router -> GPU bookkeeping -> indirect grouped GEMMs -> combine (decode: GEMV over chosen experts), one submit, no readback');
  console.log('naive: router -> readback -> per active expert gather, gate, up, act, down, scatter-add -> combine');
  console.log('');
  const rows: string[][] = [['tokens', 'path', 'fused ms', 'fused tok/s', 'fused disp.', 'naive ms', 'naive tok/s', 'naive disp.', 'naive reads', 'fused/naive', 'rel. diff']];
  for (const tokens of TOKEN_COUNTS) {
    const fusedMs = await timeIt(ITERATIONS, async () => {
      const encoder = device.createCommandEncoder();
      fused.encode(encoder, input, outFused, tokens);
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    });
    let naiveDispatches = 0;
    const readsBefore = readbackCount();
    const naiveMs = await timeIt(ITERATIONS, async () => {
      naiveDispatches = await naive.run(input, outNaive, tokens);
    });
    const naiveReads = (readbackCount() - readsBefore) / (ITERATIONS + 2);
    const a = await readBackF32(device, outFused, tokens * H * 4);
    const b = await readBackF32(device, outNaive, tokens * H * 4);
    rows.push([
      String(tokens),
      tokens <= plan.decodeMaxTokens ? 'decode' : 'prefill',
      fusedMs.toFixed(2),
      ((tokens / fusedMs) * 1000).toFixed(0),
      String(fused.dispatchCount(tokens)),
      naiveMs.toFixed(2),
      ((tokens / naiveMs) * 1000).toFixed(0),
      String(naiveDispatches),
      String(naiveReads),
      `${(naiveMs / fusedMs).toFixed(2)}x`,
      relativeError(a, b).toExponential(1),
    ]);
  }
  printTable(rows);
  console.log('\nfused/naive = naive time / fused time (higher is better for fused). Times on a software adapter say little about a real GPU.');
  await compareInt4(rt, fused, weights, input, outFused);
  await compareF16Activations(rt, fused, weights);
  const tools = { seededNormals, timeIt, printTable, iterations: ITERATIONS };
  await compareFusedDecode(rt, tools);
  await compareTokenRounding(rt, tools);
  fused.destroy();
  naive.destroy();
  for (const buffer of [input, outFused, outNaive]) buffer.destroy();
  await rt.settle();
  rt.destroy();
}

/** Expert weight bytes the fused path reads for the last run's routing: each chosen expert once (decode), once per BM-row block (prefill). */
async function expertBytesPerToken(rt: GpuRuntime, executor: MoeBlockExecutor, tokens: number): Promise<number> {
  const plan: MoeBlockPlan = executor.plan;
  const perExpert = plan.weights.filter((w) => w.name.includes('.experts.')).reduce((n, w) => n + packedBytes(w.format, w.shape.slice(1)), 0);
  const ids = new Int32Array(await readBackBytes(rt.device, executor.scratchBuffer('route_ids'), tokens * plan.topK * 4));
  const counts = new Map<number, number>();
  for (const e of ids) if (e >= 0) counts.set(e, (counts.get(e) ?? 0) + 1);
  const reads = tokens <= plan.decodeMaxTokens ? counts.size : [...counts.values()].reduce((n, c) => n + Math.ceil(c / DEFAULT_GEMM_TILE.bm), 0);
  return (reads * perExpert) / tokens;
}

/** The same block with int4 (group 32) experts, timed in this run against the f32 one. */
async function compareInt4(rt: GpuRuntime, f32: MoeBlockExecutor, weights: Map<string, Float32Array>, input: GPUBuffer, outF32: GPUBuffer): Promise<void> {
  const { device } = rt;
  const config = checkSpec(specWith(QUANTIZED), 'bench-moe-int4.moe').config!;
  const int4 = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0), { readF32: (name) => weights.get(name)! });
  const outInt4 = device.createBuffer({ size: outF32.size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const H = f32.plan.hidden;
  const timeFused = (executor: MoeBlockExecutor, output: GPUBuffer, tokens: number) =>
    timeIt(ITERATIONS, async () => {
      const encoder = device.createCommandEncoder();
      executor.encode(encoder, input, output, tokens);
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    });
  console.log(`\nexperts int4 (group 32) vs f32, same block and inputs (${QUANTIZED}; router f32):`);
  const rows: string[][] = [['tokens', 'path', 'f32 ms', 'f32 tok/s', 'int4 ms', 'int4 tok/s', 'int4/f32 speed', 'f32 expert B/tok', 'int4 expert B/tok', 'int4 vs f32 out']];
  for (const tokens of TOKEN_COUNTS) {
    const f32Ms = await timeFused(f32, outF32, tokens);
    const f32Bytes = await expertBytesPerToken(rt, f32, tokens);
    const int4Ms = await timeFused(int4, outInt4, tokens);
    const int4Bytes = await expertBytesPerToken(rt, int4, tokens);
    const a = await readBackF32(device, outInt4, tokens * H * 4);
    const b = await readBackF32(device, outF32, tokens * H * 4);
    rows.push([
      String(tokens),
      tokens <= f32.plan.decodeMaxTokens ? 'decode' : 'prefill',
      f32Ms.toFixed(2),
      ((tokens / f32Ms) * 1000).toFixed(0),
      int4Ms.toFixed(2),
      ((tokens / int4Ms) * 1000).toFixed(0),
      `${(f32Ms / int4Ms).toFixed(2)}x`,
      f32Bytes.toFixed(0),
      int4Bytes.toFixed(0),
      relativeError(a, b).toExponential(1),
    ]);
  }
  printTable(rows);
  console.log('expert B/tok: gate, up and down bytes of the chosen experts read per token (decode: once per expert; prefill: once per 16-row block).');
  console.log('int4 vs f32 out: the quantization error of the block itself (random weights), not a kernel error.');
  int4.destroy();
  outInt4.destroy();
}

/** The same block compiled with `dtype = f16` (activations stored as f16 between kernels), timed against f32 through run(). */
async function compareF16Activations(rt: GpuRuntime, f32: MoeBlockExecutor, weights: Map<string, Float32Array>): Promise<void> {
  if (!rt.features.has('shader-f16')) {
    console.log('\nf16 activations: skipped, this adapter has no shader-f16');
    return;
  }
  const config = checkSpec(specWith('', 'f16'), 'bench-moe-f16.moe').config!;
  const f16 = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0), { readF32: (name) => weights.get(name)! });
  const H = f32.plan.hidden;
  console.log('\nactivations f16 vs f32 (compile dtype), same block and inputs; run(): upload, forward, readback:');
  const rows: string[][] = [['tokens', 'path', 'f32 ms', 'f32 tok/s', 'f16 ms', 'f16 tok/s', 'f16/f32 speed', 'f16 vs f32 out']];
  for (const tokens of TOKEN_COUNTS) {
    const x = seededNormals(9, tokens * H, 1);
    let a: Float32Array = new Float32Array(0);
    let b: Float32Array = new Float32Array(0);
    const f32Ms = await timeIt(ITERATIONS, async () => (b = await f32.run(x, tokens)));
    const f16Ms = await timeIt(ITERATIONS, async () => (a = await f16.run(x, tokens)));
    rows.push([
      String(tokens),
      tokens <= f32.plan.decodeMaxTokens ? 'decode' : 'prefill',
      f32Ms.toFixed(2),
      ((tokens / f32Ms) * 1000).toFixed(0),
      f16Ms.toFixed(2),
      ((tokens / f16Ms) * 1000).toFixed(0),
      `${(f32Ms / f16Ms).toFixed(2)}x`,
      relativeError(a, b).toExponential(1),
    ]);
  }
  printTable(rows);
  console.log('f16 vs f32 out: what storing activations in f16 costs (input, intermediates and output rounded to f16).');
  f16.destroy();
}

/** Prints rows right-aligned in columns, the first row as the header. */
function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
}

await main();
