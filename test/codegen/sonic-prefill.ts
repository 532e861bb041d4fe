// A small harness for the prefill path of one MoE block with SonicMoE token rounding, run directly
// on WebGPU: router (probs) -> round-tokens decide / apply -> route-align (extras) -> grouped
// gate/up (extras) -> grouped down (extras) -> combine (extras). One weight shard, f32 weights and
// activations, no shared expert. With `rounding` unset it runs the plain path (every option off).
// Every output and scratch buffer is poisoned (NaN) before a run.
import { renderCombineKernel, COMBINE_GRID_WIDTH } from '../../codegen/kernels/combine/combine.js';
import { renderGemmKernel } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
import { DEFAULT_GEMM_TILE } from '../../ir/target.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { renderRoundTokensKernels, roundExtraEntries, roundScratchWords, ROUND_STATS_WORDS } from '../../codegen/kernels/round-tokens/round-tokens.js';
import { renderRouteAlignKernel, routeMetaWords, sortedSlotRows, type RouteAlignShape } from '../../codegen/kernels/route-align/route-align.js';
import { renderRouterKernel, routerTokensPerWorkgroup } from '../../codegen/kernels/router/router.js';
import type { KindRef } from '../../ir/model-config.js';
import type { RoundingMode } from '../../ir/interpret/token-rounding.js';
import { poison, readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, type GpuRuntime } from '../../runtime/device.js';

export const SWIGLU: KindRef = { kind: 'swiglu', params: { intermediate: 0, bias: false } };

export interface SonicBlockShape {
  hidden: number;
  intermediate: number;
  experts: number;
  topK: number;
  router: KindRef;
  /** The router has a bias / a correction bias input. */
  bias: boolean;
  correctionBias: boolean;
  /** Token rounding (sonic(mode, tile)); the plain path when absent. */
  rounding?: { mode: RoundingMode; tile: number };
}

/** The weights, in the IR layout: router [E, H] (+ bias [E], correction bias [E]); gate, up [E, I, H]; down [E, H, I]. */
export interface SonicBlockWeights {
  router: Float32Array;
  routerBias?: Float32Array;
  correctionBias?: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

export interface SonicRun {
  /** The router's own output, copied before rounding changed it. */
  routedIds: Int32Array;
  routedWeights: Float32Array;
  probs: Float32Array;
  /** After rounding (the plain path: the router's). */
  ids: Int32Array;
  weights: Float32Array;
  extraIds: Int32Array;
  extraWeights: Float32Array;
  roundStats: Uint32Array;
  sortedSlots: Int32Array;
  routeMeta: Uint32Array;
  dispatchArgs: Uint32Array;
  out: Float32Array;
}

type Step = { kernel: RenderedKernel; grid: [number, number, number] | { indirectOffset: number }; names?: Record<string, string> };

/** BM: the grouped GEMM's tile rows, every expert padded to a multiple of it. */
export const BLOCK_ROWS = DEFAULT_GEMM_TILE.bm;

export class SonicPrefillBlock {
  readonly extras: number;
  readonly align: RouteAlignShape;
  private readonly kernels: { router: RenderedKernel; decide?: RenderedKernel; apply?: RenderedKernel; align: RenderedKernel; gateUp: RenderedKernel; down: RenderedKernel; combine: RenderedKernel };
  private readonly weightBuffers = new Map<string, GPUBuffer>();

  constructor(
    private readonly rt: GpuRuntime,
    readonly shape: SonicBlockShape,
    weights: SonicBlockWeights,
    private readonly pipelines: Map<string, GPUComputePipeline>,
  ) {
    const { hidden: H, intermediate: I, experts: E, topK: K, rounding } = shape;
    const rounded = !!rounding;
    this.extras = rounding ? roundExtraEntries(E, rounding.tile) : 0;
    const bn = DEFAULT_GEMM_TILE.bn;
    this.align = { experts: E, topK: K, blockRows: BLOCK_ROWS, shardBegins: [0], gateUpTiles: Math.ceil(I / bn), downTiles: Math.ceil(H / bn), ...(rounded ? { extras: this.extras } : {}) };
    const round = rounding ? renderRoundTokensKernels({ experts: E, topK: K, tile: rounding.tile, mode: rounding.mode }) : undefined;
    this.kernels = {
      router: renderRouterKernel({ hidden: H, experts: E, topK: K, router: shape.router, bias: shape.bias, correctionBias: shape.correctionBias, ...(rounded ? { probs: true } : {}) }),
      ...(round ? { decide: round.decide, apply: round.apply } : {}),
      align: renderRouteAlignKernel(this.align),
      gateUp: renderGemmKernel({ gateup: true, grouped: true, bias: false, weighted: false, kdim: H, ndim: I, topK: K, activation: SWIGLU, shards: 1, ...(rounded ? { extras: true } : {}) }),
      down: renderGemmKernel({ gateup: false, grouped: true, bias: false, weighted: true, kdim: I, ndim: H, topK: K, shards: 1, ...(rounded ? { extras: true } : {}) }),
      combine: renderCombineKernel({ hidden: H, topK: K, shared: false, sharedGate: false, ...(rounded ? { extras: this.extras } : {}) }),
    };
    const upload = (name: string, data: Float32Array | undefined) => data && this.weightBuffers.set(name, uploadBytes(rt.device, data, GPUBufferUsage.STORAGE, name));
    upload('router_weight', weights.router);
    upload('router_bias', weights.routerBias);
    upload('correction_bias', weights.correctionBias);
    upload('w_gate', weights.gate);
    upload('w_up', weights.up);
    upload('w_down', weights.down);
  }

