// The kernel side of SonicMoE token rounding, end to end on WebGPU (test/codegen/sonic-prefill.ts
// runs router -> round-tokens -> route-align -> grouped gate/up -> grouped down -> combine with
// every rounding option on, buffers poisoned). Each run is checked against the reference on the
// GPU router's own routing: routerProbabilities on float64 logits for the probs, roundTokens for
// the rounded ids, weights and extras (bit-equal), and mixRoundedExperts over a float64 expert MLP
// for the output. The padding rows after rounding are counted from what route-align wrote.
// Also: the rendered WGSL with every option off mentions none of the new bindings, and a routing
// that rounding leaves alone gives the plain path's output bit for bit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCombineKernel } from '../../codegen/kernels/combine/combine.js';
import { renderGemmKernel } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { renderRouteAlignKernel } from '../../codegen/kernels/route-align/route-align.js';
import { renderRouterKernel, routerTokensPerWorkgroup } from '../../codegen/kernels/router/router.js';
import { dot, silu } from '../../ir/interpret/math.js';
import { downRow, expertSlice, gateUpRow, type MlpWeights } from '../../ir/interpret/mlp.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { mixRoundedExperts, roundTokens, routerProbabilities, type RoundedRouting, type RoundingMode } from '../../ir/interpret/token-rounding.js';
import type { KindRef } from '../../ir/model-config.js';
import { poison, readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { seededRandom } from '../support/seeded-random.js';
import { BLOCK_ROWS, SonicPrefillBlock, SWIGLU, type SonicBlockShape, type SonicBlockWeights, type SonicRun } from './sonic-prefill.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`sonic-kernels: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);

const TILE = 16; // sonic tile M (= BLOCK_ROWS, the GEMM's BM)
const TOLERANCE = 1e-5;
const HIDDEN = 72;
const INTERMEDIATE = 42; // not a multiple of 4: the down GEMM takes the scalar-load path

interface Family {
  name: string;
  router: KindRef;
  bias: boolean;
  correctionBias: boolean;
}

const families: Family[] = [
  { name: 'softmax_topk renormalized', router: { kind: 'softmax_topk', params: { renormalize: true, groups: 1, topk_groups: 1, scale: 1, null_experts: 0, bias: false } }, bias: false, correctionBias: false },
  { name: 'sigmoid_topk, 4 groups', router: { kind: 'sigmoid_topk', params: { renormalize: true, groups: 4, topk_groups: 2, scale: 2.5, correction_bias: true } }, bias: false, correctionBias: true },
  { name: 'topk_softmax with bias', router: { kind: 'topk_softmax', params: { bias: true } }, bias: true, correctionBias: false },
];

function normals(n: number, std: number): Float32Array {
  return Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
}

function randomWeights(shape: SonicBlockShape): SonicBlockWeights {
  const { hidden: H, intermediate: I, experts: E } = shape;
  return {
    router: normals(E * H, 2 / Math.sqrt(H)),
    ...(shape.bias ? { routerBias: normals(E, 0.5) } : {}),
    ...(shape.correctionBias ? { correctionBias: normals(E, 0.1) } : {}),
    gate: normals(E * I * H, 1 / Math.sqrt(H)),
    up: normals(E * I * H, 1 / Math.sqrt(H)),
    down: normals(E * H * I, 1 / Math.sqrt(I)),
  };
}

/** The float64 logits x W^T + b of every token, [T, E]. */
function logitsOf(shape: SonicBlockShape, w: SonicBlockWeights, x: Float32Array, tokens: number): Float64Array[] {
  const { hidden: H, experts: E } = shape;
  return Array.from({ length: tokens }, (_, t) => Float64Array.from({ length: E }, (_, e) => dot(x, t * H, w.router, e * H, H) + (w.routerBias?.[e] ?? 0)));
}

/** expert_e(x_t) in float64 (the intermediate stored as f32, as the GEMMs store it), cached. */
function expertOutputs(shape: SonicBlockShape, w: SonicBlockWeights, x: Float32Array): (t: number, e: number) => Float64Array {
  const { hidden: H, intermediate: I } = shape;
  const act = (gate: number, up: number): number => silu(gate) * up; // swiglu
  const all: MlpWeights = { gate: w.gate, up: w.up, down: w.down };
  const cache = new Map<number, Float64Array>();
  return (t, e) => {
    const key = t * shape.experts + e;
    let y = cache.get(key);
    if (!y) {
      const mine = expertSlice(all, e, H, I);
      y = downRow(gateUpRow(x, t * H, H, I, mine, act), 0, H, I, mine);
      cache.set(key, y);
    }
    return y;
  };
}

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Rows route-align laid out: blocks x BM, the slots in them, and each slot's expert as route_meta says. */
function alignedRows(run: SonicRun, tokens: number, topK: number) {
  const blocks = run.dispatchArgs[1]!;
  const slots: number[] = [];
  const expertOfSlot = new Map<number, number>();
  for (let r = 0; r < blocks * BLOCK_ROWS; r++) {
    const s = run.sortedSlots[r]!;
    if (s < 0) continue;
    slots.push(s);
    expertOfSlot.set(s, run.routeMeta[1 + Math.floor(r / BLOCK_ROWS)]!);
  }
  const expected = new Map<number, number>();
  for (let s = 0; s < tokens * topK; s++) if (run.ids[s]! >= 0) expected.set(s, run.ids[s]!);
  for (let j = 0; 2 * j < run.extraIds.length; j++) if (run.extraIds[2 * j]! >= 0) expected.set(tokens * topK + j, run.extraIds[2 * j + 1]!);
  return { paddedRows: blocks * BLOCK_ROWS, slots, expertOfSlot, expected };
}

interface Checked {
  error: number;
  ref: RoundedRouting;
  padding: number;
}

/** Every check of one rounded run against the references; returns the output's relative error. */
function checkRoundedRun(shape: SonicBlockShape, w: SonicBlockWeights, x: Float32Array, tokens: number, run: SonicRun): Checked {
  const { experts: E, topK: K, hidden: H, rounding } = shape;
  const { mode, tile } = rounding!;
  const where = `T ${tokens}, E ${E}, K ${K}, ${mode}`;
  const logits = logitsOf(shape, w, x, tokens);
  const probs = new Float64Array(tokens * E);
  logits.forEach((l, t) => probs.set(routerProbabilities(shape.router, l), t * E));
  expect(relativeError(run.probs, probs), `${where}: route_probs`).toBeLessThan(TOLERANCE);

  const ref = roundTokens({ tokens, experts: E, topK: K, ids: run.routedIds, weights: run.routedWeights, probs: run.probs, mode, tile });
  expect(Array.from(run.ids), `${where}: rounded ids`).toEqual(Array.from(ref.ids));
  expect(bits(run.weights), `${where}: rounded weights`).toEqual(bits(ref.weights));
  expect(Array.from(run.extraIds), `${where}: extra ids`).toEqual(Array.from(ref.extraIds));
  expect(bits(run.extraWeights), `${where}: extra weights`).toEqual(bits(ref.extraWeights));

  // route-align placed exactly the kept slots and the extras, each in a block of its expert.
  const rows = alignedRows(run, tokens, K);
  expect(rows.slots.length, `${where}: rows placed`).toBe(rows.expected.size);
  expect(new Map([...rows.expertOfSlot].sort((a, b) => a[0] - b[0])), `${where}: slot experts`).toEqual(new Map([...rows.expected].sort((a, b) => a[0] - b[0])));
  expect(rows.paddedRows, `${where}: padded rows`).toBe(ref.stats.paddedRowsAfter);
  expect(run.roundStats[1], `${where}: round_stats padded rows after`).toBe(ref.stats.paddedRowsAfter);
  // Each expert's rows are a multiple of M except where rounding up stopped at the batch (T tokens).
  const counts = new Array<number>(E).fill(0);
  for (const e of rows.expected.values()) counts[e]!++;
  const clamped = counts.filter((c) => c === tokens && tokens % tile !== 0).length;
  const padding = rows.paddedRows - rows.expected.size;
  expect(padding, `${where}: padding rows`).toBe(clamped * (tile - (tokens % tile)));
  if (mode === 'down') expect(padding, `${where}: rounding down leaves no padding`).toBe(0);

  expect(run.out.every(Number.isFinite), `${where}: an output is NaN (never written)`).toBe(true);
  const expected = mixRoundedExperts(ref, { tokens, topK: K, hidden: H }, expertOutputs(shape, w, x));
  return { error: relativeError(run.out, expected), ref, padding };
}

let rt: GpuRuntime;
const pipelines = new Map<string, GPUComputePipeline>();
const results: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
});
afterAll(() => {
  console.log(['family                      E  K  mode      T   dropped  added  padding  rel. error', ...results].join('\n'));
  rt?.destroy();
});

