// A small harness for the prefill path of one MoE block with its shared expert folded into the
// grouped GEMMs as expert E, run directly on WebGPU: router -> route-align (sharedExpert) ->
// grouped gate/up (shared) -> grouped down (shared) -> combine (sharedInSlots), 5 dispatches.
// With token rounding the gate/up GEMM cannot take the shared expert (9 storage buffers): the
// router writes probs, round-tokens decide / apply run, the routed gate/up runs over the routed
// blocks only (their count read back from route-align) and a dense gate/up GEMM writes the
// shared rows, copied to the shared region of expert_inter; down and combine fold it in as above.
// One weight shard; f32 or f16 activations (x, expert_inter, slot_out, out; f32 with rounding).
// Every output and scratch buffer is poisoned (NaN) first.
import { COMBINE_GRID_WIDTH, renderCombineKernel } from '../../codegen/kernels/combine/combine.js';
import { renderGemmKernel } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
import { DEFAULT_GEMM_TILE } from '../../ir/target.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { renderRoundTokensKernels, roundExtraEntries, roundScratchWords, ROUND_STATS_WORDS } from '../../codegen/kernels/round-tokens/round-tokens.js';
import { renderRouteAlignKernel, routeMetaWords, sortedSlotRows, type RouteAlignShape } from '../../codegen/kernels/route-align/route-align.js';
import { renderRouterKernel, routerTokensPerWorkgroup } from '../../codegen/kernels/router/router.js';
import type { RoundingMode } from '../../ir/interpret/token-rounding.js';
import type { KindRef } from '../../ir/model-config.js';
import { poison, POISON_BITS, POISON_BITS_F16, readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, type GpuRuntime } from '../../runtime/device.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import type { WeightFormat } from '../../runtime/quant/weight-format.js';

/** BM and BN of the grouped GEMMs. */
export const BLOCK_ROWS = DEFAULT_GEMM_TILE.bm;
const BN = DEFAULT_GEMM_TILE.bn;

export interface SharedBlockShape {
  hidden: number;
  intermediate: number;
  sharedIntermediate: number;
  experts: number;
  topK: number;
  router: KindRef;
  activation: KindRef;
  /** The router has a bias / a correction bias input. */
  bias: boolean;
  correctionBias: boolean;
  /** Qwen2-MoE: the shared row times sigmoid(x . shared_gate_weight). */
  sharedGate: boolean;
  expertFormat: WeightFormat;
  sharedFormat: WeightFormat;
  /** Token rounding (sonic(mode, tile)); f32 activations only. */
  rounding?: { mode: RoundingMode; tile: number };
  act?: 'f32' | 'f16';
}

/**
 * Weight buffers by binding name: router_weight (+ router_bias, correction_bias) and
 * shared_gate_weight as f32; w_gate, w_up, w_down packed in expertFormat; ws_gate, ws_up, ws_down
 * packed in sharedFormat.
 */
export type SharedBlockWeights = Map<string, ArrayBufferView>;

export interface SharedRun {
  ids: Int32Array;
  weights: Float32Array;
  extraIds: Int32Array;
  extraWeights: Float32Array;
  sortedSlots: Int32Array;
  routeMeta: Uint32Array;
  dispatchArgs: Uint32Array;
  out: Float32Array;
  /** Every buffer of the run by name (destroy() them); route_ids and routing_weights for route-check.ts. */
  buffers: Map<string, GPUBuffer>;
}

type Step = { kernel: RenderedKernel; grid: [number, number, number] | { indirectOffset: number }; names?: Record<string, string> };

export class SharedPrefillBlock {
  readonly extras: number;
  readonly align: RouteAlignShape;
  readonly kernels: Record<string, RenderedKernel>;
  private readonly weightBuffers = new Map<string, GPUBuffer>();

