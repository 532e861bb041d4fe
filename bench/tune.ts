/// <reference types="@webgpu/types" />
// Benchmark: what `moec tune` buys on this adapter, against its roofline. Measures the adapter's
// achievable bandwidth (a vec4 copy kernel) and the best plain f32 matmul rate over a few tiles,
// tunes two MoE blocks (Mixtral-like and DeepSeek-like expert shapes, scaled to run on a software
// rasterizer) at 1, 8, 64 and 512 tokens with the tuning cache (a rerun resumes), then prints per
// kernel family and bucket (the grouped GEMMs at 64 and 512, the fused decode kernels' rows at 1
// and 8): default vs tuned time, the ratio, GFLOP/s, GB/s and the roofline fractions.
// Never passes or fails on time.
//   npm run build && npm run bench:tune     (MOEC_TUNE_BUDGET=seconds per block, default 60;
//   MOEC_MATMUL_CANDIDATES=dense GEMM tiles tried for the matmul roofline, default 36)
import { checkSpec } from '../compiler/spec/check.js';
import { tunedTargetFor } from '../compiler/tune/apply-tuning.js';
import { BlockBench, FAMILY_KERNELS, familyPath, withRepeatedSteps } from '../compiler/tune/block-bench.js';
import { cacheFileOf, readTuningFile, tuningCacheDir, writeTuningFile } from '../compiler/tune/tuning-cache.js';
import { tuneMoeBlock } from '../compiler/tune/tuner.js';
import type { GemmTile } from '../ir/ops-lowered.js';
import { openDevice, type GpuRuntime } from '../runtime/device.js';
import { createNodeGpu } from '../runtime/node/dawn.js';
import { adapterIdentity, describeAdapter, type KernelLimits } from '../runtime/tuning/adapter-identity.js';
import { renderGemmKernel } from '../codegen/kernels/grouped-gemm/grouped-gemm.js';
import { DEFAULT_DECODE_ROWS, DEFAULT_GEMM_TILE, type TargetDescription } from '../ir/target.js';
import { gemmTileCandidates, gemmTileText } from '../compiler/tune/search-space.js';
import { adapterSection, emptyTuningFile } from '../runtime/tuning/tuning-file.js';
import { blockSpec } from './pass-effects.js';
import { useSoftwareVulkanIfNeeded } from '../compiler/cli/run-command.js';

const BUDGET_S = Number(process.env['MOEC_TUNE_BUDGET'] ?? 60);
/** Dense GEMM tiles tried for the matmul roofline (the search space's first ones, variants included). */
const MATMUL_CANDIDATES = Number(process.env['MOEC_MATMUL_CANDIDATES'] ?? 36);
const BUCKETS = [64, 512];
/** Decode buckets: the fused decode kernels' rows per workgroup are tuned here. */
const DECODE_BUCKETS = [1, 8];
/** Extra runs of a family's dispatches in a timed block: its time is the difference over this. */
const REPEAT = 3;
const FAMILY_ROUNDS = 5;

const BLOCKS = [
  { name: 'mixtral-like', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 512)', hidden: 256, intermediate: 512, experts: 8, topK: 2 },
  { name: 'deepseek-like', moe: 'experts = 16\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 128)', hidden: 256, intermediate: 128, experts: 16, topK: 4 },
];

// Roofline kernels: plain WGSL, not compiler output (they measure the adapter, not moec).
const COPY_WGSL = `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) n: vec3u) {
  let i = id.x + id.y * n.x * 256u;
  if (i < arrayLength(&src)) { dst[i] = src[i]; }
}`;