describe('token rounding on the prefill path, end to end on WebGPU', () => {
  const modes: RoundingMode[] = ['up', 'down', 'nearest'];
  for (const family of families) {
    for (const mode of modes) {
      it(`${family.name}, ${mode}: E in 8, 64 x K in 1, 2, 4 x T in 9, 100, 300`, async () => {
        for (const experts of [8, 64]) {
          for (const topK of [1, 2, 4]) {
            const shape: SonicBlockShape = { hidden: HIDDEN, intermediate: INTERMEDIATE, experts, topK, router: family.router, bias: family.bias, correctionBias: family.correctionBias, rounding: { mode, tile: TILE } };
            const weights = randomWeights(shape);
            const block = new SonicPrefillBlock(rt, shape, weights, pipelines);
            try {
              await block.compile();
              for (const tokens of [9, 100, 300]) {
                const x = normals(tokens * HIDDEN, 1);
                const run = await block.run(x, tokens);
                const { error, ref, padding } = checkRoundedRun(shape, weights, x, tokens, run);
                results.push(`${family.name.padEnd(26)} ${String(experts).padStart(3)} ${topK}  ${mode.padEnd(7)} ${String(tokens).padStart(4)}  ${String(ref.stats.tokensDropped).padStart(7)}  ${String(ref.stats.tokensAdded).padStart(5)}  ${String(padding).padStart(7)}  ${error.toExponential(2)}`);
                expect(error, `T ${tokens}, E ${experts}, K ${topK}: ||out - ref|| / ||ref||`).toBeLessThan(TOLERANCE);
              }
            } finally {
              block.destroy();
            }
          }
        }
      });
    }
  }
});

