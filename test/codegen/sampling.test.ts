// The sampling kernels against sampleToken (ir/interpret/sampling.ts): the same id, exactly, on
// fresh seeded logits (distinct values, a few masked), for every mode, several steps, rows read at
// an offset of a [rows, vocab] buffer. The output and the scratch are poisoned before every run,
// the dispatch list is encoded as a runtime would (one pass, only the uniform rewritten per step)
// and only the 4-byte id comes back (the test also peeks at the kernels' key threshold, to compare
// the kept set). A probe shader checks the WGSL arithmetic bit for bit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samplingSteps } from '../../runtime/plan.js';
import { renderSampleKernels, renderSampleMath, sampleUniform, SAMPLE_CUT_WORD, SAMPLE_UNIFORM_BYTES, type SampleKernels } from '../../codegen/kernels/sample/sample.js';
import type { RenderedKernel } from '../../codegen/kernels/kernel.js';
import { f32Bits, gumbelNoise, inverseTemperature, keptTokens, lnF32, MASKED_KEY, massWeight, orderedKey, pcgHash, sampleToken, type SamplingOptions } from '../../ir/interpret/sampling.js';
import { poison, readBackBytes, ReadbackStaging, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { seededRandom } from '../support/seeded-random.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`sampling kernels: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);

/** Gaussian logits (sd 3, some rows with a peaked head), distinct, with `masked` NaN / -inf entries. */
function randomRow(vocab: number, masked: number): Float32Array {
  const row = new Float32Array(vocab);
  const seen = new Set<number>();
  const peak = random() < 0.5 ? 6 * random() : 0;
  for (let i = 0; i < vocab; i++) {
    let x: number;
    do {
      const gaussian = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      x = Math.fround(3 * gaussian + (random() < 0.001 ? peak : 0));
    } while (seen.has(x));
    seen.add(x);
    row[i] = x;
  }
  for (let j = 0; j < masked && vocab > 1; j++) row[Math.floor(random() * vocab)] = j % 2 ? NaN : -Infinity;
  return row;
}

interface CompiledSampler {
  vocab: number;
  sample: SampleKernels;
  pipelines: Map<RenderedKernel, GPUComputePipeline>;
}

async function compile(rt: GpuRuntime, vocab: number): Promise<CompiledSampler> {
  const sample = renderSampleKernels({ vocab });
  const pipelines = new Map<RenderedKernel, GPUComputePipeline>();
  for (const k of sample.kernels) pipelines.set(k, await createComputePipelineChecked(rt.device, k.name, k.wgsl, k.entryPoint));
  return { vocab, sample, pipelines };
}

/** A [rows, vocab] logits buffer bound once; each call rewrites the uniform, as a decode loop does. */
class GpuSampler {
  private readonly buffers: Record<string, GPUBuffer>;
  private readonly uniform: GPUBuffer;
  private readonly bindGroups: Map<RenderedKernel, GPUBindGroup>;
  private readonly staging: ReadbackStaging;

  constructor(
    private readonly rt: GpuRuntime,
    private readonly compiled: CompiledSampler,
    logits: Float32Array,
  ) {
    const { device } = rt;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.buffers = {
      logits: uploadBytes(device, logits, GPUBufferUsage.STORAGE),
      sample_scratch: device.createBuffer({ size: 4 * compiled.sample.scratchWords, usage }),
      sampled: device.createBuffer({ size: 4, usage }),
    };
    this.uniform = device.createBuffer({ size: SAMPLE_UNIFORM_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.bindGroups = new Map([...compiled.pipelines].map(([kernel, pipeline]) => [kernel, device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [...kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: this.buffers[b.name]! } })), { binding: kernel.uniformBinding, resource: { buffer: this.uniform } }],
    })]));
    this.staging = new ReadbackStaging(device, 'sampled id');
  }

  /** The sampled id, and (read separately, for the test only) the key threshold the kernels kept tokens by. */
  async sample(options: SamplingOptions, row: number): Promise<{ id: number; cut: number }> {
    const { device } = this.rt;
    device.queue.writeBuffer(this.uniform, 0, sampleUniform({ ...options, offset: row * this.compiled.vocab }));
    poison(device, this.buffers.sampled!, 4, 0, 0xfffffff0);
    poison(device, this.buffers.sample_scratch!, this.buffers.sample_scratch!.size, 0, 0xa5a5a5a5);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    // Only the phases these options need, as the runtime encodes them (the others would return early).
    const dispatches = this.compiled.sample.dispatches;
    const steps = samplingSteps({ steps: dispatches.map((d) => ({ phase: d.phase === 'always' ? undefined : d.phase })) }, options);
    for (const { kernel, grid } of steps.map((i) => dispatches[i]!)) {
      pass.setPipeline(this.compiled.pipelines.get(kernel)!);
      pass.setBindGroup(0, this.bindGroups.get(kernel)!);
      pass.dispatchWorkgroups(...grid);
    }
    pass.end();
    this.staging.copyFrom(encoder, this.buffers.sampled!, 4);
    device.queue.submit([encoder.finish()]);
    const id = new Uint32Array(await this.staging.read())[0]!;
    const cut = new Uint32Array(await readBackBytes(device, this.buffers.sample_scratch!, 4, 4 * SAMPLE_CUT_WORD))[0]!;
    this.rt.checkErrors();
    return { id, cut };
  }

  destroy(): void {
    [...Object.values(this.buffers), this.uniform].forEach((b) => b.destroy());
    this.staging.destroy();
  }
}

