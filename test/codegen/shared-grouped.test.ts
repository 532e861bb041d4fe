// The shared expert folded into the grouped GEMMs as expert E: prefill in 5 dispatches (router,
// route-align, grouped gate/up, grouped down, combine) instead of 7, run directly on WebGPU under
// the default limits (8 storage buffers per stage) by test/codegen/shared-prefill.ts, buffers
// poisoned. Each run is checked against the CPU reference of the block (moe-fixtures) two ways:
// fed the GPU router's ids and weights, and end to end (tokens whose routing is a genuine near-tie
// left out, route-check.ts). Blocks: Is == I, Is != I and no multiple of anything, shared formats
// other than the experts' (int8 / f32 / f16 / bf16 beside int4 / int8 / mxfp4), with and without
// the sigmoid gate, scalar and vec4 loads; E in 8, 16 x K in 2, 4 x T in 9, 64, 300; two blocks
// again with f16 activations where the adapter has shader-f16. Token
// rounding with the shared expert: down and combine fold it in with X > 0; gate/up refuses.
// With every new option off the kernels are the ones before it (no new binding or name).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCombineKernel } from '../../codegen/kernels/combine/combine.js';
import { renderGemmKernel } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { renderRouteAlignKernel, routeMetaWords, sortedSlotRows } from '../../codegen/kernels/route-align/route-align.js';
import type { Graph, Op, Value } from '../../ir/graph.js';
import { dot, silu } from '../../ir/interpret/math.js';
import { downRow, expertSlice, gateUpRow } from '../../ir/interpret/mlp.js';
import { relativeError as relativeErrorOf } from '../../ir/interpret/relative-error.js';
import { mixRoundedExperts } from '../../ir/interpret/token-rounding.js';
import type { KindRef } from '../../ir/model-config.js';
import { inputsByName } from '../../ir/ops.js';
import { weightFormatOf } from '../../ir/storage-format.js';
import { createComputePipelineChecked, DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import type { MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { packWeight } from '../../runtime/quant/weight-codec.js';
import { blockGraphOf, dequantizedWeights, type Family, normals, randomWeights, reference, referenceWithRoutes, relativeError, seededRandom } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';
import { BLOCK_ROWS, SharedPrefillBlock, type SharedBlockShape, type SharedRun } from './shared-prefill.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`shared-grouped: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const TOLERANCE = 1e-5;
// f16 keeps 11 significant bits (rounding <= 4.9e-4 relative); a few roundings in a row stay well under this.
const F16_TOLERANCE = 5e-3;
const TOKEN_COUNTS = [9, 64, 300];
const SWIGLU: KindRef = { kind: 'swiglu', params: { intermediate: 0, bias: false } };

interface Case {
  family: Family;
  compile?: string;
  /** What the case covers, for the results table. */
  about: string;
  act?: 'f16';
}

const cases: Case[] = [
  {
    about: 'Is == I, f32, gate, vec4',
    family: { name: 'same-size', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 48)\n shared = swiglu(intermediate = 48)\n shared_gate = sigmoid' },
  },
  {
    about: 'Is 93: down reads a vec4 binding 1 at a time',
    family: { name: 'odd-shared', moe: 'experts = 16\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 40)\n shared = swiglu(intermediate = 93)' },
    compile: 'quantize experts = int4(group = 8)\n quantize shared = int8(group = 3)',
  },
  {
    about: 'qwen2-moe: Is 100 > I, gate',
    family: { name: 'qwen2-like', moe: 'experts = 16\n top_k = 2\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 56)\n shared = swiglu(intermediate = 100)\n shared_gate = sigmoid' },
    compile: 'quantize experts = int4(group = 8)',
  },
  {
    about: 'H 70, I 90 > Is 30: scalar loads, gate',
    family: { name: 'scalar', hidden: 70, moe: 'experts = 8\n top_k = 4\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 90)\n shared = swiglu(intermediate = 30)\n shared_gate = sigmoid' },
    compile: 'quantize experts = int8(group = 10)\n quantize shared = f16',
  },
  {
    about: 'deepseek-v3 router, Is 90 > 64 (2 tiles)',
    family: { name: 'mxfp4-bf16', moe: 'experts = 16\n top_k = 4\n router = sigmoid_topk(renormalize = true, groups = 4, topk_groups = 2, scale = 2.5)\n expert = swiglu(intermediate = 36)\n shared = swiglu(intermediate = 90)' },
    compile: 'quantize experts = mxfp4(group = 12)\n quantize shared = bf16',
  },
];
cases.push(...cases.filter((c) => c.family.name === 'odd-shared' || c.family.name === 'qwen2-like').map((c): Case => ({ ...c, act: 'f16' })));

/** The kernel shapes and weight buffers of one block graph (moe.route, moe.experts, mlp, sigmoid_gate). */
function readBlock(graph: Graph, raw: Map<string, Float32Array>, dequantized: Map<string, Float32Array>, act: 'f32' | 'f16'): { shape: SharedBlockShape; weights: Map<string, ArrayBufferView> } {
  const op = (opcode: string): Op | undefined => graph.ops.find((o) => o.opcode === opcode);
  const route = op('moe.route')!;
  const experts = op('moe.experts')!;
  const shared = op('mlp')!;
  const gate = op('sigmoid_gate');
  const [r, e, s] = [inputsByName(route), inputsByName(experts), inputsByName(shared)];
  const weights = new Map<string, ArrayBufferView>();
  const f32 = (binding: string, v: Value | undefined) => v && weights.set(binding, dequantized.get(v.name)!);
  const packed = (binding: string, v: Value) => weights.set(binding, packWeight(weightFormatOf(v), raw.get(v.name)!, v.type.shape as number[], v.name));
  f32('router_weight', r['weight']);
  f32('router_bias', r['bias']);
  f32('correction_bias', r['correction_bias']);
  if (gate) f32('shared_gate_weight', inputsByName(gate)['weight']);
  for (const part of ['gate', 'up', 'down']) {
    packed(`w_${part}`, e[part]!);
    packed(`ws_${part}`, s[part]!);
  }
  const router = route.attrs['router'] as KindRef;
  return {
    shape: {
      hidden: e['gate']!.type.shape[2] as number,
      intermediate: e['gate']!.type.shape[1] as number,
      sharedIntermediate: s['gate']!.type.shape[0] as number,
      experts: route.attrs['experts'] as number,
      topK: route.attrs['top_k'] as number,
      router,
      activation: experts.attrs['activation'] as KindRef,
      bias: !!r['bias'],
      correctionBias: !!r['correction_bias'],
      sharedGate: !!gate,
      expertFormat: weightFormatOf(e['gate']!),
      sharedFormat: weightFormatOf(s['gate']!),
      act,
    },
    weights,
  };
}

/** route-align's layout: the routed experts' padded blocks, then the shared expert's T rows (slots K T + X + t) in blocks of expert E. */
function expectSharedLayout(shape: SharedBlockShape, run: SharedRun, tokens: number, extras: number, where: string): void {
  const { experts: E, topK: K } = shape;
  const BM = BLOCK_ROWS;
  const counts = new Array<number>(E).fill(0);
  for (const e of run.ids) if (e >= 0) counts[e]!++;
  for (let j = 0; 2 * j < run.extraIds.length; j++) if (run.extraIds[2 * j]! >= 0) counts[run.extraIds[2 * j + 1]!]!++;
  const routedBlocks = counts.reduce((n, c) => n + Math.ceil(c / BM), 0);
  const sharedBlocks = Math.ceil(tokens / BM);
  expect(Array.from(run.dispatchArgs), `${where}: dispatch args`).toEqual([run.dispatchArgs[0], routedBlocks + sharedBlocks, 1, run.dispatchArgs[3], routedBlocks + sharedBlocks, 1]);
  expect(run.routeMeta[0], `${where}: first block`).toBe(0);
  const begin = routedBlocks * BM;
  expect(begin + sharedBlocks * BM, `${where}: rows within sorted_slots`).toBeLessThanOrEqual(run.sortedSlots.length);
  const sharedRows = Array.from(run.sortedSlots.subarray(begin, begin + sharedBlocks * BM));
  expect(sharedRows, `${where}: shared rows`).toEqual(Array.from({ length: sharedBlocks * BM }, (_, t) => (t < tokens ? K * tokens + extras + t : -1)));
  expect(Array.from(run.routeMeta.subarray(1 + routedBlocks, 1 + routedBlocks + sharedBlocks)), `${where}: shared blocks' expert`).toEqual(new Array(sharedBlocks).fill(E));
  expect(Array.from(run.routeMeta.subarray(1, 1 + routedBlocks)).every((e) => e < E), `${where}: routed blocks' experts`).toBe(true);
}

let rt: GpuRuntime;
const pipelines = new Map<string, GPUComputePipeline>();
const results: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
});
afterAll(() => {
  console.log([`${'block'.padEnd(11)} ${'covers'.padEnd(44)} ${'weights (experts / shared)'.padEnd(40)} act E   K  T    kernels   end to end  near-ties`, ...results].join('\n'));
  rt?.destroy();
});

