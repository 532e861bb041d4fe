/// <reference types="@webgpu/types" />
// The deliberately naive MoE block the benchmark compares against, built the way early WebGPU
// MoE ports worked (see ORT's QMoE before PR 27998): run the router, READ the routing back to
// the CPU, group tokens per expert there, then per active expert a dispatch chain
// gather -> gate GEMM -> up GEMM -> activation -> down GEMM -> scatter-add, and a final
// combine. It shares the router and the dense GEMM kernels with the fused plan, so the
// comparison is about structure (syncs, dispatch count, padding), not kernel quality.
import { renderGemmKernel } from '../codegen/kernels/grouped-gemm/grouped-gemm.js';
import { DEFAULT_GEMM_TILE } from '../ir/target.js';
import type { RenderedKernel } from '../codegen/kernels/kernel.js';
import { renderActivateKernel, renderFinishKernel, renderGatherRowsKernel, renderScatterAddKernel } from '../codegen/kernels/naive/naive.js';
import type { Graph } from '../ir/graph.js';
import type { KindRef } from '../ir/model-config.js';
import { inputsByName } from '../ir/ops.js';
import { readBackBytes, uploadF32 } from '../runtime/buffer-pool.js';
import { createComputePipelineChecked, type GpuRuntime } from '../runtime/device.js';
import { evalTokenExpr, type MoeBlockPlan } from '../runtime/plan.js';

export interface NaiveMoe {
  /** Runs the block on `input` into `output`; resolves when the GPU is done. Returns the dispatch count. */
  run(input: GPUBuffer, output: GPUBuffer, tokens: number): Promise<number>;
  destroy(): void;
}

const UNIFORM_STRIDE = 256;

/** What the naive baseline reads of a block graph (before lowering): sizes, activation, weight names. */
export interface NaiveBlock {
  hidden: number;
  experts: number;
  topK: number;
  intermediate: number;
  activation: KindRef;
  routerWeight: { name: string };
  gate: { name: string };
  up: { name: string };
  down: { name: string };
}

export function naiveBlockOf(graph: Graph): NaiveBlock {
  const route = graph.ops.find((op) => op.opcode === 'moe.route')!;
  const experts = graph.ops.find((op) => op.opcode === 'moe.experts')!;
  if (graph.ops.length !== 2 || route.inputs.length !== 2 || experts.inputs.length !== 6) throw new Error('the naive baseline covers blocks without shared experts and biases');
  const r = inputsByName(route);
  const e = inputsByName(experts);
  const activation = experts.attrs['activation'] as KindRef;
  return {
    hidden: e['x']!.type.shape[1] as number, experts: experts.attrs['experts'] as number, topK: experts.attrs['top_k'] as number,
    intermediate: activation.params['intermediate'] as number, activation, routerWeight: r['weight']!, gate: e['gate']!, up: e['up']!, down: e['down']!,
  };
}