type Case = Omit<SamplingOptions, 'seed' | 'step'>;
const ALL_CASES: Case[] = [
  { temperature: 0, topK: 0, topP: 1 },
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.6, topK: 0, topP: 1 },
  { temperature: 1, topK: 1, topP: 1 },
  { temperature: 1, topK: 5, topP: 1 },
  { temperature: 0.8, topK: 50, topP: 1 },
  { temperature: 1, topK: 0, topP: 0.1 },
  { temperature: 1.3, topK: 0, topP: 0.9 },
  { temperature: 0.7, topK: 50, topP: 0.9 },
  { temperature: 1, topK: 5, topP: 0.5 },
  { temperature: 3, topK: 0, topP: 0.9 }, // a flat softmax: top-p keeps thousands of a large vocab
];

/** Samples every case at several steps from rows of `logits` ([rows, vocab]) on the GPU and in the reference. */
async function expectGpuMatchesReference(rt: GpuRuntime, vocab: number, cases: Case[], logits: Float32Array, steps: number): Promise<void> {
  const rows = logits.length / vocab;
  const sampler = new GpuSampler(rt, await compile(rt, vocab), logits);
  try {
    for (const [c, options] of cases.entries()) {
      for (let row = 0; row < rows; row++) {
        const rowLogits = logits.subarray(row * vocab, (row + 1) * vocab);
        for (let step = 0; step < steps; step++) {
          const o: SamplingOptions = { ...options, seed: 1000 * c + 17 * row, step: step * 3 + row };
          const where = `vocab ${vocab}, row ${row}, ${JSON.stringify(o)}`;
          const kept = keptTokens(rowLogits, o);
          const want = sampleToken(rowLogits, o);
          const { id, cut } = await sampler.sample(o, row);
          if (id !== want) expect.fail(`${where}: gpu ${id}, reference ${want} (of ${kept.length} kept)`);
          if (o.temperature > 0 && orderedKey(rowLogits[kept[0]!]!) > MASKED_KEY) { // sampled, not greedy
            const inv = inverseTemperature(o.temperature);
            const keptByGpu = Array.from(rowLogits.keys()).filter((i) => orderedKey(rowLogits[i]!) > MASKED_KEY && orderedKey(rowLogits[i]! * inv) >= cut);
            if (keptByGpu.length !== kept.length || keptByGpu.some((i, j) => kept[j] !== i)) expect.fail(`${where}: the gpu keeps ${keptByGpu.length} tokens, the reference ${kept.length}`);
          }
        }
      }
    }
  } finally {
    sampler.destroy();
  }
}

/** `rows` fresh random rows of `vocab` logits, with a few masked entries from vocab 16 up. */
function randomRows(vocab: number, rows: number): Float32Array {
  const logits = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) logits.set(randomRow(vocab, Math.min(8, vocab >> 4)), r * vocab);
  return logits;
}