/** C[M, N] = A[M, K] B[K, N], one workgroup a (16 TM) x (16 TN) tile through workgroup memory, K in steps of 16. */
const matmulWgsl = (tm: number, tn: number, n: number) => `
const N = ${n}u; const TM = ${tm}u; const TN = ${tn}u; const BM = 16u * TM; const BN = 16u * TN; const BK = 16u;
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
var<workgroup> ta: array<f32, BM * BK>;
var<workgroup> tb: array<f32, BK * BN>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let lid = l.y * 16u + l.x;
  var acc: array<f32, ${tm * tn}>;
  for (var k0 = 0u; k0 < N; k0 += BK) {
    for (var i = lid; i < BM * BK; i += 256u) { ta[i] = a[(wg.y * BM + i / BK) * N + k0 + i % BK]; }
    for (var i = lid; i < BK * BN; i += 256u) { tb[i] = b[(k0 + i / BN) * N + wg.x * BN + i % BN]; }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      for (var i = 0u; i < TM; i++) {
        let av = ta[(l.y + i * 16u) * BK + k];
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] += av * tb[k * BN + l.x + j * 16u]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) { for (var j = 0u; j < TN; j++) { c[(wg.y * BM + l.y + i * 16u) * N + wg.x * BN + l.x + j * 16u] = acc[i * TN + j]; } }
}`;

/** bm/bn/bk/tm/tn, then the loop variant: +k4 (vec4 along K, workgroup tiles), +k4d (vec4 along K, direct reads). */
const tileLabel = (t: GemmTile): string => `${t.bm}/${t.bn}/${t.bk}/${t.tm}/${t.tn}${t.kvec === 4 ? (t.direct === 1 ? '+k4d' : '+k4') : ''}`;

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
}

/** Median ms of `dispatch` run `reps` times per sample in one pass (GPU timestamps if available, else wall clock). */
async function timeDispatch(rt: GpuRuntime, pipeline: GPUComputePipeline, group: GPUBindGroup, grid: [number, number], reps: number): Promise<number> {
  const { device } = rt;
  const query = rt.features.has('timestamp-query') ? device.createQuerySet({ type: 'timestamp', count: 2 }) : undefined;
  const resolved = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const once = async (): Promise<number> => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass(query ? { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(grid[0], grid[1]);
    pass.end();
    if (query) {
      encoder.resolveQuerySet(query, 0, 2, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, staging, 0, 16);
    }
    const start = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    const wall = performance.now() - start;
    if (!query) return wall / reps;
    await staging.mapAsync(GPUMapMode.READ);
    const [t0, t1] = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    return Number(t1! - t0!) / 1e6 / reps;
  };
  await once();
  const samples = [await once(), await once(), await once()].sort((x, y) => x - y);
  query?.destroy();
  resolved.destroy();
  staging.destroy();
  return samples[1]!;
}

function pipelineOf(rt: GpuRuntime, code: string): GPUComputePipeline {
  return rt.device.createComputePipeline({ layout: 'auto', compute: { module: rt.device.createShaderModule({ code }), entryPoint: 'main' } });
}

async function copyBandwidth(rt: GpuRuntime): Promise<number> {
  const bytes = 32 * 1024 * 1024;
  const usage = GPUBufferUsage.STORAGE;
  const [src, dst] = [rt.device.createBuffer({ size: bytes, usage }), rt.device.createBuffer({ size: bytes, usage })];
  const pipeline = pipelineOf(rt, COPY_WGSL);
  const group = rt.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] });
  const workgroups = bytes / 16 / 256;
  const ms = await timeDispatch(rt, pipeline, group, [Math.min(workgroups, 32768), Math.ceil(workgroups / 32768)], 4);
  src.destroy();
  dst.destroy();
  return (2 * bytes) / (ms / 1000) / 1e9;
}

/**
 * The best f32 matmul rate found at n^3: the plain kernel above over a few tiles, and moec's own
 * dense GEMM kernel (the grouped GEMM's tile loop, rows = tokens) over the tuner's search space for
 * that square problem, so "of matmul" compares against the best this adapter was seen to do.
 */