/**
 * x and router weights that give token t the experts (t + c_i(q)) % E, q = floor(t / E), with
 * distinct offsets c_0 = 0 < c_1 < ...: every E tokens give each expert K rows, so with T a
 * multiple of 16 E / K every count is a multiple of 16 and rounding keeps the routing as it is.
 */
function tiledRouting(shape: SonicBlockShape, tokens: number): { x: Float32Array; router: Float32Array } {
  const { hidden: H, experts: E, topK: K } = shape;
  const x = normals(tokens * H, 0.01);
  for (let t = 0; t < tokens; t++) {
    const q = Math.floor(t / E);
    for (let i = 0; i < K; i++) {
      const offset = i === 0 ? 0 : 1 + ((q * 7 + i * (E / K)) % (E - 1));
      x[t * H + ((t + offset) % E)]! += 1 - 0.15 * i;
    }
  }
  const router = normals(E * H, 0.01);
  for (let e = 0; e < E; e++) router[e * H + e]! += 3;
  return { x, router };
}

describe('a routing that rounding keeps gives the plain path bit for bit', () => {
  const cases: Array<[experts: number, topK: number, tokens: number]> = [[8, 2, 64], [16, 4, 64], [64, 4, 256], [64, 1, 1024]];
  for (const [experts, topK, tokens] of cases) {
    it(`softmax_topk, E ${experts}, K ${topK}, T ${tokens}: up, down and nearest`, async () => {
      const base: SonicBlockShape = { hidden: HIDDEN, intermediate: INTERMEDIATE, experts, topK, router: families[0]!.router, bias: false, correctionBias: false };
      const { x, router } = tiledRouting(base, tokens);
      const weights = { ...randomWeights(base), router };
      const plainBlock = new SonicPrefillBlock(rt, base, weights, pipelines);
      await plainBlock.compile();
      const plain = await plainBlock.run(x, tokens);
      plainBlock.destroy();
      const counts = new Array<number>(experts).fill(0);
      for (const e of plain.ids) if (e >= 0) counts[e]!++;
      expect(counts, 'every expert count is a multiple of 16').toEqual(new Array(experts).fill((tokens * topK) / experts));
      expect(plain.dispatchArgs[1]! * BLOCK_ROWS, 'no padding rows').toBe(tokens * topK);
      const ref = mixRoundedExperts({ ids: plain.ids, weights: plain.weights, extraIds: new Int32Array(0), extraWeights: new Float32Array(0) }, { tokens, topK, hidden: HIDDEN }, expertOutputs(base, weights, x));
      expect(relativeError(plain.out, ref), 'plain path').toBeLessThan(TOLERANCE);
      for (const mode of ['up', 'down', 'nearest'] as const) {
        const shape = { ...base, rounding: { mode, tile: TILE } };
        const block = new SonicPrefillBlock(rt, shape, weights, pipelines);
        await block.compile();
        const run = await block.run(x, tokens);
        block.destroy();
        const { ref: rounded } = checkRoundedRun(shape, weights, x, tokens, run);
        expect([rounded.stats.tokensDropped, rounded.stats.tokensAdded], `${mode}: nothing dropped or added`).toEqual([0, 0]);
        expect(Array.from(run.ids), `${mode}: ids`).toEqual(Array.from(plain.ids));
        expect(bits(run.out), `${mode}: output bits`).toEqual(bits(plain.out));
      }
    });
  }
});

