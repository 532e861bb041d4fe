// Routing traces on WebGPU. The trace_routes kernel against the interpreter's moe.trace_routes on
// fresh random ids (null slots and all, several workgroups' worth of tokens) over counters that
// already hold counts; and whole traced models: the counters a prefill, decode steps and a chunk
// leave on the GPU equal the interpreter's (the traced lowered module) and a plain count of the
// model-level graph's route ids, and reset() zeroes them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTraceRoutesKernel } from '../../codegen/kernels/trace-routes/trace-routes.js';
import { compileModel } from '../../compiler/model-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Value } from '../../ir/graph.js';
import { GraphBuilder } from '../../ir/graph-builder.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { TOKENS } from '../../ir/types.js';
import { ropeSpecOf } from '../../passes/lower-attention.js';
import { traceStateName } from '../../passes/trace-routing.js';
import { readBackU32, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createModelExecutor } from '../../runtime/model-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { evalTokenExpr } from '../../runtime/plan.js';
import { buildRopeTable } from '../../runtime/rope-table.js';
import { randomDecoderWeights } from '../support/decoder-weights.js';
import { countRoutesByReference, TracedSession } from '../support/routing-counts.js';
import { seededRandom } from '../support/seeded-random.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');
const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`trace-routes: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

let rt: GpuRuntime;
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
});
afterAll(() => rt?.destroy());

/** Mixed precision's storage orders (ids are positions; the expert at each), here and at the next layer. */
interface StorageOrders {
  here?: number[];
  next?: number[];
}

/** The interpreter's moe.trace_routes on the same ids and starting counters. */
function referenceCounters(ids: Int32Array, k: number, next: { ids: Int32Array; experts: number; k: number } | undefined, experts: number, start: Uint32Array, orders: StorageOrders = {}): number[] {
  const b = new GraphBuilder('trace');
  const tokens = ids.length / k;
  const inputs = [b.input('route_ids', { shape: [TOKENS, k], dtype: 'i32' }), ...(next ? [b.input('next_route_ids', { shape: [TOKENS, next.k], dtype: 'i32' })] : [])];
  const trace = b.state('trace', { shape: [start.length], dtype: 'u32' });
  const attrs = { experts, next_experts: next?.experts ?? 0, ...(orders.here ? { stored_experts: orders.here } : {}), ...(orders.next ? { next_stored_experts: orders.next } : {}) };
  const graph = b.finish([b.op1('moe.trace_routes', [...inputs, trace], attrs, 'traced')]);
  const state = { trace: { shape: [start.length], data: Int32Array.from(start) } };
  const feeds = { route_ids: { shape: [tokens, k], data: ids }, ...(next ? { next_route_ids: { shape: [tokens, next.k], data: next.ids } } : {}) };
  interpretGraph(graph, feeds, () => new Float32Array(), undefined, state);
  return Array.from(state.trace.data);
}

describe('trace_routes kernel', () => {
  const random = seededRandom(seed);
  /** Ids in 0 .. experts - 1, about one slot in six null (-1). */
  const randomIds = (n: number, experts: number) => Int32Array.from({ length: n }, () => (random() < 1 / 6 ? -1 : Math.floor(random() * experts)));

  it.each([1, 5, 37, 300])('T = %i: counts and transitions equal the interpreter\'s, added to the counters (mixed precision\'s storage positions mapped back)', async (tokens) => {
    const [experts, k, nextExperts, nextK] = [5, 3, 7, 2];
    const shuffled = (n: number) => Array.from({ length: n }, (_, i) => i).sort(() => random() - 0.5);
    for (const [withNext, ordered] of [[true, false], [false, false], [true, true], [false, true]] as const) {
      const orders: StorageOrders = ordered ? { here: shuffled(experts), ...(withNext ? { next: shuffled(nextExperts) } : {}) } : {};
      const ids = randomIds(tokens * k, experts);
      const next = withNext ? { ids: randomIds(tokens * nextK, nextExperts), experts: nextExperts, k: nextK } : undefined;
      const size = experts + (next ? experts * nextExperts : 0);
      const start = Uint32Array.from({ length: size }, () => Math.floor(random() * 1000));
      const kernel = renderTraceRoutesKernel({ experts, topK: k, storedExperts: orders.here, ...(next ? { next: { experts: nextExperts, topK: nextK, storedExperts: orders.next } } : {}) });
      const { device } = rt;
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
      const buffers: Record<string, GPUBuffer> = { route_ids: uploadBytes(device, ids, usage), trace: uploadBytes(device, start, usage) };
      if (next) buffers['next_route_ids'] = uploadBytes(device, next.ids, usage);
      const pipeline = await createComputePipelineChecked(device, kernel.kernel.name, kernel.kernel.wgsl, kernel.kernel.entryPoint);
      const uniform = uploadBytes(device, Uint32Array.from(kernel.words, (w) => evalTokenExpr(w, tokens)), GPUBufferUsage.UNIFORM);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [...kernel.kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: buffers[b.name]! } })), { binding: kernel.kernel.uniformBinding, resource: { buffer: uniform } }],
      }));
      pass.dispatchWorkgroups(...kernel.grid(tokens));
      pass.end();
      device.queue.submit([encoder.finish()]);
      const got = Array.from(await readBackU32(device, buffers['trace']!, size * 4));
      expect(got, `${withNext ? 'with' : 'without'} the next layer${ordered ? ', ids as storage positions' : ''}`).toEqual(referenceCounters(ids, k, next, experts, start, orders));
      for (const b of [...Object.values(buffers), uniform]) b.destroy();
    }
  });
});

describe.each([['tiny-mixtral', 2], ['tiny-qwen2-moe', 2], ['tiny-deepseek-v3', 3]] as const)('%s traced on WebGPU', (name, layers) => {
  it('leaves the interpreter\'s counters and the reference\'s route counts after a prefill, decode steps and a chunk; reset zeroes them', async () => {
    const context = 96;
    const source = readFileSync(join(examples, `${name}.moe`), 'utf8').replace('layers = 2', `layers = ${layers}`).replace('compile {', `compile {\n  context = ${context}`);
    const { config, diagnostics } = checkSpec(source, `${name}.moe`);
    expect(diagnostics).toEqual([]);
    const graph = buildModelGraph(config!);
    const weights = randomDecoderWeights(graph, seededRandom(seed));
    const table = buildRopeTable(ropeSpecOf(config!), context);
    const weight = (p: Value) => (p.role === 'rope' ? table : weights.get(p.name)!);
    const { module, plan } = compileModel(config!, { traceRouting: true });
    const ids = Array.from({ length: 80 }, (_, i) => (i * 53 + 7) % 256);
    // 70 tokens: the prefill path over two workgroups of the trace kernel; then the decode path.
    const calls = [ids.slice(0, 70), ids.slice(70, 71), ids.slice(71, 72), ids.slice(72, 75)];
    const moeLayers = moeLayerIndices(config!);
    const reference = countRoutesByReference(graph, weight, moeLayers, config!.moe!.experts, calls);
    const interpreted = new TracedSession(module, weight);
    for (const call of calls) interpreted.forward(call);
    const executor = await createModelExecutor(rt, plan, { readF32: (n) => weights.get(n)! });
    try {
      for (const call of calls) await executor.forward(call);
      for (const [i, layer] of moeLayers.entries()) {
        const got = Array.from(await executor.readState(traceStateName(layer)));
        expect(got, `layer ${layer}: GPU vs interpreter`).toEqual(interpreted.counters(traceStateName(layer)));
        expect(got, `layer ${layer}: GPU vs reference count`).toEqual(reference[i]);
      }
      executor.reset();
      for (const layer of moeLayers) expect((await executor.readState(traceStateName(layer))).every((n) => n === 0)).toBe(true);
      await expect(executor.readState('layers.0.moe.nothing')).rejects.toThrow(/no state layers\.0\.moe\.nothing; states: layers\.0\.kv_cache_k/);
    } finally {
      executor.destroy();
    }
  });
});