async function bestMatmul(rt: GpuRuntime, limits: KernelLimits, tuned: readonly GemmTile[]): Promise<{ gflops: number; tile: string }> {
  const n = 512;
  const { STORAGE, UNIFORM, COPY_DST } = GPUBufferUsage;
  const buffers = [0, 1, 2].map(() => rt.device.createBuffer({ size: n * n * 4, usage: STORAGE }));
  // Params of the dense GEMM: tokens = n rows, matrix 0.
  const params = rt.device.createBuffer({ size: 16, usage: UNIFORM | COPY_DST });
  rt.device.queue.writeBuffer(params, 0, new Uint32Array([n, 0, 1, 0]));
  let best = { gflops: 0, tile: '' };
  const consider = async (code: string, bindings: GPUBuffer[], grid: [number, number], tile: string): Promise<void> => {
    const pipeline = pipelineOf(rt, code);
    const group = rt.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: bindings.map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const ms = await timeDispatch(rt, pipeline, group, grid, 2);
    const gflops = (2 * n ** 3) / (ms / 1000) / 1e9;
    if (gflops > best.gflops) best = { gflops, tile };
  };
  for (const [tm, tn] of [[1, 1], [2, 2], [2, 4], [4, 4], [4, 2], [8, 4]] as const) {
    await consider(matmulWgsl(tm, tn, n), buffers, [n / (16 * tn), n / (16 * tm)], `plain ${16 * tm}x${16 * tn} (${tm}x${tn} per thread)`);
  }
  const searched = gemmTileCandidates({ kdim: n, ndim: n, gateup: false, rowsPerExpert: n, limits }, DEFAULT_GEMM_TILE, MATMUL_CANDIDATES);
  // The tiles the tuner kept for the MoE blocks too: what it found there, it can find here.
  const tiles = [...new Map([...searched, ...tuned].map((t) => [gemmTileText(t), t])).values()];
  for (const tile of tiles) {
    const kernel = renderGemmKernel({ gateup: false, grouped: false, bias: false, weighted: false, kdim: n, ndim: n, topK: 1, shards: 1, tile });
    const byName: Record<string, GPUBuffer> = { a: buffers[0]!, w0: buffers[1]!, out: buffers[2]! };
    const bindings = [...kernel.bindings.map((b) => byName[b.name]!), params];
    await consider(kernel.wgsl, bindings, [Math.ceil(n / tile.bn), Math.ceil(n / tile.bm)], `dense GEMM ${gemmTileText(tile)}`);
  }
  buffers.forEach((b) => b.destroy());
  params.destroy();
  return best;
}

interface FamilyComparison {
  /** Median family ms, default and tuned. */
  def: number;
  tuned: number;
  /** Median block ms, default and tuned. */
  blockDef: number;
  blockTuned: number;
  /** Relative spread of the per-round default/tuned ratios (half the interquartile range over the median). */
  noise: number;
}

/**
 * The family's time at `tokens` under the default and the tuned target: (block with its dispatches
 * run REPEAT more times - block) / REPEAT, all four executors timed in each round (a slow spell
 * of a shared machine hits both targets), medians over FAMILY_ROUNDS rounds. An unchanged target
 * (nothing tuned) is measured once.
 */
async function compareFamily(bench: BlockBench, tuned: Partial<TargetDescription>, family: string, tokens: number): Promise<FamilyComparison> {
  const targets = Object.keys(tuned).length ? [{}, tuned] : [{}];
  const executors = await Promise.all(targets.map(async (target) => {
    const plan = bench.plan(target);
    return { plain: await bench.executor(plan), repeated: await bench.executor(withRepeatedSteps(plan, FAMILY_KERNELS[family]!, REPEAT, familyPath(family))) };
  }));
  try {
    const family_ = targets.map(() => [] as number[]);
    const block = targets.map(() => [] as number[]);
    for (let i = 0; i < FAMILY_ROUNDS; i++) {
      for (const [t, e] of executors.entries()) {
        const a = (await bench.time(e.plain, tokens, { samples: 3 })).ms;
        const b = (await bench.time(e.repeated, tokens, { samples: 3 })).ms;
        family_[t]!.push(Math.max(1e-6, (b - a) / REPEAT));
        block[t]!.push(a);
      }
    }
    const med = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1]!;
    const last = targets.length - 1;
    const ratios = family_[0]!.map((d, i) => d / family_[last]![i]!).sort((x, y) => x - y);
    const quartile = (q: number) => ratios[Math.min(ratios.length - 1, Math.round(q * (ratios.length - 1)))]!;
    return {
      def: med(family_[0]!), tuned: med(family_[last]!), blockDef: med(block[0]!), blockTuned: med(block[last]!),
      noise: last ? (quartile(0.75) - quartile(0.25)) / 2 / med(ratios) : 0,
    };
  } finally {
    for (const e of executors) {
      e.plain.destroy();
      e.repeated.destroy();
    }
  }
}