describe('combine with extras', () => {
  // Not roundTokens' layout: many pairs of one token, so one token overflows the workgroup list
  // (1024 entries) when X = 1700 and takes the scan; order of the sum must still be ascending j.
  for (const extras of [300, 1700]) {
    it(`X = ${extras}: each token adds its rows T K + j in ascending j`, async () => {
      const [tokens, topK, H] = [5, 2, 70];
      const kernel = renderCombineKernel({ hidden: H, topK, shared: false, sharedGate: false, extras });
      const pipeline = await createComputePipelineChecked(rt.device, kernel.name, kernel.wgsl, kernel.entryPoint);
      const ids = Int32Array.from({ length: tokens * topK }, () => (random() < 0.3 ? -1 : Math.floor(random() * 8)));
      const extraIds = new Int32Array(2 * extras);
      for (let j = 0; j < extras; j++) {
        const r = random();
        extraIds[2 * j] = r < 0.05 ? -1 : r < 0.7 && extras > 1024 ? 0 : Math.floor(random() * tokens);
        extraIds[2 * j + 1] = 3;
      }
      const slotOut = normals((tokens * topK + extras) * H, 1);
      const expected = new Float64Array(tokens * H);
      for (let t = 0; t < tokens; t++) {
        const rowsOfT = [...Array.from({ length: topK }, (_, k) => t * topK + k).filter((s) => ids[s]! >= 0), ...Array.from({ length: extras }, (_, j) => j).filter((j) => extraIds[2 * j] === t).map((j) => tokens * topK + j)];
        if (extras > 1024 && t === 0) expect(rowsOfT.length).toBeGreaterThan(1024);
        for (let h = 0; h < H; h++) {
          let y = 0; // f32 sums in the kernel's order
          for (const s of rowsOfT) y = Math.fround(y + slotOut[s * H + h]!);
          expected[t * H + h] = y;
        }
      }
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
      const out = rt.device.createBuffer({ size: tokens * H * 4, usage: usage | GPUBufferUsage.COPY_DST });
      poison(rt.device, out, out.size);
      const buffers: Record<string, GPUBuffer> = { route_ids: uploadBytes(rt.device, ids, usage), slot_out: uploadBytes(rt.device, slotOut, usage), extra_ids: uploadBytes(rt.device, extraIds, usage), out };
      const uniform = uploadBytes(rt.device, new Uint32Array([tokens, 0, 8, 0]), GPUBufferUsage.UNIFORM);
      const encoder = rt.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, rt.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [...kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: buffers[b.name]! } })), { binding: kernel.uniformBinding, resource: { buffer: uniform } }] }));
      pass.dispatchWorkgroups(tokens);
      pass.end();
      rt.device.queue.submit([encoder.finish()]);
      const got = new Float32Array(await readBackBytes(rt.device, out, tokens * H * 4));
      await rt.settle();
      [...Object.values(buffers), uniform].forEach((b) => b.destroy());
      expect(bits(got)).toEqual(bits(Float32Array.from(expected)));
    });
  }
});

