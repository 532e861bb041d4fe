// The fused decode path of an MoE block in 3 dispatches: the router kernel, then decode gate/up
// (routed slots and the shared expert) and decode down + combine, run directly on WebGPU by a
// small harness. Each run is checked two ways against the CPU reference interpreter:
//   - kernels: the reference's moe.experts (and shared expert, gate, add) fed the GPU router's own
//     ids and weights, so routing near-ties cannot blur the check of the two new kernels;
//   - end to end: the whole reference block, tokens whose routing is a genuine near-tie excluded.
// Every router family of moe-fixtures at 1, 3, 7 and 8 tokens with f32 weights; quantized and
// 16-bit expert weights; extra blocks for the shared-expert corners (own activation, bias, scalar
// loads); f16 activations where the adapter has shader-f16. Scratch and output poisoned (NaN).
// Both kernels fit WebGPU's default 8 storage buffers per stage (the intermediates in one binding,
// `inter`); qwen2-moe also runs on a device opened with the default limits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECODE_PASS_WIDTHS, decodeInterWidth, type DecodeBlockShape, type DecodeMlpShape } from '../../codegen/kernels/decode-block-shape.js';
import { decodeDownCombineGrid, renderDecodeDownCombineKernel } from '../../codegen/kernels/decode-down-combine/decode-down-combine.js';
import { decodeGateUpGrid, renderDecodeGateUpKernel } from '../../codegen/kernels/decode-gate-up/decode-gate-up.js';
import { GEMV_MAX_ROWS } from '../../codegen/kernels/expert-gemv/expert-gemv.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { renderRouterKernel, routerTokensPerWorkgroup, type RouterKernelShape } from '../../codegen/kernels/router/router.js';
import type { Graph, Op, Value } from '../../ir/graph.js';
import { boolParam, numParam, type KindRef, type ModelConfig } from '../../ir/model-config.js';
import { opDefinitions } from '../../ir/ops.js';
import { weightFormatOf } from '../../ir/storage-format.js';
import { poison, POISON_BITS, POISON_BITS_F16, readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import type { MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { packWeight } from '../../runtime/quant/weight-codec.js';
import { blockGraphOf, dequantizedWeights, families, type Family, normals, randomWeights, reference, referenceWithRoutes, relativeError, seededRandom } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`decode-fused: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const TOKEN_COUNTS = [1, 3, 7, 8];
const F32_TOLERANCE = 1e-5;
// f16 keeps 11 significant bits (rounding <= 4.9e-4 relative); three roundings in a row stay well under this.
const F16_TOLERANCE = 5e-3;

interface Case {
  family: Family;
  /** Extra compile lines (quantize ...). */
  compile?: string;
  act: 'f32' | 'f16';
}

const family = (name: string): Family => families.find((f) => f.name === name)!;
/** Shared-expert corners no fixture family has: its own activation kind, biases, scalar loads beside vec4 ones. */
const sharedCorners: Family[] = [
  {
    name: 'gpt-oss+shared',
    moe: 'experts = 8\n top_k = 4\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 60, limit = 7, alpha = 1.702, bias = true)\n shared = swiglu(intermediate = 90)\n shared_gate = sigmoid',
  },
  {
    name: 'shared-bias',
    hidden: 70,
    moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 48)\n shared = clamped_swiglu(intermediate = 64, limit = 7, alpha = 1.702, bias = true)',
  },
];
/** Widths divisible by 32, the group real checkpoints use. */
const wide: Family = {
  name: 'qwen2-moe-96',
  hidden: 96,
  moe: 'experts = 12\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 96)\n shared = swiglu(intermediate = 192)\n shared_gate = sigmoid',
};
/** The shared row of `inter` starts off a 16-byte boundary (K*I = 126) although Is % 4 == 0: scalar inter reads, vec4 shared weights. */
const sharedAfterOddSlots: Family = {
  name: 'shared-after-odd',
  moe: 'experts = 8\n top_k = 3\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 42)\n shared = swiglu(intermediate = 64)\n shared_gate = sigmoid',
};
const gptOss96: Family = { name: 'gpt-oss-96', hidden: 96, moe: 'experts = 8\n top_k = 4\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 96, limit = 7, alpha = 1.702, bias = true)' };

const cases: Case[] = [
  ...families.map((f): Case => ({ family: f, act: 'f32' })),
  ...sharedCorners.map((f): Case => ({ family: f, act: 'f32' })),
  { family: sharedAfterOddSlots, act: 'f32' },
  { family: family('mixtral'), compile: 'quantize experts = int4(group = 8)', act: 'f32' },
  { family: family('mixtral'), compile: 'quantize experts = mxfp4(group = 8)', act: 'f32' },
  { family: family('qwen2-moe'), compile: 'quantize experts = int4(group = 8)\n quantize shared = int8(group = 4)', act: 'f32' },
  { family: family('gpt-oss'), compile: 'quantize experts = mxfp4(group = 12)', act: 'f32' },
  { family: wide, compile: 'quantize experts = int4(group = 32)\n quantize shared = int4(group = 32)', act: 'f32' },
  { family: gptOss96, compile: 'quantize experts = mxfp4(group = 32)', act: 'f32' },
  { family: family('deepseek-v2'), compile: 'quantize experts = int8(group = 9)\n quantize shared = f16', act: 'f32' },
  { family: family('olmoe'), compile: 'quantize experts = bf16', act: 'f32' },
  { family: family('relu-gate'), compile: 'quantize experts = f16', act: 'f32' },
  ...[...families, ...sharedCorners].map((f): Case => ({ family: f, act: 'f16' })),
  { family: wide, compile: 'quantize experts = int4(group = 32)', act: 'f16' },
];

/** What the three dispatches need from the model-level block graph: kernel shapes, and the param behind each weight binding. */
interface DecodeBlock {
  shape: DecodeBlockShape;
  router: RouterKernelShape;
  experts: number;
  /** Uploaded packed in the param's storage format (expert and shared-expert matrices, biases). */
  packed: Map<string, Value>;
  /** Read as dequantized f32, as a plan uploads them (router, shared-expert gate). */
  dequantized: Map<string, Value>;
}

function readDecodeBlock(graph: Graph, config: ModelConfig): DecodeBlock {
  const op = (opcode: string): Op | undefined => graph.ops.find((o) => o.opcode === opcode);
  const inputs = (o: Op): Record<string, Value> => Object.fromEntries(opDefinitions[o.opcode]!.inputNames(o.attrs).map((n, i) => [n, o.inputs[i]!]));
  const packed = new Map<string, Value>();
  const dequantized = new Map<string, Value>();
  const mlp = (o: Op, w: string, b: string): DecodeMlpShape => {
    const activation = o.attrs['activation'] as KindRef;
    const i = inputs(o);
    const bias = boolParam(activation, 'bias');
    for (const part of ['gate', 'up', 'down']) {
      packed.set(`${w}_${part}`, i[part]!);
      if (bias) packed.set(`${b}_${part}`, i[`${part}_bias`]!);
    }
    return { intermediate: numParam(activation, 'intermediate'), activation, bias, weights: weightFormatOf(i['gate']!) };
  };
  const route = op('moe.route')!;
  const routeIn = inputs(route);
  dequantized.set('router_weight', routeIn['weight']!);
  if (routeIn['bias']) dequantized.set('router_bias', routeIn['bias']);
  if (routeIn['correction_bias']) dequantized.set('correction_bias', routeIn['correction_bias']);
  const shared = op('mlp');
  const gate = op('sigmoid_gate');
  if (gate) dequantized.set('shared_gate_weight', inputs(gate)['weight']!);
  const act = config.compile.dtype;
  const hidden = config.hidden;
  const [experts, topK] = [route.attrs['experts'] as number, route.attrs['top_k'] as number];
  const shape: DecodeBlockShape = { hidden, topK, routed: mlp(op('moe.experts')!, 'w', 'b'), ...(shared ? { shared: mlp(shared, 'ws', 'bs') } : {}), sharedGate: !!gate, act };
  const router: RouterKernelShape = { act, hidden, experts, topK, router: route.attrs['router'] as KindRef, bias: !!routeIn['bias'], correctionBias: !!routeIn['correction_bias'] };
  return { shape, router, experts, packed, dequantized };
}

interface DecodeRun {
  out: Float32Array;
  ids: Int32Array;
  routing: Float32Array;
  buffers: Map<string, GPUBuffer>;
}

/** Router -> decode gate/up -> decode down + combine for one block, with its weights on the GPU. */
class FusedDecodeBlock {
  readonly shape: DecodeBlockShape;
  readonly kernels: RenderedKernel[];
  private pipelines: GPUComputePipeline[] = [];
  private readonly weightBuffers = new Map<string, GPUBuffer>();

  constructor(private readonly rt: GpuRuntime, readonly block: DecodeBlock, raw: Map<string, Float32Array>, dequantized: Map<string, Float32Array>) {
    const { device } = rt;
    this.shape = block.shape;
    this.kernels = [renderRouterKernel(block.router), renderDecodeGateUpKernel(this.shape), renderDecodeDownCombineKernel(this.shape)];
    const usage = GPUBufferUsage.STORAGE;
    for (const [binding, p] of block.dequantized) this.weightBuffers.set(binding, uploadBytes(device, dequantized.get(p.name)!, usage, p.name));
    for (const [binding, p] of block.packed) {
      this.weightBuffers.set(binding, uploadBytes(device, packWeight(weightFormatOf(p), raw.get(p.name)!, p.type.shape as number[], p.name), usage, p.name));
    }
  }

  async compile(): Promise<void> {
    this.pipelines = await Promise.all(this.kernels.map((k) => createComputePipelineChecked(this.rt.device, k.name, k.wgsl, k.entryPoint)));
  }

  /**
   * x: [tokens, hidden], already rounded to the activation dtype. With `routes`, the router is
   * skipped: dispatches 2 and 3 read these ids and routing weights instead.
   */
  async run(x: Float32Array, tokens: number, routes?: { ids: Int32Array; routing: Float32Array }): Promise<DecodeRun> {
    const { device } = this.rt;
    const { hidden: H, topK: K } = this.shape;
    const f16 = this.shape.act === 'f16';
    const actBytes = (n: number) => Math.ceil((n * (f16 ? 2 : 4)) / 4) * 4;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const scratch = (name: string, bytes: number, act: boolean) => {
      const buffer = device.createBuffer({ label: name, size: Math.max(4, bytes), usage });
      poison(device, buffer, buffer.size, 0, act && f16 ? POISON_BITS_F16 : POISON_BITS);
      return buffer;
    };
    const xWords = f16 ? (() => { const bits = new Uint16Array(Math.ceil(x.length / 2) * 2); bits.set(float32ToFloat16Bits(x)); return bits; })() : x;
    const buffers = new Map<string, GPUBuffer>([
      ['x', uploadBytes(device, xWords, usage, 'x')],
      ['route_ids', routes ? uploadBytes(device, routes.ids, usage, 'route_ids') : scratch('route_ids', tokens * K * 4, false)],
      ['routing_weights', routes ? uploadBytes(device, routes.routing, usage, 'routing_weights') : scratch('routing_weights', tokens * K * 4, false)],
      ['inter', scratch('inter', actBytes(tokens * decodeInterWidth(this.shape)), true)],
      ['out', scratch('out', actBytes(tokens * H), true)],
    ]);
    // Params {tokens, expert_begin, expert_end, shard}: the fused kernels read only tokens (no shards).
    const uniform = uploadBytes(device, new Uint32Array([tokens, 0, 0, 0]), GPUBufferUsage.UNIFORM, 'params');
    // The router names its weights output route_weights.
    const resolve = (name: string) => (name === 'route_weights' ? buffers.get('routing_weights') : buffers.get(name) ?? this.weightBuffers.get(name));
    const grids: Array<[number, number, number]> = [
      [Math.ceil(tokens / routerTokensPerWorkgroup(this.block.experts)), 1, 1],
      decodeGateUpGrid(this.shape, tokens),
      decodeDownCombineGrid(this.shape),
    ];
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    this.kernels.forEach((kernel, i) => {
      if (routes && i === 0) return;
      const entries: GPUBindGroupEntry[] = kernel.bindings.map((b) => {
        const buffer = resolve(b.name);
        if (!buffer) throw new Error(`${kernel.name}: nothing to bind to ${b.name}`);
        return { binding: b.binding, resource: { buffer } };
      });
      entries.push({ binding: kernel.uniformBinding, resource: { buffer: uniform } });
      pass.setPipeline(this.pipelines[i]!);
      pass.setBindGroup(0, device.createBindGroup({ layout: this.pipelines[i]!.getBindGroupLayout(0), entries }));
      pass.dispatchWorkgroups(...grids[i]!);
    });
    pass.end();
    device.queue.submit([encoder.finish()]);
    const outBytes = await readBackBytes(device, buffers.get('out')!, actBytes(tokens * H));
    const out = f16 ? float16BitsToFloat32(new Uint16Array(outBytes, 0, tokens * H)) : new Float32Array(outBytes);
    const ids = new Int32Array(await readBackBytes(device, buffers.get('route_ids')!, tokens * K * 4));
    const routing = new Float32Array(await readBackBytes(device, buffers.get('routing_weights')!, tokens * K * 4));
    await this.rt.settle();
    uniform.destroy();
    return { out, ids, routing, buffers };
  }

  destroy(): void {
    for (const buffer of this.weightBuffers.values()) buffer.destroy();
  }
}

let rt: GpuRuntime;
const results: string[] = [];

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});

afterAll(() => {
  console.log([`${'block'.padEnd(20)} ${'weights'.padEnd(52)} act  tokens  kernels    end to end  near-ties`, ...results].join('\n'));
  rt?.destroy();
});

cases.forEach(({ family: fam, compile, act }, index) => {
  const compileBlock = ['target = webgpu', `dtype = ${act}`, ...(compile ? [compile] : [])].join('\n ');
  const label = compile?.replace(/quantize /g, '').replace(/\n /g, ', ') ?? 'experts = f32';
  describe(`${fam.name}, ${label}, ${act} activations`, () => {
    const { config, graph } = blockGraphOf(fam, compileBlock);
    let block: FusedDecodeBlock | undefined;
    let dequantized: Map<string, Float32Array>;
    let random: () => number;

    beforeAll(async () => {
      if (act === 'f16' && !rt.features.has('shader-f16')) return;
      random = seededRandom(seed + 1_000_003 * index);
      const weights = randomWeights(graph, random);
      dequantized = dequantizedWeights(graph, weights);
      block = new FusedDecodeBlock(rt, readDecodeBlock(graph, config), weights, dequantized);
      await block.compile();
    });
    afterAll(() => block?.destroy());

    for (const tokens of TOKEN_COUNTS) {
      it(`${tokens} token${tokens > 1 ? 's' : ''} in 3 dispatches match the reference`, async (ctx) => {
        if (!block) return ctx.skip('this adapter has no shader-f16');
        await expectRunMatchesReference(rt, block, graph, dequantized, random, tokens, `${fam.name.padEnd(20)} ${label.padEnd(52)} ${act}`);
      });
    }
  });
});

/**
 * One run of `tokens` fresh random tokens against the reference, two ways (the GPU router's routes,
 * and end to end); at the largest token count a second run must give the same bits.
 */
async function expectRunMatchesReference(rt: GpuRuntime, block: FusedDecodeBlock, graph: Graph, dequantized: Map<string, Float32Array>, random: () => number, tokens: number, row: string): Promise<void> {
  const H = block.shape.hidden;
  const act = block.shape.act ?? 'f32';
  const raw = normals(random, tokens * H, 1);
  const x = act === 'f16' ? float16BitsToFloat32(float32ToFloat16Bits(raw)) : raw;
  const run = await block.run(x, tokens);
  try {
    expect(run.out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
    const kernels = relativeError(run.out, referenceWithRoutes(graph, x, tokens, run.ids, run.routing, dequantized), H);
    // End to end: the CPU routes too; a token may differ only on a genuine near-tie.
    const executorView = { scratchBuffer: (name: string) => run.buffers.get(name)! } as unknown as MoeBlockExecutor;
    const routing = await checkRouting(rt.device, executorView, graph, x, tokens, dequantized);
    expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
    const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
    const endToEnd = relativeError(run.out, reference(graph, x, tokens, dequantized), H, kept);
    results.push(`${row}  ${String(tokens).padStart(6)}  ${kernels.toExponential(2).padStart(9)}  ${endToEnd.toExponential(2).padStart(9)}  ${routing.excluded.length}`);
    const tolerance = act === 'f16' ? F16_TOLERANCE : F32_TOLERANCE;
    expect(kernels).toBeLessThan(tolerance);
    expect(endToEnd).toBeLessThan(tolerance);
    if (tokens === TOKEN_COUNTS[TOKEN_COUNTS.length - 1]) {
      // Fixed summation order, no atomics: a second run gives the same bits.
      const again = await block.run(x, tokens);
      for (const buffer of again.buffers.values()) buffer.destroy();
      expect(new Uint32Array(again.out.buffer)).toEqual(new Uint32Array(run.out.buffer));
    }
  } finally {
    for (const buffer of run.buffers.values()) buffer.destroy();
  }
}

describe("under WebGPU's default limits (8 storage buffers per shader stage)", () => {
  // qwen2-moe: shared expert with a sigmoid gate, the block whose down + combine needs all 8.
  const fam = family('qwen2-moe');
  const { config, graph } = blockGraphOf(fam);
  let limited: GpuRuntime;
  let block: FusedDecodeBlock;
  let dequantized: Map<string, Float32Array>;
  let random: () => number;

  beforeAll(async () => {
    limited = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
    random = seededRandom(seed + 7_777_777);
    const weights = randomWeights(graph, random);
    dequantized = dequantizedWeights(graph, weights);
    block = new FusedDecodeBlock(limited, readDecodeBlock(graph, config), weights, dequantized);
    await block.compile();
  });
  afterAll(() => {
    block?.destroy();
    limited?.destroy();
  });

  for (const tokens of TOKEN_COUNTS) {
    it(`${fam.name}: ${tokens} token${tokens > 1 ? 's' : ''} in 3 dispatches match the reference`, async () => {
      expect(limited.limits.maxStorageBuffersPerShaderStage).toBe(DEFAULT_LIMITS.maxStorageBuffersPerShaderStage);
      await expectRunMatchesReference(limited, block, graph, dequantized, random, tokens, `${`${fam.name}`.padEnd(20)} ${'experts = f32, default limits'.padEnd(52)} f32`);
    });
  }
});

/**
 * Routes the router rarely draws, written straight into route_ids (dispatches 2 and 3 only): every
 * token on the same experts (one pass of T rows per expert; each token's k order rotated), every
 * slot on its own expert (as far as E allows), empty slots (-1), and every token listing one expert
 * at all its k (T * K slots of one expert: more than one pass of MAX_ROWS).
 */
const ROUTE_PATTERNS = ['shared', 'distinct', 'empty', 'repeated'] as const;

function forcedRoutes(pattern: (typeof ROUTE_PATTERNS)[number], tokens: number, K: number, E: number, random: () => number): { ids: Int32Array; routing: Float32Array } {
  const ids = Int32Array.from({ length: tokens * K }, (_, slot) => {
    const t = Math.floor(slot / K);
    const k = slot % K;
    // 5 is prime to every fixture's E: distinct experts for the first E slots.
    const spread = (slot * 5 + 3) % E;
    if (pattern === 'shared') return (t + k) % K;
    if (pattern === 'distinct') return spread;
    if (pattern === 'empty') return slot % 3 === 1 ? -1 : spread;
    return E - 1;
  });
  return { ids, routing: Float32Array.from({ length: tokens * K }, () => 0.1 + random()) };
}

describe('forced routes: tokens sharing experts, all on distinct experts, empty slots, an expert listed twice', () => {
  const forcedCases: Case[] = [
    { family: family('mixtral'), act: 'f32' },
    { family: family('qwen2-moe'), act: 'f32' },
    { family: family('relu-gate'), compile: 'quantize experts = f16', act: 'f32' },
    { family: family('gpt-oss'), compile: 'quantize experts = mxfp4(group = 12)', act: 'f32' },
    { family: wide, compile: 'quantize experts = int4(group = 32)\n quantize shared = int4(group = 32)', act: 'f32' },
    { family: sharedAfterOddSlots, act: 'f32' },
  ];
  forcedCases.forEach(({ family: fam, compile }, index) => {
    const label = compile?.replace(/quantize /g, '').replace(/\n /g, ', ') ?? 'experts = f32';
    describe(`${fam.name}, ${label}`, () => {
      const { config, graph } = blockGraphOf(fam, ['target = webgpu', 'dtype = f32', ...(compile ? [compile] : [])].join('\n '));
      let block: FusedDecodeBlock;
      let dequantized: Map<string, Float32Array>;
      let random: () => number;
      beforeAll(async () => {
        random = seededRandom(seed + 3_000_017 * (index + 1));
        const weights = randomWeights(graph, random);
        dequantized = dequantizedWeights(graph, weights);
        block = new FusedDecodeBlock(rt, readDecodeBlock(graph, config), weights, dequantized);
        await block.compile();
      });
      afterAll(() => block?.destroy());

      for (const tokens of [2, 3, 4, 5, 6, 7, 8]) {
        it(`${tokens} tokens match the reference fed the same routes`, async () => {
          const H = block.shape.hidden;
          for (const pattern of ROUTE_PATTERNS) {
            const x = normals(random, tokens * H, 1);
            const routes = forcedRoutes(pattern, tokens, block.shape.topK, block.block.experts, random);
            const run = await block.run(x, tokens, routes);
            for (const buffer of run.buffers.values()) buffer.destroy();
            expect(run.out.every(Number.isFinite), `${pattern}: an output is NaN: some element was never written`).toBe(true);
            const error = relativeError(run.out, referenceWithRoutes(graph, x, tokens, routes.ids, routes.routing, dequantized), H);
            expect(error, pattern).toBeLessThan(F32_TOLERANCE);
          }
        });
      }
    });
  });
});

describe('the kernels', () => {
  it('fit three dispatches with a shared expert: grids and bindings', () => {
    const { config, graph } = blockGraphOf(family('qwen2-moe'));
    const { shape } = readDecodeBlock(graph, config);
    expect(decodeGateUpGrid(shape, 5)).toEqual([Math.ceil(100 / 32), 4 + 1, 5]);
    expect(decodeDownCombineGrid(shape)).toEqual([Math.ceil(72 / 32), 1, 1]);
    expect(decodeInterWidth(shape)).toBe(4 * 56 + 100);
    expect(renderDecodeGateUpKernel(shape).bindings.map((b) => b.name)).toEqual(['x', 'route_ids', 'w_gate', 'w_up', 'ws_gate', 'ws_up', 'inter']);
    expect(renderDecodeDownCombineKernel(shape).bindings.map((b) => b.name)).toEqual(['route_ids', 'routing_weights', 'inter', 'w_down', 'ws_down', 'x', 'shared_gate_weight', 'out']);
  });

  it("fit WebGPU's default 8 storage buffers per stage unless expert biases add bindings", () => {
    for (const fam of [...families, ...sharedCorners, sharedAfterOddSlots, wide, gptOss96]) {
      const { config, graph } = blockGraphOf(fam);
      const { shape } = readDecodeBlock(graph, config);
      const biased = shape.routed.bias || !!shape.shared?.bias;
      for (const kernel of [renderDecodeGateUpKernel(shape), renderDecodeDownCombineKernel(shape)]) {
        const storage = kernel.bindings.length;
        const biases = kernel.bindings.filter((b) => /^bs?_/.test(b.name)).length;
        expect(storage - biases, `${fam.name}: ${kernel.name}`).toBeLessThanOrEqual(DEFAULT_LIMITS.maxStorageBuffersPerShaderStage);
        if (!biased) expect(storage, `${fam.name}: ${kernel.name}`).toBeLessThanOrEqual(DEFAULT_LIMITS.maxStorageBuffersPerShaderStage);
      }
    }
  });

  it('read inter 4 elements at a time only where every row start is 16-byte aligned', () => {
    const interType = (fam: Family) => {
      const { config, graph } = blockGraphOf(fam);
      return renderDecodeDownCombineKernel(readDecodeBlock(graph, config).shape).bindings.find((b) => b.name === 'inter')!.type;
    };
    expect(interType(family('qwen2-moe'))).toBe('array<vec4<f32>>'); // I = 56, Is = 100
    expect(interType(sharedAfterOddSlots)).toBe('array<f32>'); // K*I = 126: token 0's shared row starts at element 126
    expect(interType(sharedCorners[0]!)).toBe('array<f32>'); // I = 60, Is = 90
  });

  it('refuse a top_k whose terms overflow private memory', () => {
    const { config, graph } = blockGraphOf(family('mixtral'));
    const shape = readDecodeBlock(graph, config).shape;
    expect(() => renderDecodeDownCombineKernel({ ...shape, topK: 40 })).not.toThrow();
    expect(() => renderDecodeDownCombineKernel({ ...shape, topK: 300 })).toThrow(/top_k = 300 is too large/);
  });

  it('use no workgroup memory and no barrier, but for the shared-expert gate', () => {
    const shapeOf = (name: string) => {
      const { config, graph } = blockGraphOf(family(name));
      return readDecodeBlock(graph, config).shape;
    };
    const gated = shapeOf('qwen2-moe');
    for (const kernel of [renderDecodeGateUpKernel(gated), renderDecodeDownCombineKernel(shapeOf('mixtral')), renderDecodeDownCombineKernel(shapeOf('deepseek-v2'))]) {
      expect(kernel.wgsl, kernel.name).not.toMatch(/var<workgroup>|workgroupBarrier/);
    }
    expect(renderDecodeDownCombineKernel(gated).wgsl).toMatch(/var<workgroup> gate_partial/);
  });

  // lavapipe compiles a shader with LLVM at its first dispatch: a body per row count (36 row copies
  // per MLP) took it minutes, which the Mesa shader cache hid on later runs. One body per pass width
  // (1 + 2 + 4 + 8 rows) is what SwiftShader needs (it runs every branch) and lavapipe compiles in seconds.
  it('hold one copy of a row\'s dot product per row of each pass width, not one per row count', () => {
    const { config, graph } = blockGraphOf(family('qwen2-moe'));
    const { shape } = readDecodeBlock(graph, config);
    const updates = (wgsl: string, acc: string) => wgsl.match(new RegExp(`\\b${acc}\\d \\+=`, 'g'))?.length ?? 0;
    const rowsPerMlp = DECODE_PASS_WIDTHS.reduce((n, w) => n + w, 0);
    expect(DECODE_PASS_WIDTHS.at(-1)).toBe(GEMV_MAX_ROWS);
    // Routed and shared MLP.
    expect(updates(renderDecodeGateUpKernel(shape).wgsl, 'g')).toBe(2 * rowsPerMlp);
    expect(updates(renderDecodeDownCombineKernel(shape).wgsl, 's')).toBe(2 * rowsPerMlp);
  });

  it('test the row count outside the loops over weight rows (SwiftShader runs every branch, masked)', () => {
    const { config, graph } = blockGraphOf(family('qwen2-moe'));
    const { shape } = readDecodeBlock(graph, config);
    for (const kernel of [renderDecodeGateUpKernel(shape), renderDecodeDownCombineKernel(shape)]) {
      // Loops over a weight row (they decode weights through <name>_at / _at4).
      const loops = kernel.wgsl.split(/\n\s*for \(var k = 0u;/).slice(1).map((rest) => rest.slice(0, rest.indexOf('\n    }'))).filter((body) => /_at4?\(/.test(body));
      expect(loops.length, kernel.name).toBe(2 * DECODE_PASS_WIDTHS.length);
      for (const body of loops) expect(body, kernel.name).not.toMatch(/rows\.count/);
    }
  });
});