  constructor(
    private readonly rt: GpuRuntime,
    readonly shape: SharedBlockShape,
    weights: SharedBlockWeights,
    private readonly pipelines: Map<string, GPUComputePipeline>,
  ) {
    const { hidden: H, intermediate: I, sharedIntermediate: Is, experts: E, topK: K, rounding, activation } = shape;
    const act = shape.act ?? 'f32';
    if (rounding && act !== 'f32') throw new Error('this harness runs token rounding with f32 activations only');
    const X = (this.extras = rounding ? roundExtraEntries(E, rounding.tile) : 0);
    const rounded = rounding ? { extras: true } : {};
    // The gate/up grid covers max(I, Is) columns; without rounding the shared expert is one of its blocks.
    const gateUpTiles = Math.ceil((rounding ? I : Math.max(I, Is)) / BN);
    this.align = { experts: E, topK: K, blockRows: BLOCK_ROWS, shardBegins: [0], gateUpTiles, downTiles: Math.ceil(H / BN), sharedExpert: true, ...(rounding ? { extras: X } : {}) };
    const round = rounding && renderRoundTokensKernels({ experts: E, topK: K, tile: rounding.tile, mode: rounding.mode });
    const gemm = { grouped: true, bias: false, topK: K, shards: 1, act, ...rounded } as const;
    this.kernels = {
      router: renderRouterKernel({ hidden: H, experts: E, topK: K, router: shape.router, bias: shape.bias, correctionBias: shape.correctionBias, act, ...(rounding ? { probs: true } : {}) }),
      ...(round ? { decide: round.decide, apply: round.apply } : {}),
      align: renderRouteAlignKernel(this.align),
      gateUp: renderGemmKernel({ ...gemm, gateup: true, weighted: false, kdim: H, ndim: I, activation, weights: shape.expertFormat, ...(rounding ? {} : { shared: { ndim: Is, format: shape.sharedFormat } }) }),
      ...(rounding ? { sharedGateUp: renderGemmKernel({ gateup: true, grouped: false, bias: false, weighted: false, kdim: H, ndim: Is, topK: K, shards: 1, activation, weights: shape.sharedFormat }) } : {}),
      down: renderGemmKernel({ ...gemm, gateup: false, weighted: true, kdim: I, ndim: H, weights: shape.expertFormat, shared: { kdim: Is, format: shape.sharedFormat, ...(rounding ? { extras: X } : {}) } }),
      combine: renderCombineKernel({ hidden: H, topK: K, shared: true, sharedGate: shape.sharedGate, sharedInSlots: true, act, ...(rounding ? { extras: X } : {}) }),
    };
    for (const [name, data] of weights) this.weightBuffers.set(name, uploadBytes(rt.device, data, GPUBufferUsage.STORAGE, name));
  }

  /** Compiles every kernel not compiled yet (pipelines are shared between blocks by WGSL text). */
  async compile(): Promise<void> {
    for (const kernel of Object.values(this.kernels)) {
      const key = `${kernel.entryPoint}\n${kernel.wgsl}`;
      if (!this.pipelines.has(key)) this.pipelines.set(key, await createComputePipelineChecked(this.rt.device, kernel.name, kernel.wgsl, kernel.entryPoint));
    }
  }

  /** Element where token 0's shared row of expert_inter starts: (K T + X + E (BM - 1)) I. */
  sharedBase(tokens: number): number {
    const { topK: K, experts: E, intermediate: I } = this.shape;
    return (K * tokens + this.extras + E * (BLOCK_ROWS - 1)) * I;
  }

