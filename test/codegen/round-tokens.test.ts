// The token-rounding kernels against roundTokens (ir/interpret/token-rounding.ts) on fresh seeded
// routings with many tied weights and probs, outputs poisoned: ids, weights and extras must be
// bit-equal, the stats' counts equal and their f32 sums close to the float64 reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRoundTokensKernels, roundExtraEntries, roundScratchWords, ROUND_STATS_WORDS, type RoundTokensShape } from '../../codegen/kernels/round-tokens/round-tokens.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { roundTokens, type RoundingMode, type RoundTokensInput } from '../../ir/interpret/token-rounding.js';
import { readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { seededRandom } from '../support/seeded-random.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`round-tokens: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);
const int = (n: number) => Math.floor(random() * n);

/** K distinct experts per token, some slots empty; weights and probs on coarse grids so ties are common. */
function randomRouting(tokens: number, experts: number, topK: number): Pick<RoundTokensInput, 'ids' | 'weights' | 'probs'> {
  const ids = new Int32Array(tokens * topK);
  for (let t = 0; t < tokens; t++) {
    const order = Array.from({ length: experts }, (_, e) => e);
    for (let k = 0; k < topK; k++) {
      const pick = k + int(experts - k);
      [order[k], order[pick]] = [order[pick]!, order[k]!];
      ids[t * topK + k] = random() < 0.1 ? -1 : order[k]!;
    }
  }
  const weights = Float32Array.from(ids, (e) => (e === -1 ? 0 : (1 + int(16)) / 16));
  const probs = Float32Array.from({ length: tokens * experts }, () => (random() < 0.5 ? int(32) / 32 : random()));
  return { ids, weights, probs };
}

interface RoundTokensPipelines {
  shape: RoundTokensShape;
  kernels: { kernel: RenderedKernel; pipeline: GPUComputePipeline }[];
}

async function compile(rt: GpuRuntime, shape: RoundTokensShape): Promise<RoundTokensPipelines> {
  const { decide, apply } = renderRoundTokensKernels(shape);
  const kernels = await Promise.all([decide, apply].map(async (kernel) => ({ kernel, pipeline: await createComputePipelineChecked(rt.device, kernel.name, kernel.wgsl, kernel.entryPoint) })));
  return { shape, kernels };
}

async function runOnGpu(rt: GpuRuntime, { shape, kernels }: RoundTokensPipelines, tokens: number, input: Pick<RoundTokensInput, 'ids' | 'weights' | 'probs'>) {
  const { device } = rt;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const extras = roundExtraEntries(shape.experts, shape.tile);
  const buffers: Record<string, GPUBuffer> = {
    route_ids: uploadBytes(device, Int32Array.from(input.ids), usage),
    route_weights: uploadBytes(device, Float32Array.from(input.weights), usage),
    probs: uploadBytes(device, Float32Array.from(input.probs), usage),
    extra_ids: uploadBytes(device, new Uint32Array(2 * extras).fill(0xffffffff), usage),
    extra_weights: uploadBytes(device, new Float32Array(extras).fill(NaN), usage),
    round_scratch: uploadBytes(device, new Uint32Array(roundScratchWords(shape.experts, shape.tile)), usage), // 0 = "drop slot 0" if never written
    round_stats: uploadBytes(device, new Uint32Array(ROUND_STATS_WORDS).fill(0xffffffff), usage),
  };
  const uniform = uploadBytes(device, Uint32Array.from([tokens, 0, shape.experts, 0]), GPUBufferUsage.UNIFORM);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const [i, { kernel, pipeline }] of kernels.entries()) {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [...kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: buffers[b.name]! } })), { binding: kernel.uniformBinding, resource: { buffer: uniform } }],
    }));
    pass.dispatchWorkgroups(i === 0 ? shape.experts : 1);
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  await rt.settle();
  const read = async (name: string, bytes: number) => readBackBytes(device, buffers[name]!, bytes);
  const out = {
    ids: new Int32Array(await read('route_ids', tokens * shape.topK * 4)),
    weights: new Float32Array(await read('route_weights', tokens * shape.topK * 4)),
    extraIds: new Int32Array(await read('extra_ids', extras * 8)),
    extraWeights: new Float32Array(await read('extra_weights', extras * 4)),
    stats: new Uint32Array(await read('round_stats', ROUND_STATS_WORDS * 4)),
  };
  [...Object.values(buffers), uniform].forEach((b) => b.destroy());
  return out;
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

async function expectKernelMatchesReference(rt: GpuRuntime, compiled: RoundTokensPipelines, tokens: number): Promise<void> {
  const { experts, topK, tile, mode } = compiled.shape;
  const where = `T ${tokens}, E ${experts}, K ${topK}, tile ${tile}, ${mode}`;
  const input = randomRouting(tokens, experts, topK);
  const ref = roundTokens({ tokens, experts, topK, mode, tile, ...input });
  const gpu = await runOnGpu(rt, compiled, tokens, input);
  expect(Array.from(gpu.ids), `${where}: ids`).toEqual(Array.from(ref.ids));
  expect(bits(gpu.weights), `${where}: weights`).toEqual(bits(ref.weights));
  expect(Array.from(gpu.extraIds), `${where}: extra ids`).toEqual(Array.from(ref.extraIds));
  expect(bits(gpu.extraWeights), `${where}: extra weights`).toEqual(bits(ref.extraWeights));
  const { stats } = ref;
  expect(Array.from(gpu.stats.slice(0, 4)), `${where}: stat counts`).toEqual([stats.paddedRowsBefore, stats.paddedRowsAfter, stats.tokensDropped, stats.tokensAdded]);
  const sums = Array.from(new Float32Array(gpu.stats.buffer, 16, 4));
  [stats.droppedWeight, stats.addedWeight, stats.routedWeight, stats.weightMassChanged].forEach((want, i) => {
    expect(Math.abs(sums[i]! - want), `${where}: stat sum ${i} = ${sums[i]}, reference ${want}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
  });
}

describe('round-tokens kernels under WebGPU default limits', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
  });
  afterAll(() => rt?.destroy());

  const modes: RoundingMode[] = ['nearest', 'up', 'down'];
  for (const mode of modes) {
    for (const tile of [4, 16]) {
      it(`${mode}, tile ${tile}: T in 1, 7, 100, 300 x E in 8, 64 x K in 1, 2, 4`, async () => {
        for (const experts of [8, 64]) {
          for (const topK of [1, 2, 4]) {
            const compiled = await compile(rt, { experts, topK, tile, mode });
            for (const tokens of [1, 7, 100, 300]) await expectKernelMatchesReference(rt, compiled, tokens);
          }
        }
      });
    }
  }

  it('many tokens (strided loops) and 1024 experts', async () => {
    await expectKernelMatchesReference(rt, await compile(rt, { experts: 8, topK: 2, tile: 16, mode: 'nearest' }), 5000);
    for (const mode of ['up', 'down'] as const) await expectKernelMatchesReference(rt, await compile(rt, { experts: 1024, topK: 8, tile: 16, mode }), 300);
  });
});