  /** Compiles every kernel not compiled yet (pipelines are shared between blocks by WGSL text). */
  async compile(): Promise<void> {
    for (const kernel of Object.values(this.kernels)) {
      const key = `${kernel.entryPoint}\n${kernel.wgsl}`;
      if (!this.pipelines.has(key)) this.pipelines.set(key, await createComputePipelineChecked(this.rt.device, kernel.name, kernel.wgsl, kernel.entryPoint));
    }
  }

  async run(x: Float32Array, tokens: number): Promise<SonicRun> {
    const { device } = this.rt;
    const { hidden: H, intermediate: I, experts: E, topK: K, rounding } = this.shape;
    const X = this.extras;
    const rows = sortedSlotRows(this.align, tokens);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const scratch = (name: string, words: number, extra = 0): GPUBuffer => {
      const buffer = device.createBuffer({ label: name, size: 4 * Math.max(1, words), usage: usage | extra });
      poison(device, buffer, buffer.size);
      return buffer;
    };
    const buffers = new Map<string, GPUBuffer>([
      ['x', uploadBytes(device, x, usage, 'x')],
      ['route_ids', scratch('route_ids', tokens * K)],
      ['route_weights', scratch('route_weights', tokens * K)],
      ['routed_ids', scratch('routed_ids', tokens * K)],
      ['routed_weights', scratch('routed_weights', tokens * K)],
      ['route_probs', scratch('route_probs', tokens * E)],
      ['extra_ids', scratch('extra_ids', 2 * X)],
      ['extra_weights', scratch('extra_weights', X)],
      ['round_scratch', scratch('round_scratch', rounding ? roundScratchWords(E, rounding.tile) : 0)],
      ['round_stats', scratch('round_stats', ROUND_STATS_WORDS)],
      ['sorted_slots', scratch('sorted_slots', rows)],
      ['route_meta', scratch('route_meta', routeMetaWords(this.align, tokens))],
      ['dispatch_args', scratch('dispatch_args', 6, GPUBufferUsage.INDIRECT)],
      ['expert_inter', scratch('expert_inter', rows * I)],
      ['slot_out', scratch('slot_out', (tokens * K + X) * H)],
      ['y', scratch('y', tokens * H)],
    ]);
    // Params {tokens, expert_begin, expert_end, shard}: one shard holding every expert.
    const uniform = uploadBytes(device, new Uint32Array([tokens, 0, E, 0]), GPUBufferUsage.UNIFORM, 'params');
    const k = this.kernels;
    const routing: Step[] = [{ kernel: k.router, grid: [Math.ceil(tokens / routerTokensPerWorkgroup(E)), 1, 1] }];
    const rest: Step[] = [
      ...(k.decide && k.apply ? [{ kernel: k.decide, grid: [E, 1, 1], names: { probs: 'route_probs' } } as Step, { kernel: k.apply, grid: [1, 1, 1] } as Step] : []),
      { kernel: k.align, grid: [1, 1, 1] },
      // route-align writes (gate/up tiles, blocks, 1) at word 0 and (down tiles, blocks, 1) at word 3.
      { kernel: k.gateUp, grid: { indirectOffset: 0 }, names: { a: 'x', w0: 'w_gate', w1: 'w_up', out: 'expert_inter' } },
      { kernel: k.down, grid: { indirectOffset: 12 }, names: { a: 'expert_inter', w0: 'w_down', routing_weights: 'route_weights', out: 'slot_out' } },
      { kernel: k.combine, grid: [Math.min(tokens, COMBINE_GRID_WIDTH), Math.ceil(tokens / COMBINE_GRID_WIDTH), 1], names: { out: 'y' } },
    ];
    const encode = (pass: GPUComputePassEncoder, steps: Step[]): void => {
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
    };
    const encoder = device.createCommandEncoder();
    const first = encoder.beginComputePass();
    encode(first, routing);
    first.end();
    // Keep the router's own ids and weights: round-tokens rewrites them in place.
    encoder.copyBufferToBuffer(buffers.get('route_ids')!, 0, buffers.get('routed_ids')!, 0, tokens * K * 4);
    encoder.copyBufferToBuffer(buffers.get('route_weights')!, 0, buffers.get('routed_weights')!, 0, tokens * K * 4);
    const second = encoder.beginComputePass();
    encode(second, rest);
    second.end();
    device.queue.submit([encoder.finish()]);
    const read = async (name: string, words: number) => readBackBytes(device, buffers.get(name)!, 4 * words);
    try {
      const run: SonicRun = {
        routedIds: new Int32Array(await read('routed_ids', tokens * K)),
        routedWeights: new Float32Array(await read('routed_weights', tokens * K)),
        probs: new Float32Array(await read('route_probs', tokens * E)),
        ids: new Int32Array(await read('route_ids', tokens * K)),
        weights: new Float32Array(await read('route_weights', tokens * K)),
        extraIds: new Int32Array(await read('extra_ids', 2 * X)),
        extraWeights: new Float32Array(await read('extra_weights', X)),
        roundStats: new Uint32Array(await read('round_stats', ROUND_STATS_WORDS)),
        sortedSlots: new Int32Array(await read('sorted_slots', rows)),
        routeMeta: new Uint32Array(await read('route_meta', routeMetaWords(this.align, tokens))),
        dispatchArgs: new Uint32Array(await read('dispatch_args', 6)),
        out: new Float32Array(await read('y', tokens * H)),
      };
      await this.rt.settle();
      return run;
    } finally {
      for (const buffer of [...buffers.values(), uniform]) buffer.destroy();
    }
  }

  destroy(): void {
    for (const buffer of this.weightBuffers.values()) buffer.destroy();
  }
}