  /** x: [tokens, hidden], already rounded to the activation dtype. */
  async run(x: Float32Array, tokens: number): Promise<SharedRun> {
    const { device } = this.rt;
    const { hidden: H, intermediate: I, sharedIntermediate: Is, experts: E, topK: K, rounding } = this.shape;
    const X = this.extras;
    const f16 = this.shape.act === 'f16';
    const rows = sortedSlotRows(this.align, tokens);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const scratch = (name: string, words: number, extra = 0): GPUBuffer => {
      const buffer = device.createBuffer({ label: name, size: 4 * Math.max(1, words), usage: usage | extra });
      poison(device, buffer, buffer.size);
      return buffer;
    };
    // An activation buffer of `elements` f32 or f16 values (whole words).
    const activations = (name: string, elements: number): GPUBuffer => {
      const buffer = device.createBuffer({ label: name, size: Math.max(4, Math.ceil((elements * (f16 ? 2 : 4)) / 4) * 4), usage });
      poison(device, buffer, buffer.size, 0, f16 ? POISON_BITS_F16 : POISON_BITS);
      return buffer;
    };
    const xData = f16 ? new Uint16Array(Math.ceil(x.length / 2) * 2) : x;
    if (xData instanceof Uint16Array) xData.set(float32ToFloat16Bits(x));
    const buffers = new Map<string, GPUBuffer>([
      ['x', uploadBytes(device, xData, usage, 'x')],
      ['route_ids', scratch('route_ids', tokens * K)],
      ['routing_weights', scratch('routing_weights', tokens * K)],
      ['route_probs', scratch('route_probs', tokens * E)],
      ['extra_ids', scratch('extra_ids', 2 * X)],
      ['extra_weights', scratch('extra_weights', X)],
      ['round_scratch', scratch('round_scratch', rounding ? roundScratchWords(E, rounding.tile) : 0)],
      ['round_stats', scratch('round_stats', ROUND_STATS_WORDS)],
      ['sorted_slots', scratch('sorted_slots', rows)],
      ['route_meta', scratch('route_meta', routeMetaWords(this.align, tokens))],
      ['dispatch_args', scratch('dispatch_args', 6, GPUBufferUsage.INDIRECT)],
      // The routed rows (at most K T + X + E (BM - 1)), then T shared rows of Is.
      ['expert_inter', activations('expert_inter', this.sharedBase(tokens) + tokens * Is)],
      ['shared_inter', activations('shared_inter', tokens * Is)],
      ['slot_out', activations('slot_out', (K * tokens + X + tokens) * H)],
      ['y', activations('y', tokens * H)],
    ]);
    // Params {tokens, expert_begin, expert_end, shard}: one shard holding every expert.
    const uniform = uploadBytes(device, new Uint32Array([tokens, 0, E, 0]), GPUBufferUsage.UNIFORM, 'params');
    const k = this.kernels;
    const gateUpNames = { a: 'x', w0: 'w_gate', w1: 'w_up', ws0: 'ws_gate', ws1: 'ws_up', out: 'expert_inter' };
    const routing: Step[] = [
      { kernel: k.router!, grid: [Math.ceil(tokens / routerTokensPerWorkgroup(E)), 1, 1], names: { route_weights: 'routing_weights', probs: 'route_probs' } },
      ...(k.decide && k.apply ? [{ kernel: k.decide, grid: [E, 1, 1], names: { probs: 'route_probs', route_weights: 'routing_weights' } } as Step, { kernel: k.apply, grid: [1, 1, 1], names: { route_weights: 'routing_weights' } } as Step] : []),
      { kernel: k.align!, grid: [1, 1, 1] },
    ];
    const tail: Step[] = [
      { kernel: k.down!, grid: { indirectOffset: 12 }, names: { a: 'expert_inter', w0: 'w_down', ws0: 'ws_down', routing_weights: 'routing_weights', out: 'slot_out' } },
      { kernel: k.combine!, grid: [Math.min(tokens, COMBINE_GRID_WIDTH), Math.ceil(tokens / COMBINE_GRID_WIDTH), 1], names: { out: 'y' } },
    ];
    if (!rounding) {
      // 5 dispatches: route-align writes (gate/up tiles, blocks, 1) at word 0 and (down tiles, blocks, 1) at word 3.
      this.submit([[...routing, { kernel: k.gateUp!, grid: { indirectOffset: 0 }, names: gateUpNames }, ...tail]], buffers, uniform);
    } else {
      this.submit([routing], buffers, uniform);
      // The routed blocks come first; the shared expert's ceil(T / BM) blocks follow them.
      const blocks = new Uint32Array(await readBackBytes(device, buffers.get('dispatch_args')!, 24))[1]!;
      const routedBlocks = blocks - Math.ceil(tokens / BLOCK_ROWS);
      this.submit([
        [
          // Rounding may drop every routed row (then only the shared expert's blocks are left).
          ...(routedBlocks > 0 ? [{ kernel: k.gateUp!, grid: [Math.ceil(I / BN), routedBlocks, 1], names: gateUpNames } as Step] : []),
          { kernel: k.sharedGateUp!, grid: [Math.ceil(Is / BN), Math.ceil(tokens / BLOCK_ROWS), 1], names: { a: 'x', w0: 'ws_gate', w1: 'ws_up', out: 'shared_inter' } },
        ],
        tail,
      ], buffers, uniform, (encoder) => encoder.copyBufferToBuffer(buffers.get('shared_inter')!, 0, buffers.get('expert_inter')!, 4 * this.sharedBase(tokens), 4 * tokens * Is));
    }
    const read = async (name: string, words: number) => readBackBytes(device, buffers.get(name)!, 4 * words);
    const out = f16 ? float16BitsToFloat32(new Uint16Array(await readBackBytes(device, buffers.get('y')!, buffers.get('y')!.size), 0, tokens * H)) : new Float32Array(await read('y', tokens * H));
    const run: SharedRun = {
      ids: new Int32Array(await read('route_ids', tokens * K)),
      weights: new Float32Array(await read('routing_weights', tokens * K)),
      extraIds: new Int32Array(await read('extra_ids', 2 * X)),
      extraWeights: new Float32Array(await read('extra_weights', X)),
      sortedSlots: new Int32Array(await read('sorted_slots', rows)),
      routeMeta: new Uint32Array(await read('route_meta', routeMetaWords(this.align, tokens))),
      dispatchArgs: new Uint32Array(await read('dispatch_args', 6)),
      out,
      buffers,
    };
    await this.rt.settle();
    uniform.destroy();
    return run;
  }

  /** One command buffer: a compute pass per group of steps, `between` encoded after the first. */
  private submit(passes: Step[][], buffers: Map<string, GPUBuffer>, uniform: GPUBuffer, between?: (encoder: GPUCommandEncoder) => void): void {
    const { device } = this.rt;
    const encoder = device.createCommandEncoder();
    passes.forEach((steps, i) => {
      if (i === 1) between?.(encoder);
      const pass = encoder.beginComputePass();
      for (const { kernel, grid, names } of steps) {
        const pipeline = this.pipelines.get(`${kernel.entryPoint}\n${kernel.wgsl}`)!;
        const entries: GPUBindGroupEntry[] = kernel.bindings.map((b) => {
          const name = names?.[b.name] ?? b.name;
          const buffer = buffers.get(name) ?? this.weightBuffers.get(name);
          if (!buffer) throw new Error(`${kernel.name}: nothing to bind to ${b.name}`);
          return { binding: b.binding, resource: { buffer } };
        });
        entries.push({ binding: kernel.uniformBinding, resource: { buffer: uniform } });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
        if (Array.isArray(grid)) pass.dispatchWorkgroups(...grid);
        else pass.dispatchWorkgroupsIndirect(buffers.get('dispatch_args')!, grid.indirectOffset);
      }
      pass.end();
    });
    device.queue.submit([encoder.finish()]);
  }

  destroy(): void {
    for (const buffer of this.weightBuffers.values()) buffer.destroy();
  }
}
