// Runs real WGSL through Dawn; without a GPU, on lavapipe (VK_ICD_FILENAMES, see shared/webgpu-on-cpu.md).
import { afterAll, describe, expect, it } from 'vitest';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import {
  createComputePipelineChecked,
  DEFAULT_LIMITS,
  GpuError,
  OPTIONAL_FEATURES,
  openDevice,
  type GpuRuntime,
  type RaisedLimitName,
} from '../../runtime/device.js';
import {
  BufferPool,
  bucketSize,
  poison,
  POISON_BITS,
  readBackF32,
  readBackU32,
  readbackCount,
  ReadbackStaging,
  uploadF32,
} from '../../runtime/buffer-pool.js';

const AXPY_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < params.n) { out[id.x] = a[id.x] * 2.0 + b[id.x]; }
}`;

const runtimes: GpuRuntime[] = [];
afterAll(() => runtimes.forEach((runtime) => runtime.destroy()));

async function open(defaultLimits: boolean): Promise<GpuRuntime> {
  const runtime = await openDevice({ gpu: createNodeGpu(), defaultLimits });
  runtimes.push(runtime);
  return runtime;
}

/** out = 2a + b over n elements, output from the pool, poisoned first; returns out's whole bucket. */
async function runAxpy(runtime: GpuRuntime, pool: BufferPool, n: number) {
  const { device } = runtime;
  const a = Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const b = Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const pipeline = await createComputePipelineChecked(device, 'axpy.wgsl', AXPY_WGSL);
  const aBuffer = uploadF32(device, a, GPUBufferUsage.STORAGE);
  const bBuffer = uploadF32(device, b, GPUBufferUsage.STORAGE);
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([n, 0, 0, 0]));
  const out = pool.acquire(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, 'axpy out');
  poison(device, out, out.size);

  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: aBuffer } },
      { binding: 1, resource: { buffer: bBuffer } },
      { binding: 2, resource: { buffer: out, size: n * 4 } }, // pool buffers are bigger than asked
      { binding: 3, resource: { buffer: params } },
    ],
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  device.queue.submit([encoder.finish()]);

  const before = readbackCount();
  const result = await readBackF32(device, out, n * 4);
  expect(readbackCount()).toBe(before + 1);
  const tail = await readBackU32(device, out, out.size - n * 4, n * 4);
  expect(readbackCount()).toBe(before + 2);
  await runtime.settle();
  for (const buffer of [aBuffer, bBuffer, params]) buffer.destroy();
  return { a, b, out, result, tail };
}

describe('openDevice', () => {
  it('requests no higher limits with defaultLimits: true', async () => {
    const runtime = await open(true);
    for (const name of Object.keys(DEFAULT_LIMITS) as RaisedLimitName[]) {
      expect(runtime.device.limits[name], name).toBe(DEFAULT_LIMITS[name]);
    }
    expect(runtime.info.vendor).toBeTypeOf('string');
    expect(runtime.gpu).toBe(createNodeGpu());
  });

  it("requests the adapter's higher limits and optional features otherwise", async () => {
    const runtime = await open(false);
    for (const name of Object.keys(DEFAULT_LIMITS) as RaisedLimitName[]) {
      expect(runtime.device.limits[name], name).toBe(Math.max(DEFAULT_LIMITS[name], runtime.adapter.limits[name]));
    }
    for (const feature of OPTIONAL_FEATURES) {
      expect(runtime.features.has(feature), feature).toBe(runtime.adapter.features.has(feature));
    }
  });

  for (const defaultLimits of [true, false]) {
    it(`runs a dispatch through the pool, poison and readBack (defaultLimits: ${defaultLimits})`, async () => {
      const runtime = await open(defaultLimits);
      const pool = new BufferPool(runtime.device);
      const n = 1000; // not a multiple of the workgroup size, and less than the 4096-byte bucket
      const { a, b, out, result, tail } = await runAxpy(runtime, pool, n);
      expect(out.size).toBe(4096);
      for (let i = 0; i < n; i++) expect(result[i], `out[${i}]`).toBe(Math.fround(Math.fround(a[i]! * 2) + b[i]!));
      expect([...tail].every((bits) => bits === POISON_BITS)).toBe(true); // the guard left the rest untouched

      pool.release(out);
      expect(pool.acquire(900 * 4, out.usage)).toBe(out); // same bucket and usage: reused
      expect(pool.stats()).toMatchObject({ created: 1, inUse: 1, free: 0, bytes: 4096 });
      expect(() => pool.release(runtime.device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE }))).toThrow(/not acquired from this pool/);
      pool.destroy();
      expect(pool.stats().bytes).toBe(0);
    });
  }
});

describe('GPU errors', () => {
  it('reports WGSL errors with label, line and column', async () => {
    const runtime = await open(true);
    const error = await createComputePipelineChecked(runtime.device, 'broken.wgsl', '@compute @workgroup_size(1)\nfn main() { let x: f32 = 1u; }').catch((e) => e);
    expect(error).toBeInstanceOf(GpuError);
    expect(error.message).toMatch(/^broken\.wgsl:2:\d+: /);
    await expect(createComputePipelineChecked(runtime.device, 'entry.wgsl', AXPY_WGSL, 'nope')).rejects.toThrow(/^entry\.wgsl: /);
    await runtime.settle(); // scoped errors never reach uncapturederror
  });

  it('collects uncaptured errors and throws them from settle()', async () => {
    const runtime = await open(true);
    runtime.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    await expect(runtime.settle()).rejects.toThrow(/1 WebGPU error\(s\):[\s\S]*MapRead/);
    expect(() => runtime.checkErrors()).not.toThrow(); // reported once
  });

  it('validates readBack and poison ranges', async () => {
    const { device } = await open(true);
    const buffer = device.createBuffer({ size: 64, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const before = readbackCount();
    await expect(readBackF32(device, buffer, 6)).rejects.toThrow(RangeError);
    await expect(readBackF32(device, buffer, 128)).rejects.toThrow(/runs past buffer/);
    expect(readbackCount()).toBe(before);
    expect(() => poison(device, buffer, 10)).toThrow(RangeError);
  });
});

describe('ReadbackStaging', () => {
  it('keeps one staging buffer across reads, grows it, and gives overlapping reads their own', async () => {
    const { device } = await open(true);
    const source = uploadF32(device, Float32Array.from({ length: 300 }, (_, i) => i * 0.5), GPUBufferUsage.COPY_SRC);
    const staging = new ReadbackStaging(device, 'test staging');
    const readOnce = async (values: number, offset = 0): Promise<Float32Array> => {
      const encoder = device.createCommandEncoder();
      staging.copyFrom(encoder, source, values * 4, offset * 4);
      device.queue.submit([encoder.finish()]);
      return new Float32Array(await staging.read());
    };
    const before = readbackCount();
    expect([...(await readOnce(3, 7))]).toEqual([3.5, 4, 4.5]);
    expect([...(await readOnce(2))]).toEqual([0, 0.5]); // smaller than the kept buffer
    expect((await readOnce(300))[299]).toBe(149.5); // grows past the first bucket
    // Two reads in flight at once: the second cannot use the mapped buffer and gets a temporary one.
    const [first, second] = await Promise.all([readOnce(4, 10), readOnce(4, 20)]);
    expect([...first]).toEqual([5, 5.5, 6, 6.5]);
    expect([...second]).toEqual([10, 10.5, 11, 11.5]);
    // A copy never read (here: its encoder never submitted) is replaced by the next one.
    staging.copyFrom(device.createCommandEncoder(), source, 8);
    expect([...(await readOnce(1, 3))]).toEqual([1.5]);
    expect(readbackCount()).toBe(before + 6);
    await expect(staging.read()).rejects.toThrow(/read\(\) without copyFrom/);
    staging.destroy();
  });
});

describe('bucketSize', () => {
  it('rounds up to a power of two of at least 256 bytes, within maxBufferSize', () => {
    expect([0, 1, 256, 257, 1000, 4096, 4097].map((n) => bucketSize(n))).toEqual([256, 256, 256, 512, 1024, 4096, 8192]);
    expect(bucketSize(200_000_000, DEFAULT_LIMITS.maxBufferSize)).toBe(2 ** 28); // the bucket still fits
    expect(bucketSize(300_000_000, 400_000_000)).toBe(300_000_000); // 2^29 would exceed the limit
    expect(bucketSize(300_000_001, 400_000_000)).toBe(300_000_256);
    expect(() => bucketSize(-1)).toThrow(RangeError);
  });
});