cases.forEach(({ family, compile, about, act = 'f32' as const }, index) => {
  const label = compile?.replace(/quantize /g, '').replace(/\n /g, ', ') ?? 'f32';
  describe(`${family.name} (${about}), ${label}, ${act} activations`, () => {
    const { graph } = blockGraphOf(family, ['target = webgpu', `dtype = ${act}`, ...(compile ? [compile] : [])].join('\n '));
    let block: SharedPrefillBlock | undefined;
    let dequantized: Map<string, Float32Array>;
    let random: () => number;

    beforeAll(async () => {
      if (act === 'f16' && !rt.features.has('shader-f16')) return;
      random = seededRandom(seed + 1_000_003 * index);
      const raw = randomWeights(graph, random);
      dequantized = dequantizedWeights(graph, raw);
      const { shape, weights } = readBlock(graph, raw, dequantized, act);
      block = new SharedPrefillBlock(rt, shape, weights, pipelines);
      await block.compile();
    });
    afterAll(() => block?.destroy());

    for (const tokens of TOKEN_COUNTS) {
      it(`${tokens} tokens in 5 dispatches match the reference`, async (ctx) => {
        if (!block) return ctx.skip('this adapter has no shader-f16');
        expect(rt.limits.maxStorageBuffersPerShaderStage).toBe(DEFAULT_LIMITS.maxStorageBuffersPerShaderStage);
        const { hidden: H, experts: E, topK: K, sharedFormat, expertFormat } = block.shape;
        const raw = normals(random, tokens * H, 1);
        const x = act === 'f16' ? float16BitsToFloat32(float32ToFloat16Bits(raw)) : raw;
        const run = await block.run(x, tokens);
        try {
          const where = `${family.name}, T ${tokens}`;
          expectSharedLayout(block.shape, run, tokens, 0, where);
          expect(run.out.every(Number.isFinite), `${where}: an output is NaN (never written)`).toBe(true);
          const kernels = relativeError(run.out, referenceWithRoutes(graph, x, tokens, run.ids, run.weights, dequantized), H);
          const executorView = { scratchBuffer: (name: string) => run.buffers.get(name)! } as unknown as MoeBlockExecutor;
          const routing = await checkRouting(rt.device, executorView, graph, x, tokens, dequantized);
          expect(routing.unexplained, `${where}: routing differs from the reference without a near-tie`).toEqual([]);
          const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
          const endToEnd = relativeError(run.out, reference(graph, x, tokens, dequantized), H, kept);
          const formats = `${JSON.stringify(expertFormat)} / ${JSON.stringify(sharedFormat)}`.replace(/"/g, '');
          results.push(`${family.name.padEnd(11)} ${about.padEnd(44)} ${formats.padEnd(40)} ${act} ${String(E).padEnd(3)} ${K}  ${String(tokens).padEnd(4)} ${kernels.toExponential(2)}  ${endToEnd.toExponential(2)}   ${routing.excluded.length}`);
          const tolerance = act === 'f16' ? F16_TOLERANCE : TOLERANCE;
          expect(kernels, `${where}: vs the reference on the GPU's routes`).toBeLessThan(tolerance);
          expect(endToEnd, `${where}: end to end`).toBeLessThan(tolerance);
        } finally {
          for (const buffer of run.buffers.values()) buffer.destroy();
        }
      });
    }
  });
});

describe('token rounding with the shared expert', () => {
  it('gate/up refuses: the combination needs 9 storage buffers', () => {
    const shape = { gateup: true, grouped: true, bias: false, weighted: false, kdim: 72, ndim: 40, topK: 2, activation: SWIGLU, shards: 1, extras: true };
    expect(() => renderGemmKernel({ ...shape, shared: { ndim: 64, format: { format: 'f32' }, extras: 48 } })).toThrow(/needs 9 storage buffers per shader stage \(a, sorted_slots, route_meta, w0, w1, out, extra_ids, ws0, ws1\), more than WebGPU's default 8/);
  });

  // H 72, I 40 (vec4), Is 90 (the down GEMM reads the shared rows 1 at a time), f32 weights.
  const [H, I, Is, TILE] = [72, 40, 90, 16];
  for (const [experts, topK, mode] of [[8, 2, 'up'], [16, 4, 'nearest']] as const) {
    it(`E ${experts}, K ${topK}, ${mode}: down and combine fold the shared expert in after the X extra slots`, async () => {
      const random = seededRandom(seed + 77 * experts + topK);
      const shape: SharedBlockShape = {
        hidden: H, intermediate: I, sharedIntermediate: Is, experts, topK, router: { kind: 'softmax_topk', params: { renormalize: true, groups: 1, topk_groups: 1, scale: 1, null_experts: 0, bias: false } },
        activation: SWIGLU, bias: false, correctionBias: false, sharedGate: true, expertFormat: { format: 'f32' }, sharedFormat: { format: 'f32' }, rounding: { mode, tile: TILE },
      };
      const w = {
        router: normals(random, experts * H, 2 / Math.sqrt(H)),
        gate: normals(random, experts * I * H, 1 / Math.sqrt(H)), up: normals(random, experts * I * H, 1 / Math.sqrt(H)), down: normals(random, experts * H * I, 1 / Math.sqrt(I)),
        sharedGate: normals(random, Is * H, 1 / Math.sqrt(H)), sharedUp: normals(random, Is * H, 1 / Math.sqrt(H)), sharedDown: normals(random, H * Is, 1 / Math.sqrt(Is)),
        gateWeight: normals(random, H, 1 / Math.sqrt(H)),
      };
      const block = new SharedPrefillBlock(rt, shape, new Map<string, ArrayBufferView>([
        ['router_weight', w.router], ['w_gate', w.gate], ['w_up', w.up], ['w_down', w.down],
        ['ws_gate', w.sharedGate], ['ws_up', w.sharedUp], ['ws_down', w.sharedDown], ['shared_gate_weight', w.gateWeight],
      ]), pipelines);
      expect(block.extras).toBeGreaterThan(0);
      expect(block.kernels.down!.bindings.map((b) => b.name)).toEqual(['a', 'sorted_slots', 'route_meta', 'w0', 'routing_weights', 'out', 'extra_weights', 'ws0']);
      expect(block.kernels.combine!.bindings.map((b) => b.name)).toEqual(['route_ids', 'slot_out', 'x', 'shared_gate_weight', 'out', 'extra_ids']);
      try {
        await block.compile();
        for (const tokens of [9, 100, 300]) {
          const x = normals(random, tokens * H, 1);
          const run = await block.run(x, tokens);
          try {
            const where = `E ${experts}, K ${topK}, ${mode}, T ${tokens}`;
            expectSharedLayout(shape, run, tokens, block.extras, where);
            const added = Array.from({ length: block.extras }, (_, j) => run.extraIds[2 * j]!).filter((t) => t >= 0).length;
            expect(run.out.every(Number.isFinite), `${where}: an output is NaN (never written)`).toBe(true);
            // float64 experts and shared expert on the GPU's rounded routing (intermediates stored as f32, as the GEMMs store them).
            const act = (g: number, u: number) => silu(g) * u;
            const all = { gate: w.gate, up: w.up, down: w.down };
            const expert = (t: number, e: number) => { const mine = expertSlice(all, e, H, I); return downRow(gateUpRow(x, t * H, H, I, mine, act), 0, H, I, mine); };
            const expected = mixRoundedExperts(run, { tokens, topK, hidden: H }, expert);
            const sharedW = { gate: w.sharedGate, up: w.sharedUp, down: w.sharedDown };
            for (let t = 0; t < tokens; t++) {
              const gate = 1 / (1 + Math.exp(-dot(x, t * H, w.gateWeight, 0, H)));
              const y = downRow(gateUpRow(x, t * H, H, Is, sharedW, act), 0, H, Is, sharedW);
              for (let h = 0; h < H; h++) expected[t * H + h]! += gate * y[h]!;
            }
            const error = relativeErrorOf(run.out, expected);
            results.push(`${'rounding'.padEnd(11)} ${`${mode}, X ${block.extras}, ${added} pairs added`.padEnd(44)} ${'f32 / f32'.padEnd(40)} f32 ${String(experts).padEnd(3)} ${topK}  ${String(tokens).padEnd(4)} ${error.toExponential(2)}  -          -`);
            expect(error, `${where}: ||out - ref|| / ||ref||`).toBeLessThan(TOLERANCE);
          } finally {
            for (const buffer of run.buffers.values()) buffer.destroy();
          }
        }
      } finally {
        block.destroy();
      }
    });
  }
});

describe('the kernels', () => {
  const names = (k: RenderedKernel) => k.bindings.map((b) => b.name);
  const gateUp = { gateup: true, grouped: true, bias: false, weighted: false, kdim: 72, ndim: 40, topK: 2, activation: SWIGLU, shards: 1 };
  const down = { gateup: false, grouped: true, bias: false, weighted: true, kdim: 40, ndim: 72, topK: 2, shards: 1 };
  const align = { experts: 16, topK: 2, blockRows: 16, shardBegins: [0], gateUpTiles: 2, downTiles: 2 };

  it('with every new option off mention none of it; on, the new bindings come after the existing ones', () => {
    const newText = /ws0|ws1|shared_expert_block|shared_slot0|shared_row|expert_end \* |SHARED_BASE|Shared expert/;
    const expectAdded = (off: RenderedKernel, on: RenderedKernel, added: string[]) => {
      expect(off.wgsl).not.toMatch(newText);
      expect(names(on)).toEqual([...names(off), ...added]);
      expect(on.bindings.slice(0, off.bindings.length)).toEqual(off.bindings);
      expect(on.uniformBinding).toBe(off.uniformBinding + added.length);
    };
    expectAdded(renderRouteAlignKernel(align), renderRouteAlignKernel({ ...align, sharedExpert: true }), []);
    expectAdded(renderRouteAlignKernel({ ...align, extras: 240 }), renderRouteAlignKernel({ ...align, extras: 240, sharedExpert: true }), []);
    expectAdded(renderGemmKernel(gateUp), renderGemmKernel({ ...gateUp, shared: { ndim: 90, format: { format: 'int8', group: 4 } } }), ['ws0', 'ws1']);
    expectAdded(renderGemmKernel(down), renderGemmKernel({ ...down, shared: { kdim: 90, format: { format: 'f32' } } }), ['ws0']);
    expectAdded(renderGemmKernel({ ...down, extras: true }), renderGemmKernel({ ...down, extras: true, shared: { kdim: 90, format: { format: 'f32' }, extras: 240 } }), ['ws0']);
    expect(renderRouteAlignKernel({ ...align, sharedExpert: false }).wgsl).toBe(renderRouteAlignKernel(align).wgsl);
    for (const sharedGate of [false, true]) {
      const combine = { hidden: 72, topK: 4, shared: true, sharedGate };
      const off = renderCombineKernel(combine);
      const on = renderCombineKernel({ ...combine, sharedInSlots: true });
      expect(off.wgsl).not.toMatch(newText);
      expect(renderCombineKernel({ ...combine, sharedInSlots: false }).wgsl).toBe(off.wgsl);
      expect(names(on)).toEqual(names(off).filter((n) => n !== 'shared_out'));
      expect(on.wgsl).not.toMatch(/shared_out/);
    }
  });

  it('fit 8 storage buffers, sized as the header says', () => {
    expect(names(renderGemmKernel({ ...gateUp, shared: { ndim: 90, format: { format: 'f32' } } }))).toEqual(['a', 'sorted_slots', 'route_meta', 'w0', 'w1', 'out', 'ws0', 'ws1']);
    expect(names(renderGemmKernel({ ...down, shared: { kdim: 90, format: { format: 'f32' } } }))).toEqual(['a', 'sorted_slots', 'route_meta', 'w0', 'routing_weights', 'out', 'ws0']);
    expect(names(renderGemmKernel({ ...down, bias: true, shared: { kdim: 90, format: { format: 'f32' } } }))).toEqual(['a', 'sorted_slots', 'route_meta', 'w0', 'b0', 'routing_weights', 'out', 'ws0']);
    expect(() => renderGemmKernel({ ...gateUp, bias: true, shared: { ndim: 90, format: { format: 'f32' } } })).toThrow(/needs 10 storage buffers/);
    expect(() => renderGemmKernel({ ...down, bias: true, extras: true, shared: { kdim: 90, format: { format: 'f32' }, extras: 240 } })).toThrow(/needs 9 storage buffers/);
    const [T, K, E, BM, X] = [300, 2, 16, 16, 240];
    expect(sortedSlotRows({ ...align, sharedExpert: true }, T)).toBe(K * T + E * (BM - 1) + T + BM - 1);
    expect(sortedSlotRows({ ...align, extras: X, sharedExpert: true }, T)).toBe(K * T + X + E * (BM - 1) + T + BM - 1);
    expect(routeMetaWords({ ...align, extras: X, sharedExpert: true }, T)).toBe(Math.ceil((K * T + X + E * (BM - 1) + T + BM - 1 + BM) / BM));
  });

  it('refuse what they cannot do', () => {
    expect(() => renderRouteAlignKernel({ ...align, shardBegins: [0, 8], sharedExpert: true })).toThrow(/one weight shard only, not 2/);
    expect(() => renderGemmKernel({ ...gateUp, shared: { ndim: 90, format: { format: 'f32' }, bias: true } })).toThrow(/no biases/);
    expect(() => renderGemmKernel({ ...gateUp, shared: { kdim: 90, format: { format: 'f32' } } })).toThrow(/needs ndim/);
    expect(() => renderGemmKernel({ ...down, shared: { ndim: 90, format: { format: 'f32' } } })).toThrow(/needs kdim/);
    expect(() => renderGemmKernel({ ...down, shards: 2, shared: { kdim: 90, format: { format: 'f32' } } })).toThrow(/one weight shard only, not 2/);
    expect(() => renderGemmKernel({ ...down, weighted: false, shared: { kdim: 90, format: { format: 'f32' } } })).toThrow(/grouped gate\/up or weighted down/);
    expect(() => renderGemmKernel({ ...down, extras: true, shared: { kdim: 90, format: { format: 'f32' } } })).toThrow(/needs extras \(X\)/);
    expect(() => renderCombineKernel({ hidden: 72, topK: 2, shared: false, sharedGate: false, sharedInSlots: true })).toThrow(/needs a shared expert/);
  });

  it('compile with f16 activations too', async (ctx) => {
    if (!rt.features.has('shader-f16')) return ctx.skip('this adapter has no shader-f16');
    const act = 'f16' as const;
    const kernels = [
      renderGemmKernel({ ...gateUp, act, weights: { format: 'int4', group: 8 }, shared: { ndim: 90, format: { format: 'int8', group: 3 } } }),
      renderGemmKernel({ ...down, act, shared: { kdim: 90, format: { format: 'bf16' } } }),
      renderGemmKernel({ ...down, act, shared: { kdim: 64, format: { format: 'f16' } } }),
      renderCombineKernel({ hidden: 72, topK: 4, shared: true, sharedGate: true, sharedInSlots: true, extras: 240, act }),
    ];
    for (const k of kernels) await createComputePipelineChecked(rt.device, k.name, k.wgsl, k.entryPoint);
  });
});
