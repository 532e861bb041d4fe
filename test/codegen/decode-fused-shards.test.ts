// The two fused decode kernels over routed experts split in 2 weight shards (`routedShards`): the
// matrices of experts [0, s1) in w_gate/w_up/w_down, of [s1, E) in w_gate1/w_up1/w_down1, as a block
// too big for WebGPU's default 128 MiB binding comes. Router -> gate/up -> down + combine on
// WebGPU, checked as decode-fused.test.ts checks the one-binding kernels: against the CPU reference
// fed the GPU router's routes, and end to end (near-tie tokens excluded); outputs poisoned (NaN).
// Mixtral- and OLMoE-like blocks split at E/2 and off-centre, f32 and int4 weights, 1..8 tokens;
// mixtral also on a device opened with the default limits; and the blocks the option refuses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeInterWidth, type DecodeBlockShape, type DecodeMlpShape } from '../../codegen/kernels/decode-block-shape.js';
import { decodeDownCombineGrid, renderDecodeDownCombineKernel } from '../../codegen/kernels/decode-down-combine/decode-down-combine.js';
import { decodeGateUpGrid, renderDecodeGateUpKernel } from '../../codegen/kernels/decode-gate-up/decode-gate-up.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { renderRouterKernel, routerTokensPerWorkgroup, type RouterKernelShape } from '../../codegen/kernels/router/router.js';
import type { Graph, Op, Value } from '../../ir/graph.js';
import { boolParam, numParam, type KindRef, type ModelConfig } from '../../ir/model-config.js';
import { opDefinitions } from '../../ir/ops.js';
import { weightFormatOf } from '../../ir/storage-format.js';
import { poison, POISON_BITS, readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, DEFAULT_LIMITS, openDevice, type GpuRuntime } from '../../runtime/device.js';
import type { MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { packWeight } from '../../runtime/quant/weight-codec.js';
import { blockGraphOf, dequantizedWeights, families, type Family, normals, randomWeights, reference, referenceWithRoutes, relativeError, seededRandom } from './moe-fixtures.js';
import { checkRouting } from './route-check.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`decode-fused-shards: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const TOKEN_COUNTS = [1, 3, 7, 8];
const TOLERANCE = 1e-5;

const family = (name: string): Family => families.find((f) => f.name === name)!;

interface Case {
  family: Family;
  /** The first expert of each shard. */
  shards: [number, number];
  compile?: string;
}

const cases: Case[] = [
  ...[[0, 4], [0, 3]].flatMap(([, s1]) => [undefined, 'quantize experts = int4(group = 8)'].map((compile): Case => ({ family: family('mixtral'), shards: [0, s1!], compile }))),
  // I = 50, H = 72: group 2 is the largest that divides both reduced dims.
  ...[[0, 8], [0, 3]].flatMap(([, s1]) => [undefined, 'quantize experts = int4(group = 2)'].map((compile): Case => ({ family: family('olmoe'), shards: [0, s1!], compile }))),
];

/** The block's kernel shapes and routed params; weights in the order the kernels bind them. */
interface ShardedBlock {
  shape: DecodeBlockShape;
  router: RouterKernelShape;
  experts: number;
  /** Binding -> (param, first expert, end expert): the routed matrices, sliced by shard. */
  packed: Map<string, { param: Value; begin: number; end: number }>;
  /** Read as dequantized f32 (the router weights). */
  dequantized: Map<string, Value>;
}

function readShardedBlock(graph: Graph, config: ModelConfig, shards: [number, number]): ShardedBlock {
  const op = (opcode: string): Op => graph.ops.find((o) => o.opcode === opcode)!;
  const inputs = (o: Op): Record<string, Value> => Object.fromEntries(opDefinitions[o.opcode]!.inputNames(o.attrs).map((n, i) => [n, o.inputs[i]!]));
  const route = op('moe.route');
  const [experts, topK] = [route.attrs['experts'] as number, route.attrs['top_k'] as number];
  const routeIn = inputs(route);
  const dequantized = new Map<string, Value>([['router_weight', routeIn['weight']!]]);
  if (routeIn['bias']) dequantized.set('router_bias', routeIn['bias']);
  if (routeIn['correction_bias']) dequantized.set('correction_bias', routeIn['correction_bias']);
  const moe = op('moe.experts');
  const activation = moe.attrs['activation'] as KindRef;
  const expertsIn = inputs(moe);
  if (boolParam(activation, 'bias') || graph.ops.some((o) => o.opcode === 'mlp')) throw new Error('internal: these blocks have no expert biases and no shared expert');
  const packed = new Map<string, { param: Value; begin: number; end: number }>();
  for (const part of ['gate', 'up', 'down']) {
    packed.set(`w_${part}`, { param: expertsIn[part]!, begin: 0, end: shards[1] });
    packed.set(`w_${part}1`, { param: expertsIn[part]!, begin: shards[1], end: experts });
  }
  const routed: DecodeMlpShape = { intermediate: numParam(activation, 'intermediate'), activation, bias: false, weights: weightFormatOf(expertsIn['gate']!) };
  const act = config.compile.dtype;
  const shape: DecodeBlockShape = { hidden: config.hidden, topK, routed, sharedGate: false, act, routedShards: shards };
  const router: RouterKernelShape = { act, hidden: config.hidden, experts, topK, router: route.attrs['router'] as KindRef, bias: !!routeIn['bias'], correctionBias: !!routeIn['correction_bias'] };
  return { shape, router, experts, packed, dequantized };
}

interface Run {
  out: Float32Array;
  ids: Int32Array;
  routing: Float32Array;
  buffers: Map<string, GPUBuffer>;
}

/** Router -> decode gate/up -> decode down + combine, each shard's matrices packed and bound alone. */
class ShardedDecodeBlock {
  readonly kernels: RenderedKernel[];
  private pipelines: GPUComputePipeline[] = [];
  private readonly weightBuffers = new Map<string, GPUBuffer>();

  constructor(private readonly rt: GpuRuntime, readonly block: ShardedBlock, raw: Map<string, Float32Array>, dequantized: Map<string, Float32Array>) {
    const { device } = rt;
    this.kernels = [renderRouterKernel(block.router), renderDecodeGateUpKernel(block.shape), renderDecodeDownCombineKernel(block.shape)];
    const usage = GPUBufferUsage.STORAGE;
    for (const [binding, p] of block.dequantized) this.weightBuffers.set(binding, uploadBytes(device, dequantized.get(p.name)!, usage, p.name));
    for (const [binding, { param, begin, end }] of block.packed) {
      const [, rows, cols] = param.type.shape as number[];
      const slice = raw.get(param.name)!.slice(begin * rows! * cols!, end * rows! * cols!);
      this.weightBuffers.set(binding, uploadBytes(device, packWeight(weightFormatOf(param), slice, [end - begin, rows!, cols!], `${param.name}[${begin}:${end}]`), usage, binding));
    }
  }

  async compile(): Promise<void> {
    this.pipelines = await Promise.all(this.kernels.map((k) => createComputePipelineChecked(this.rt.device, k.name, k.wgsl, k.entryPoint)));
  }

  async run(x: Float32Array, tokens: number): Promise<Run> {
    const { device } = this.rt;
    const { shape } = this.block;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const scratch = (name: string, bytes: number) => {
      const buffer = device.createBuffer({ label: name, size: Math.max(4, bytes), usage });
      poison(device, buffer, buffer.size, 0, POISON_BITS);
      return buffer;
    };
    const buffers = new Map<string, GPUBuffer>([
      ['x', uploadBytes(device, x, usage, 'x')],
      ['route_ids', scratch('route_ids', tokens * shape.topK * 4)],
      ['routing_weights', scratch('routing_weights', tokens * shape.topK * 4)],
      ['inter', scratch('inter', tokens * decodeInterWidth(shape) * 4)],
      ['out', scratch('out', tokens * shape.hidden * 4)],
    ]);
    const uniform = uploadBytes(device, new Uint32Array([tokens, 0, 0, 0]), GPUBufferUsage.UNIFORM, 'params');
    const resolve = (name: string) => (name === 'route_weights' ? buffers.get('routing_weights') : buffers.get(name) ?? this.weightBuffers.get(name));
    const grids: Array<[number, number, number]> = [
      [Math.ceil(tokens / routerTokensPerWorkgroup(this.block.experts)), 1, 1],
      decodeGateUpGrid(shape, tokens),
      decodeDownCombineGrid(shape),
    ];
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    this.kernels.forEach((kernel, i) => {
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
    const out = new Float32Array(await readBackBytes(device, buffers.get('out')!, tokens * shape.hidden * 4));
    const ids = new Int32Array(await readBackBytes(device, buffers.get('route_ids')!, tokens * shape.topK * 4));
    const routing = new Float32Array(await readBackBytes(device, buffers.get('routing_weights')!, tokens * shape.topK * 4));
    await this.rt.settle();
    uniform.destroy();
    return { out, ids, routing, buffers };
  }

  destroy(): void {
    for (const buffer of this.weightBuffers.values()) buffer.destroy();
  }
}

const results: string[] = [];

/** One case's block on `device()`, at every token count; both shards must have served some slot. */
function describeCase(title: string, row: string, c: Case, index: number, device: () => GpuRuntime): void {
  describe(title, () => {
    const { config, graph } = blockGraphOf(c.family, ['target = webgpu', 'dtype = f32', ...(c.compile ? [c.compile] : [])].join('\n '));
    let block: ShardedDecodeBlock;
    let dequantized: Map<string, Float32Array>;
    let random: () => number;
    const served = [0, 0];

    beforeAll(async () => {
      random = seededRandom(seed + 1_000_003 * index);
      const weights = randomWeights(graph, random);
      dequantized = dequantizedWeights(graph, weights);
      block = new ShardedDecodeBlock(device(), readShardedBlock(graph, config, c.shards), weights, dequantized);
      await block.compile();
    });
    afterAll(() => block?.destroy());

    for (const tokens of TOKEN_COUNTS) {
      it(`${tokens} token${tokens > 1 ? 's' : ''} in 3 dispatches match the reference`, async () => {
        const rt = device();
        const H = block.block.shape.hidden;
        const x = normals(random, tokens * H, 1);
        const run = await block.run(x, tokens);
        try {
          expect(run.out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
          for (const e of run.ids) if (e >= 0) served[e < c.shards[1] ? 0 : 1]!++;
          const kernels = relativeError(run.out, referenceWithRoutes(graph, x, tokens, run.ids, run.routing, dequantized), H);
          const executorView = { scratchBuffer: (name: string) => run.buffers.get(name)! } as unknown as MoeBlockExecutor;
          const routing = await checkRouting(rt.device, executorView, graph, x, tokens, dequantized);
          expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
          const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !routing.excluded.includes(t));
          const endToEnd = relativeError(run.out, reference(graph, x, tokens, dequantized), H, kept);
          results.push(`${row}  ${String(tokens).padStart(6)}  ${kernels.toExponential(2).padStart(9)}  ${endToEnd.toExponential(2).padStart(9)}  ${routing.excluded.length}`);
          expect(kernels).toBeLessThan(TOLERANCE);
          expect(endToEnd).toBeLessThan(TOLERANCE);
        } finally {
          for (const buffer of run.buffers.values()) buffer.destroy();
        }
        if (tokens === TOKEN_COUNTS[TOKEN_COUNTS.length - 1]) {
          expect(served[0], 'no slot went to the first shard').toBeGreaterThan(0);
          expect(served[1], 'no slot went to the second shard').toBeGreaterThan(0);
        }
      });
    }
  });
}

let rt: GpuRuntime;
let limited: GpuRuntime;

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
  limited = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
});

afterAll(() => {
  console.log([`${'block'.padEnd(12)} ${'shards'.padEnd(8)} ${'weights'.padEnd(24)} tokens  kernels    end to end  near-ties`, ...results].join('\n'));
  rt?.destroy();
  limited?.destroy();
});

cases.forEach((c, index) => {
  const label = c.compile?.replace(/quantize /g, '') ?? 'experts = f32';
  const row = `${c.family.name.padEnd(12)} ${c.shards.join(',').padEnd(8)} ${label.padEnd(24)}`;
  describeCase(`${c.family.name}, shards [${c.shards.join(', ')}], ${label}`, row, c, index, () => rt);
});

describe("under WebGPU's default limits (8 storage buffers per shader stage)", () => {
  it('the device has the default storage-buffer limit', () => {
    expect(limited.limits.maxStorageBuffersPerShaderStage).toBe(DEFAULT_LIMITS.maxStorageBuffersPerShaderStage);
  });
  const c: Case = { family: family('mixtral'), shards: [0, 4] };
  describeCase('mixtral, shards [0, 4], experts = f32, default limits', `${'mixtral'.padEnd(12)} ${'0,4'.padEnd(8)} ${'f32, default limits'.padEnd(24)}`, c, 100, () => limited);
});

describe('the kernels', () => {
  const shapeOf = (name: string, shards?: number[]): DecodeBlockShape => {
    const { config, graph } = blockGraphOf(family(name));
    const expertsOp = graph.ops.find((o) => o.opcode === 'moe.experts')!;
    const mlp = (o: Op): DecodeMlpShape => {
      const a = o.attrs['activation'] as KindRef;
      return { intermediate: numParam(a, 'intermediate'), activation: a, bias: boolParam(a, 'bias') };
    };
    const sharedOp = graph.ops.find((o) => o.opcode === 'mlp');
    return {
      hidden: config.hidden,
      topK: graph.ops.find((o) => o.opcode === 'moe.route')!.attrs['top_k'] as number,
      routed: mlp(expertsOp),
      ...(sharedOp ? { shared: mlp(sharedOp) } : {}),
      sharedGate: graph.ops.some((o) => o.opcode === 'sigmoid_gate'),
      ...(shards ? { routedShards: shards } : {}),
    };
  };
  const names = (kernel: RenderedKernel) => kernel.bindings.map((b) => b.name);

  it('bind the second shard after the existing storage buffers, within the default 8', () => {
    const shape = shapeOf('mixtral', [0, 4]);
    expect(names(renderDecodeGateUpKernel(shape))).toEqual(['x', 'route_ids', 'w_gate', 'w_up', 'inter', 'w_gate1', 'w_up1']);
    expect(names(renderDecodeDownCombineKernel(shape))).toEqual(['route_ids', 'routing_weights', 'inter', 'w_down', 'out', 'w_down1']);
    // A shared expert without a gate still fits dispatch 3 (7 buffers); routed biases too.
    expect(names(renderDecodeDownCombineKernel(shapeOf('deepseek-v2', [0, 8])))).toEqual(['route_ids', 'routing_weights', 'inter', 'w_down', 'ws_down', 'out', 'w_down1']);
    expect(names(renderDecodeDownCombineKernel(shapeOf('gpt-oss', [0, 4])))).toEqual(['route_ids', 'routing_weights', 'inter', 'w_down', 'b_down', 'out', 'w_down1']);
  });

  it('render the one-binding kernels for no shards or one', () => {
    const plain = shapeOf('olmoe');
    for (const shards of [undefined, [0]]) {
      const shape = { ...plain, ...(shards ? { routedShards: shards } : {}) };
      expect(renderDecodeGateUpKernel(shape)).toEqual(renderDecodeGateUpKernel(plain));
      expect(renderDecodeDownCombineKernel(shape)).toEqual(renderDecodeDownCombineKernel(plain));
    }
  });

  it('refuse two shards beside a shared expert or expert biases in gate/up, a gated shared expert in down', () => {
    expect(() => renderDecodeGateUpKernel(shapeOf('qwen2-moe', [0, 6]))).toThrow(/gate\/up kernel over 2 routed-expert shards needs 9 storage buffers per shader stage \(x, route_ids, w_gate, w_up, ws_gate, ws_up, inter, w_gate1, w_up1\), more than WebGPU's default 8/);
    expect(() => renderDecodeGateUpKernel(shapeOf('gpt-oss', [0, 4]))).toThrow(/gate\/up kernel over 2 routed-expert shards needs 9 storage buffers .*b_gate, b_up, inter, w_gate1, w_up1/);
    expect(() => renderDecodeDownCombineKernel(shapeOf('qwen2-moe', [0, 6]))).toThrow(/down\/combine kernel over 2 routed-expert shards needs 9 storage buffers .*shared_gate_weight, out, w_down1\), more than WebGPU's default 8/);
  });

  it('refuse more than 2 shards, and shards that do not start at 0 and ascend', () => {
    for (const render of [renderDecodeGateUpKernel, renderDecodeDownCombineKernel]) {
      expect(() => render(shapeOf('mixtral', [0, 3, 6]))).toThrow(/3 routed-expert shards \(0, 3, 6\); the fused decode kernels read at most 2/);
      expect(() => render(shapeOf('mixtral', [2, 4]))).toThrow(/must start at expert 0 and ascend, not \[2, 4\]/);
      expect(() => render(shapeOf('mixtral', [0, 0]))).toThrow(/must start at expert 0 and ascend/);
      expect(() => render(shapeOf('mixtral', []))).toThrow(/must start at expert 0 and ascend, not \[\]/);
    }
  });
});
