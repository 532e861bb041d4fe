// Proves that WGSL runs in headless Chromium's own WebGPU, on a page served from 127.0.0.1,
// checked element by element against the CPU. Later browser tests load compiled bundles the same way.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { launchChromium, serveDirectory, skipBrowserTests, type StaticServer } from './launch-chromium.js';

// The page exposes mulAdd(a, b) -> a * b + 1 computed by a WGSL kernel, or gpuError when WebGPU is missing.
const PAGE = /* html */ `<!doctype html>
<script type="module">
const WGSL = \`
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&y)) { y[id.x] = a[id.x] * b[id.x] + 1.0; }
}\`;
try {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() gave no adapter');
  const device = await adapter.requestDevice();
  const pipeline = device.createComputePipeline({
    layout: 'auto', compute: { module: device.createShaderModule({ code: WGSL }), entryPoint: 'main' } });
  window.adapterInfo = { vendor: adapter.info.vendor, architecture: adapter.info.architecture };
  window.mulAdd = async (aIn, bIn) => {
    const upload = (data, usage) => {
      const buffer = device.createBuffer({ size: data.byteLength, usage, mappedAtCreation: true });
      new Float32Array(buffer.getMappedRange()).set(data);
      buffer.unmap();
      return buffer;
    };
    const n = aIn.length;
    const buffers = [upload(new Float32Array(aIn), GPUBufferUsage.STORAGE), upload(new Float32Array(bIn), GPUBufferUsage.STORAGE),
      upload(new Float32Array(n).fill(NaN), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC)]; // output poisoned
    const readback = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) }));
    pass.dispatchWorkgroups(Math.ceil(n / 64));
    pass.end();
    encoder.copyBufferToBuffer(buffers[2], 0, readback, 0, n * 4);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    return Array.from(new Float32Array(readback.getMappedRange()));
  };
  window.ready = true;
} catch (e) {
  window.gpuError = String(e);
}
</script>`;

describe.skipIf(skipBrowserTests)('headless Chromium WebGPU', () => {
  let dir: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moec-page-'));
    await writeFile(join(dir, 'index.html'), PAGE);
    server = await serveDirectory(dir);
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    await page.goto(server.url);
    // GPU work is asynchronous: wait for the page to say it is done rather than for `load`.
    await page.waitForFunction(() => 'ready' in window || 'gpuError' in window);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('WGSL compute y = a * b + 1 in the page matches the CPU on every element', async () => {
    const gpuError = await page.evaluate(() => (window as unknown as { gpuError?: string }).gpuError);
    expect(gpuError, `page errors: ${pageErrors.join('\n')}`).toBeUndefined();
    const info = await page.evaluate(() => (window as unknown as { adapterInfo: object }).adapterInfo);
    console.log(`chromium webgpu adapter: ${JSON.stringify(info)}`);

    const n = 1000; // not a multiple of the workgroup size (64)
    const a = Array.from(Float32Array.from({ length: n }, () => Math.random() * 4 - 2));
    const b = Array.from(Float32Array.from({ length: n }, () => Math.random() * 4 - 2));
    type MulAdd = (a: number[], b: number[]) => Promise<number[]>;
    const y = await page.evaluate(([a, b]) => (window as unknown as { mulAdd: MulAdd }).mulAdd(a, b), [a, b]);

    expect(y).toHaveLength(n);
    const bad = y.map((_, i) => i).filter((i) => !(Math.abs(y[i] - (a[i] * b[i] + 1)) <= 1e-6 * Math.max(1, Math.abs(a[i] * b[i] + 1))));
    expect(bad.slice(0, 5).map((i) => ({ i, gpu: y[i], cpu: a[i] * b[i] + 1 }))).toEqual([]);
  });
});
