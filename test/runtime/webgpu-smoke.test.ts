// Proves that real WGSL runs here: Dawn (the `webgpu` package) on whatever Vulkan driver the
// machine has (lavapipe on CI), checked element by element against the CPU.
import { create, globals } from 'webgpu';
import { afterAll, beforeAll, expect, test } from 'vitest';

Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ...
const gpu = create([]); // must outlive every device made from it, or Dawn crashes later (see webgpu-on-cpu.md)

const WORKGROUP = 64;
const N = 1000; // not a multiple of WORKGROUP: the bounds check has to work
const MUL_ADD_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&y)) {
    y[id.x] = a[id.x] * b[id.x] + 1.0;
  }
}`;

let adapter: GPUAdapter;
let device: GPUDevice;

beforeAll(async () => {
  const found = await gpu.requestAdapter();
  if (!found) throw new Error(`no WebGPU adapter (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES}); run \`npm run setup\``);
  adapter = found;
  device = await adapter.requestDevice();
});

afterAll(() => device?.destroy());

test('adapter reports its info and features', () => {
  const { vendor, architecture, device: name, description } = adapter.info;
  console.log(`webgpu adapter: vendor=${vendor} architecture=${architecture} device=${name} (${description})`);
  // Logged, not required: lavapipe has both, SwiftShader lacks shader-f16, real GPUs vary.
  for (const feature of ['timestamp-query', 'shader-f16'] as const) {
    console.log(`webgpu feature ${feature}: ${adapter.features.has(feature) ? 'yes' : 'no'}`);
  }
  expect(vendor.length + architecture.length).toBeGreaterThan(0);
});

test('WGSL compute y = a * b + 1 matches the CPU on every element', async () => {
  const a = Float32Array.from({ length: N }, () => Math.random() * 4 - 2);
  const b = Float32Array.from({ length: N }, () => Math.random() * 4 - 2);

  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: MUL_ADD_WGSL });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const upload = (data: Float32Array, usage: number) => {
    const buffer = device.createBuffer({ size: data.byteLength, usage, mappedAtCreation: true });
    new Float32Array(buffer.getMappedRange()).set(data);
    buffer.unmap();
    return buffer;
  };
  const aBuf = upload(a, GPUBufferUsage.STORAGE);
  const bBuf = upload(b, GPUBufferUsage.STORAGE);
  const yBuf = upload(new Float32Array(N).fill(NaN), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC); // poisoned
  const readback = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [aBuf, bBuf, yBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });

  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(N / WORKGROUP));
  pass.end();
  encoder.copyBufferToBuffer(yBuf, 0, readback, 0, N * 4);
  device.queue.submit([encoder.finish()]);
  expect(await device.popErrorScope()).toBeNull();

  await readback.mapAsync(GPUMapMode.READ);
  const y = new Float32Array(readback.getMappedRange().slice(0));
  readback.unmap();

  // float64 reference; 1e-6 relative covers f32 rounding with or without a fused multiply-add.
  const bad = [...y.keys()].filter((i) => !(Math.abs(y[i] - (a[i] * b[i] + 1)) <= 1e-6 * Math.max(1, Math.abs(a[i] * b[i] + 1))));
  expect(bad.slice(0, 5).map((i) => ({ i, gpu: y[i], cpu: a[i] * b[i] + 1 }))).toEqual([]);
  for (const buffer of [aBuf, bBuf, yBuf, readback]) buffer.destroy();
});