export async function createNaiveMoe(rt: GpuRuntime, plan: MoeBlockPlan, block: NaiveBlock, weights: Map<string, Float32Array>, maxTokens: number): Promise<NaiveMoe> {
  const { device } = rt;
  const { hidden: H, experts: E, topK: K, intermediate: I } = block;
  const stride = Math.ceil(maxTokens / 64) * 64; // token lists per expert at 256-byte-aligned offsets
  const { STORAGE, COPY_SRC, COPY_DST, UNIFORM } = GPUBufferUsage;

  const routerStep = plan.prefill[0]!;
  const routerKernel = plan.kernels.find((k) => k.name === routerStep.kernel)!;
  const gemm = (kdim: number, ndim: number) => renderGemmKernel({ gateup: false, grouped: false, bias: false, weighted: false, kdim, ndim, topK: 0, shards: 1 });
  const kernels = {
    gather: renderGatherRowsKernel(H),
    upProject: gemm(H, I),
    activate: renderActivateKernel(I, block.activation),
    downProject: gemm(I, H),
    scatter: renderScatterAddKernel(H),
    finish: renderFinishKernel(H),
  };
  const pipelines: Record<string, GPUComputePipeline> = { router: await createComputePipelineChecked(device, 'naive/router', routerKernel.wgsl, routerKernel.entryPoint) };
  for (const [name, k] of Object.entries(kernels)) pipelines[name] = await createComputePipelineChecked(device, `naive/${name}`, k.wgsl, k.entryPoint);

  const buffer = (label: string, floats: number, usage = STORAGE | COPY_SRC | COPY_DST) => device.createBuffer({ label, size: Math.max(16, floats * 4), usage });
  const weight = (v: { name: string }) => uploadF32(device, weights.get(v.name)!, STORAGE, v.name);
  const w = { router: weight(block.routerWeight), gate: weight(block.gate), up: weight(block.up), down: weight(block.down) };
  const b = {
    ids: buffer('ids', maxTokens * K),
    routeWeights: buffer('route weights', maxTokens * K),
    xe: buffer('expert rows', maxTokens * H),
    gate: buffer('gate', maxTokens * I),
    up: buffer('up', maxTokens * I),
    act: buffer('act', maxTokens * I),
    y: buffer('y', maxTokens * H),
    acc: buffer('acc', maxTokens * H),
    tokenIndex: buffer('token index', E * stride),
    tokenWeight: buffer('token weight', E * stride),
    uniforms: buffer('params', ((E + 1) * UNIFORM_STRIDE) / 4, UNIFORM | COPY_DST),
  };
  const all = [...Object.values(w), ...Object.values(b)];

  // Uniform slot e: (tokens of expert e, e); slot E: (all tokens).
  const uniform = (slot: number) => ({ binding: 0, resource: { buffer: b.uniforms, offset: slot * UNIFORM_STRIDE, size: 16 } });
  const bind = (name: string, kernel: RenderedKernel, entries: Record<string, GPUBufferBinding>, slot: number): GPUBindGroup =>
    device.createBindGroup({
      layout: pipelines[name]!.getBindGroupLayout(0),
      entries: [...kernel.bindings.map((x) => ({ binding: x.binding, resource: entries[x.name]! })), { ...uniform(slot), binding: kernel.uniformBinding }],
    });
  const list = (buf: GPUBuffer, e: number): GPUBufferBinding => ({ buffer: buf, offset: e * stride * 4, size: stride * 4 });
  const groups = Array.from({ length: E }, (_, e) => ({
    gate: bind('upProject', kernels.upProject, { a: { buffer: b.xe }, w0: { buffer: w.gate }, out: { buffer: b.gate } }, e),
    up: bind('upProject', kernels.upProject, { a: { buffer: b.xe }, w0: { buffer: w.up }, out: { buffer: b.up } }, e),
    activate: bind('activate', kernels.activate, { gate: { buffer: b.gate }, up: { buffer: b.up }, out: { buffer: b.act } }, e),
    down: bind('downProject', kernels.downProject, { a: { buffer: b.act }, w0: { buffer: w.down }, out: { buffer: b.y } }, e),
    scatter: bind('scatter', kernels.scatter, { y: { buffer: b.y }, token_index: list(b.tokenIndex, e), token_weight: list(b.tokenWeight, e), acc: { buffer: b.acc } }, e),
  }));
  // The router step of the fused plan, its buffers swapped for this baseline's.
  const routerBuffers: Record<string, GPUBuffer> = { route_ids: b.ids, routing_weights: b.routeWeights, [block.routerWeight.name]: w.router };
  const routerGroup = (input: GPUBuffer) =>
    device.createBindGroup({
      layout: pipelines['router']!.getBindGroupLayout(0),
      entries: [
        ...routerStep.bindings.map((x) => ({ binding: x.binding, resource: { buffer: x.buffer === plan.input ? input : routerBuffers[x.buffer]! } })),
        { ...uniform(E), binding: routerStep.uniform.binding },
      ],
    });
  const tile = DEFAULT_GEMM_TILE;

  return {
    async run(input, output, tokens) {
      if (tokens > maxTokens) throw new RangeError(`naive baseline sized for ${maxTokens} tokens`);
      // Steps that touch the caller's input and output buffers are bound per call.
      const gathers = groups.map((_, e) => bind('gather', kernels.gather, { x: { buffer: input }, token_index: list(b.tokenIndex, e), out: { buffer: b.xe } }, e));
      const finishGroup = bind('finish', kernels.finish, { acc: { buffer: b.acc }, out: { buffer: output } }, E);
      device.queue.writeBuffer(b.uniforms, E * UNIFORM_STRIDE, new Uint32Array([tokens, 0, 0, 0]));

      let encoder = device.createCommandEncoder();
      let pass = encoder.beginComputePass();
      pass.setPipeline(pipelines['router']!);
      pass.setBindGroup(0, routerGroup(input));
      if (routerStep.grid.kind !== 'fixed') throw new Error('the router grid is fixed');
      pass.dispatchWorkgroups(evalTokenExpr(routerStep.grid.x, tokens));
      pass.end();
      device.queue.submit([encoder.finish()]);
      // The sync this design pays for: the CPU needs the routing before it can schedule experts.
      const ids = new Int32Array(await readBackBytes(device, b.ids, tokens * K * 4));
      const routeWeights = new Float32Array(await readBackBytes(device, b.routeWeights, tokens * K * 4));

      const lists = Array.from({ length: E }, () => ({ index: [] as number[], weight: [] as number[] }));
      ids.forEach((e, slot) => {
        if (e < 0) return;
        lists[e]!.index.push(Math.floor(slot / K));
        lists[e]!.weight.push(routeWeights[slot]!);
      });
      encoder = device.createCommandEncoder();
      encoder.clearBuffer(b.acc, 0, tokens * H * 4);
      pass = encoder.beginComputePass();
      let dispatches = 1;
      lists.forEach((list, e) => {
        const n = list.index.length;
        if (n === 0) return;
        device.queue.writeBuffer(b.tokenIndex, e * stride * 4, new Int32Array(list.index));
        device.queue.writeBuffer(b.tokenWeight, e * stride * 4, new Float32Array(list.weight));
        device.queue.writeBuffer(b.uniforms, e * UNIFORM_STRIDE, new Uint32Array([n, e, 0, 0]));
        const g = groups[e]!;
        const chain: [string, GPUBindGroup, number, number][] = [
          ['gather', gathers[e]!, Math.ceil(H / 64), n],
          ['upProject', g.gate, Math.ceil(I / tile.bn), Math.ceil(n / tile.bm)],
          ['upProject', g.up, Math.ceil(I / tile.bn), Math.ceil(n / tile.bm)],
          ['activate', g.activate, Math.ceil(I / 64), n],
          ['downProject', g.down, Math.ceil(H / tile.bn), Math.ceil(n / tile.bm)],
          ['scatter', g.scatter, Math.ceil(H / 64), n],
        ];
        for (const [name, group, x, y] of chain) {
          pass.setPipeline(pipelines[name]!);
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(x, y);
          dispatches++;
        }
      });
      pass.setPipeline(pipelines['finish']!);
      pass.setBindGroup(0, finishGroup);
      pass.dispatchWorkgroups(Math.ceil(H / 64), tokens);
      pass.end();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      return dispatches + 1;
    },
    destroy() {
      for (const buf of all) buf.destroy();
    },
  };
}