/** The ratio column: default / tuned, and whether the difference stands out of the rounds' spread. */
function ratioText(c: FamilyComparison, tunedSomething: boolean): string {
  if (!tunedSomething) return '1.00x (default kept)';
  const ratio = c.def / c.tuned;
  const verdict = Math.abs(ratio - 1) <= Math.max(c.noise, 0.05) ? 'within noise' : ratio > 1 ? 'faster' : 'SLOWER';
  return `${ratio.toFixed(2)}x ±${(100 * c.noise).toFixed(0)}% ${verdict}`;
}

async function main(): Promise<void> {
  await useSoftwareVulkanIfNeeded();
  const rt = await openDevice({ gpu: createNodeGpu(), label: 'bench:tune' });
  const identity = adapterIdentity(rt.info, rt.adapter);
  console.log(`adapter: ${describeAdapter(identity)}; timing: ${rt.features.has('timestamp-query') ? 'GPU timestamps' : 'wall clock'}, medians`);
  const bandwidth = await copyBandwidth(rt);
  const cacheFile = cacheFileOf(tuningCacheDir(), identity);
  const file = readTuningFile(cacheFile, (m) => console.warn(`warning: ${m}`)) ?? emptyTuningFile();
  const rows = [['block', 'family', 'T', 'default ms', 'tuned ms', 'ratio', 'tuned tile', 'GFLOP/s', 'GB/s', 'of matmul', 'of copy', 'block ms def/tuned']];
  // Filled in once the matmul roofline is measured (after tuning, so it can try the tuned tiles).
  const rates: Array<{ row: string[]; gflops: number }> = [];
  const tunedTiles: GemmTile[] = [];
  for (const b of BLOCKS) {
    const checked = checkSpec(blockSpec(b.name, b.moe), `${b.name}.moe`);
    if (!checked.config) throw new Error(checked.diagnostics.map((d) => d.message).join('\n'));
    const config = checked.config;
    console.log(`\n${b.name}: hidden ${b.hidden}, intermediate ${b.intermediate}, ${b.experts} experts, top-${b.topK}, f32; tuning ${BUDGET_S}s (cache ${cacheFile})`);
    const result = await tuneMoeBlock(rt, config, { tokens: [...DECODE_BUCKETS, ...BUCKETS], budgetMs: BUDGET_S * 1000, file, save: (f) => writeTuningFile(cacheFile, f), repeat: REPEAT,
      onEvent: (e) => { if (e.kind === 'candidate' && e.outcome !== 'measured' && e.outcome !== 'resumed') console.log(`  ${e.task} ${JSON.stringify(e.config)}: ${e.reason}`); } });
    const bench = new BlockBench(rt, config, 0);
    const section = adapterSection(file, identity);
    for (const tokens of BUCKETS) {
      const tuned = tunedTargetFor(section, config, {}, { prefillTokens: tokens })?.target ?? {};
      for (const family of ['grouped_gemm.gate_up', 'grouped_gemm.down']) {
        const gateUp = family === 'grouped_gemm.gate_up';
        const tile = tuned.expertGemmTiles?.[gateUp ? 'gateUp' : 'down'];
        const c = await compareFamily(bench, tile ? tuned : {}, family, tokens);
        const pairs = tokens * b.topK;
        const flops = 2 * pairs * b.hidden * b.intermediate * (gateUp ? 2 : 1);
        const active = Math.min(b.experts, pairs);
        const bytes = 4 * (active * b.hidden * b.intermediate * (gateUp ? 2 : 1) + (gateUp ? tokens * b.hidden + pairs * b.intermediate : pairs * b.intermediate + pairs * b.hidden));
        const gflops = flops / (c.tuned / 1000) / 1e9;
        const gbs = bytes / (c.tuned / 1000) / 1e9;
        const row = [b.name, family, String(tokens), c.def.toFixed(3), c.tuned.toFixed(3), ratioText(c, !!tile),
          tile ? tileLabel(tile) : 'default', gflops.toFixed(2), gbs.toFixed(2),
          '', `${((100 * gbs) / bandwidth).toFixed(0)}%`, `${c.blockDef.toFixed(2)}/${c.blockTuned.toFixed(2)}`];
        rows.push(row);
        rates.push({ row, gflops });
        if (tile) tunedTiles.push(tile);
      }
    }
    for (const tokens of DECODE_BUCKETS) {
      // The rows tuned at this bucket (a compiled plan takes one bucket's: apply-tuning.ts, decodeTokens).
      const rowsTuned = tunedTargetFor(section, config, {}, { decodeTokens: tokens })?.target.decodeRows;
      // Only the rows: a tuned crossover below this bucket would send it to the prefill path.
      const tuned: Partial<TargetDescription> = rowsTuned === undefined || rowsTuned === DEFAULT_DECODE_ROWS ? {} : { decodeRows: rowsTuned };
      const c = await compareFamily(bench, tuned, 'decode.rows', tokens);
      const pairs = tokens * b.topK;
      const flops = 2 * pairs * b.hidden * b.intermediate * 3;
      // Each active expert's gate, up and down read once (at most T K experts are active).
      const bytes = 4 * Math.min(b.experts, pairs) * 3 * b.hidden * b.intermediate;
      const gflops = flops / (c.tuned / 1000) / 1e9;
      const gbs = bytes / (c.tuned / 1000) / 1e9;
      const row = [b.name, 'decode.rows', String(tokens), c.def.toFixed(3), c.tuned.toFixed(3), ratioText(c, tuned.decodeRows !== undefined),
        tuned.decodeRows !== undefined ? `rows=${tuned.decodeRows}` : 'default', gflops.toFixed(2), gbs.toFixed(2),
        '', `${((100 * gbs) / bandwidth).toFixed(0)}%`, `${c.blockDef.toFixed(2)}/${c.blockTuned.toFixed(2)}`];
      rows.push(row);
      rates.push({ row, gflops });
    }
    const cross = result.entries.find((e) => e.family === 'decode_max_tokens');
    if (cross) console.log(`  decode/prefill crossover: decodeMaxTokens ${cross.config['decodeMaxTokens']} (${cross.kept})`);
    if (result.outOfBudget) console.log('  the budget ran out before every candidate was tried: rerun to continue from the cache');
  }
  const matmul = await bestMatmul(rt, identity.limits, tunedTiles);
  for (const { row, gflops } of rates) row[9] = `${((100 * gflops) / matmul.gflops).toFixed(0)}%`;
  console.log(`\nroofline: copy ${bandwidth.toFixed(2)} GB/s (32 MiB vec4 copy, read + write); best f32 matmul found ${matmul.gflops.toFixed(2)} GFLOP/s (512^3, ${matmul.tile})`);
  console.log('');
  printTable(rows);
  console.log('\nfamily ms: (block with the family\'s dispatches run 4x - block) / 3, medians of rounds timing default and tuned in turn; ratio: default / tuned, ± half the interquartile range of the per-round ratios (within noise: |ratio - 1| no more than that, or 5%); tile bm/bn/bk/tm/tn (+k4: vec4 along K; +k4d: vec4 along K read without workgroup tiles). GB/s counts each active expert\'s weights once plus activations (decode.rows: the weights only, min(E, T K) experts).');
  console.log('Times on a software adapter say little about a real GPU.');
  rt.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