describe('sampling kernels under WebGPU default limits', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
  });
  afterAll(() => rt?.destroy());

  it('the WGSL arithmetic (noise, mass weights, ln, keys, the top-p target) is bit-equal to the reference', async () => {
    const n = 4096;
    const wgsl = `${renderSampleMath()}
@group(0) @binding(0) var<storage, read> probe_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> probe_out: array<u32>;
@group(0) @binding(2) var<uniform> params: SampleParams;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ${n}u) { return; }
  probe_out[4u * i] = bitcast<u32>(gumbel_noise(i));
  probe_out[4u * i + 1u] = mass_weight(probe_in[2u * i], probe_in[2u * i + 1u]);
  probe_out[4u * i + 2u] = bitcast<u32>(ln_f32(abs(probe_in[2u * i]) + 1e-6));
  probe_out[4u * i + 3u] = ordered_key(probe_in[2u * i]);
  let p24 = pcg_hash(i) >> 8u;
  let ceil = scaled_ceil(p24, vec2u(pcg_hash(i + ${n}u), pcg_hash(i + ${2 * n}u) >> 12u));
  probe_out[${4 * n}u + 2u * i] = ceil.x;
  probe_out[${4 * n}u + 2u * i + 1u] = ceil.y;
}`;
    const pipeline = await createComputePipelineChecked(rt.device, 'sample_math_probe', wgsl, 'main');
    const input = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const top = Math.fround(20 * random() - 10);
      input[2 * i + 1] = i % 101 === 0 ? Math.abs(top) : top;
      input[2 * i] = i % 97 === 0 ? top : i % 101 === 0 ? -0 : Math.fround(top - 25 * random() ** 2);
    }
    const options = { temperature: 1, topK: 0, topP: 1, seed: 0xdeadbeef, step: 12345, offset: 0 };
    const { device } = rt;
    const inBuffer = uploadBytes(device, input, GPUBufferUsage.STORAGE);
    const outBuffer = uploadBytes(device, new Uint32Array(6 * n).fill(0xffffffff), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const uniform = uploadBytes(device, new Uint8Array(sampleUniform(options)), GPUBufferUsage.UNIFORM);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [inBuffer, outBuffer, uniform].map((buffer, binding) => ({ binding, resource: { buffer } })) }));
    pass.dispatchWorkgroups(n / 64);
    pass.end();
    device.queue.submit([encoder.finish()]);
    await rt.settle();
    const out = new Uint32Array(await readBackBytes(device, outBuffer, 24 * n));
    [inBuffer, outBuffer, uniform].forEach((b) => b.destroy());
    const mismatches: string[] = [];
    for (let i = 0; i < n; i++) {
      const s = input[2 * i]!;
      const want = [f32Bits(gumbelNoise(options.seed, options.step, i)), massWeight(s, input[2 * i + 1]!), f32Bits(lnF32(Math.fround(Math.abs(s) + Math.fround(1e-6)))), orderedKey(s)];
      want.forEach((w, j) => {
        if (out[4 * i + j] !== w) mismatches.push(`${['noise', 'weight', 'ln', 'key'][j]} of probe ${i} (s ${s}): gpu ${out[4 * i + j]}, reference ${w}`);
      });
    }
    for (let i = 0; i < n; i++) {
      // ceil(p24 Z / 2^24) in BigInt, the top-p target's 96-bit arithmetic.
      const total = BigInt(pcgHash(i + n)) + (BigInt(pcgHash(i + 2 * n) >>> 12) << 32n);
      const want = (BigInt(pcgHash(i) >>> 8) * total + (1n << 24n) - 1n) >> 24n;
      const got = BigInt(out[4 * n + 2 * i]!) + (BigInt(out[4 * n + 2 * i + 1]!) << 32n);
      if (got !== want) mismatches.push(`scaled_ceil of probe ${i}: gpu ${got}, reference ${want}`);
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('vocab 1 and 7: every mode, several steps; masked logits, ties, an all-masked row', async () => {
    await expectGpuMatchesReference(rt, 1, ALL_CASES, randomRows(1, 1), 3);
    const special = Float32Array.from([
      [NaN, 1, -Infinity, 0.5, NaN, 2, -Infinity], // masked entries
      [0.5, 3, 3, -1, 3, 2.5, 3], // the max tied 4 times (greedy: the lowest; top-k 1 keeps all 4)
      [-Infinity, NaN, -Infinity, NaN, -Infinity, -Infinity, NaN], // nothing to sample: id 0
    ].flat());
    const smallCases = [...ALL_CASES, { temperature: 1, topK: 50, topP: 1 }, { temperature: 2, topK: 3, topP: 0.95 }];
    await expectGpuMatchesReference(rt, 7, smallCases, Float32Array.from([...randomRows(7, 2), ...special]), 4);
  });

  it('vocab 1000: every mode, several steps; a 4-way tie at the max', async () => {
    const logits = randomRows(1000, 3);
    const tied = logits.subarray(2000);
    const top = tied.reduce((a, b) => (b > a ? b : a), -Infinity) + 1;
    for (const id of [812, 300, 44, 556]) tied[id] = top; // 44, 300, 556 and 812 share an invocation
    await expectGpuMatchesReference(rt, 1000, [...ALL_CASES, { temperature: 1, topK: 2000, topP: 1 }], logits, 3);
  });

  it('vocab 50257: every mode, several steps', async () => {
    await expectGpuMatchesReference(rt, 50257, ALL_CASES, randomRows(50257, 1), 2);
  });

  it('vocab 151936: every mode', async () => {
    await expectGpuMatchesReference(rt, 151936, ALL_CASES, randomRows(151936, 1), 2);
  });
});