describe('router probabilities for every router kind', () => {
  const kinds: Family[] = [
    ...families,
    { name: 'softmax_topk, null experts, bias', router: { kind: 'softmax_topk', params: { renormalize: true, groups: 1, topk_groups: 1, scale: 1, null_experts: 3, bias: true } }, bias: true, correctionBias: false },
    { name: 'sigmoid_topk, no correction', router: { kind: 'sigmoid_topk', params: { renormalize: false, groups: 1, topk_groups: 1, scale: 1, correction_bias: false } }, bias: false, correctionBias: false },
    { name: 'sparsemixer', router: { kind: 'sparsemixer', params: { jitter_eps: 0.01 } }, bias: false, correctionBias: false },
    { name: 'relu_gate', router: { kind: 'relu_gate', params: {} }, bias: false, correctionBias: false },
  ];
  for (const family of kinds) {
    it(`${family.name}: route_probs = routerProbabilities(x W^T + b), routing unchanged`, async () => {
      const topK = family.router.kind === 'sparsemixer' ? 2 : 3;
      for (const [experts, hidden, tokens] of [[16, 72, 37], [64, 130, 20]] as const) {
        const shape: SonicBlockShape = { hidden, intermediate: 8, experts, topK, router: family.router, bias: family.bias, correctionBias: family.correctionBias };
        const w = randomWeights(shape);
        const x = normals(tokens * hidden, 1);
        const kernels = [false, true].map((probs) => renderRouterKernel({ hidden, experts, topK, router: family.router, bias: family.bias, correctionBias: family.correctionBias, probs }));
        const outputs = [];
        for (const kernel of kernels) outputs.push(await runRouter(kernel, shape, w, x, tokens));
        const [plain, withProbs] = outputs as [RouterOutput, RouterOutput];
        expect(Array.from(withProbs.ids), 'ids').toEqual(Array.from(plain.ids));
        expect(bits(withProbs.weights), 'weights').toEqual(bits(plain.weights));
        const probs = new Float64Array(tokens * experts);
        logitsOf(shape, w, x, tokens).forEach((l, t) => probs.set(routerProbabilities(family.router, l), t * experts));
        expect(relativeError(withProbs.probs, probs)).toBeLessThan(TOLERANCE);
      }
    });
  }
});

interface RouterOutput {
  ids: Int32Array;
  weights: Float32Array;
  probs: Float32Array;
}

async function runRouter(kernel: RenderedKernel, shape: SonicBlockShape, w: SonicBlockWeights, x: Float32Array, tokens: number): Promise<RouterOutput> {
  const { device } = rt;
  const { experts: E, topK: K } = shape;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const scratch = (words: number) => {
    const b = device.createBuffer({ size: 4 * words, usage: usage | GPUBufferUsage.COPY_DST });
    poison(device, b, b.size);
    return b;
  };
  const buffers: Record<string, GPUBuffer> = {
    x: uploadBytes(device, x, usage),
    router_weight: uploadBytes(device, w.router, usage),
    ...(w.routerBias ? { router_bias: uploadBytes(device, w.routerBias, usage) } : {}),
    ...(w.correctionBias ? { correction_bias: uploadBytes(device, w.correctionBias, usage) } : {}),
    route_ids: scratch(tokens * K),
    route_weights: scratch(tokens * K),
    route_probs: scratch(tokens * E),
  };
  const pipeline = await createComputePipelineChecked(device, kernel.name, kernel.wgsl, kernel.entryPoint);
  const uniform = uploadBytes(device, new Uint32Array([tokens, 0, E, 0]), GPUBufferUsage.UNIFORM);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [...kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: buffers[b.name]! } })), { binding: kernel.uniformBinding, resource: { buffer: uniform } }] }));
  pass.dispatchWorkgroups(Math.ceil(tokens / routerTokensPerWorkgroup(E)));
  pass.end();
  device.queue.submit([encoder.finish()]);
  const out = {
    ids: new Int32Array(await readBackBytes(device, buffers['route_ids']!, tokens * K * 4)),
    weights: new Float32Array(await readBackBytes(device, buffers['route_weights']!, tokens * K * 4)),
    probs: new Float32Array(await readBackBytes(device, buffers['route_probs']!, tokens * E * 4)),
  };
  await rt.settle();
  [...Object.values(buffers), uniform].forEach((b) => b.destroy());
  return out;
}

describe('with every option off', () => {
  const newBindings = /route_probs|extra_ids|extra_weights|write_probs|token_extras|Token rounding/;
  const names = (k: RenderedKernel) => k.bindings.map((b) => b.name);
  it('the rendered kernels mention none of the new bindings, and the options add them after the existing ones', () => {
    const expectOff = (off: RenderedKernel, on: RenderedKernel, added: string[]) => {
      expect(off.wgsl).not.toMatch(newBindings);
      expect(names(on)).toEqual([...names(off), ...added]);
      expect(on.bindings.slice(0, off.bindings.length)).toEqual(off.bindings);
      expect(on.uniformBinding).toBe(off.uniformBinding + added.length);
    };
    for (const family of families) {
      const shape = { hidden: 72, experts: 16, topK: 2, router: family.router, bias: family.bias, correctionBias: family.correctionBias };
      expectOff(renderRouterKernel(shape), renderRouterKernel({ ...shape, probs: true }), ['route_probs']);
    }
    const align = { experts: 64, topK: 4, blockRows: 16, shardBegins: [0, 20], gateUpTiles: 2, downTiles: 1 };
    expectOff(renderRouteAlignKernel(align), renderRouteAlignKernel({ ...align, extras: 960 }), ['extra_ids']);
    const gateUp = { gateup: true, grouped: true, bias: true, weighted: false, kdim: 72, ndim: 40, topK: 2, activation: SWIGLU, shards: 2 };
    expectOff(renderGemmKernel(gateUp), renderGemmKernel({ ...gateUp, extras: true }), ['extra_ids']);
    const down = { gateup: false, grouped: true, bias: false, weighted: true, kdim: 40, ndim: 72, topK: 2, shards: 1 };
    expectOff(renderGemmKernel(down), renderGemmKernel({ ...down, extras: true }), ['extra_weights']);
    for (const act of ['f32', 'f16'] as const) {
      const combine = { hidden: 72, topK: 4, shared: true, sharedGate: true, act };
      expectOff(renderCombineKernel(combine), renderCombineKernel({ ...combine, extras: 960 }), ['extra_ids']);
    }
    expect(() => renderGemmKernel({ ...down, grouped: false, weighted: false, extras: true })).toThrow(/only a grouped GEMM/);
  });

  it('the kernels with every option on compile with f16 activations too', async (ctx) => {
    if (!rt.features.has('shader-f16')) return ctx.skip('this adapter has no shader-f16');
    const act = 'f16' as const;
    const kernels = [
      renderRouterKernel({ hidden: 72, experts: 16, topK: 2, router: families[1]!.router, bias: false, correctionBias: true, probs: true, act }),
      // With expert biases gate/up would bind 9 storage buffers, one more than the default limit.
      renderGemmKernel({ gateup: true, grouped: true, bias: false, weighted: false, kdim: 72, ndim: 40, topK: 2, activation: SWIGLU, shards: 2, extras: true, act }),
      renderGemmKernel({ gateup: false, grouped: true, bias: true, weighted: true, kdim: 40, ndim: 72, topK: 2, shards: 1, extras: true, act }),
      renderCombineKernel({ hidden: 72, topK: 4, shared: true, sharedGate: true, extras: 960, act }),
      renderCombineKernel({ hidden: 72, topK: 4, shared: false, sharedGate: false, extras: 2000, act }),
    ];
    for (const k of kernels) await createComputePipelineChecked(rt.device, k.name, k.wgsl, k.entryPoint);
  });
});
