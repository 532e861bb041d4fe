// The attention kernels against attendToCache (ir/interpret/attention-core.ts) on fresh seeded
// inputs: each case writes its T new key/value rows with kv-cache-write into caches whose unused
// rows are poisoned, then runs prefill and/or decode (partials + merge) on NaN-filled outputs and
// partials. Outputs must match the float64 reference (run on the K/V the cache holds, so f16-rounded
// for an f16 cache) to a relative error under 1e-5; cache rows outside past .. past + T - 1 must
// keep their bits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attentionParamsWords, type AttentionKernel, type AttentionShape, type AttentionTile } from '../../codegen/kernels/attention/attention-shape.js';
import { renderAttentionDecodeKernels, type AttentionDecodeOptions } from '../../codegen/kernels/attention/attention-decode.js';
import { renderAttentionPrefillKernel } from '../../codegen/kernels/attention/attention-prefill.js';
import { kvCacheWords, renderKvCacheWriteKernel } from '../../codegen/kernels/attention/kv-cache-write.js';
import { attendToCache } from '../../ir/interpret/attention-core.js';
import { POISON_BITS_F16, readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { float16BitsToFloat32, float32ToFloat16Bit, float32ToFloat16Bits } from '../../runtime/float16.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { seededRandom } from '../support/seeded-random.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`attention-kernels: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);
const uniform = (lo: number, hi: number) => lo + (hi - lo) * random();
const randomArray = (n: number, amplitude: number) => Float32Array.from({ length: n }, () => uniform(-amplitude, amplitude));

const TOLERANCE = 1e-5;

interface AttentionCase {
  label: string;
  shape: AttentionShape;
  tokens: number;
  past: number;
  prefill?: boolean;
  decode?: boolean;
  prefillTile?: AttentionTile;
  decodeOptions?: AttentionDecodeOptions;
  /** MLA: the attention kernels bind the key cache as the value cache (shape.valueStride = keyDim, one kv head). */
  valuesInKeys?: boolean;
}

/** A shape with the usual scale 1 / sqrt(keyDim), no window, no sinks, an f32 cache. */
function shapeOf(over: Partial<AttentionShape> & Pick<AttentionShape, 'heads' | 'kvHeads' | 'keyDim' | 'context'>): AttentionShape {
  return { valueDim: over.keyDim, scale: 1 / Math.sqrt(over.keyDim), window: 0, sinks: false, cacheDtype: 'f32', ...over };
}

interface Compiled {
  kernel: AttentionKernel;
  pipeline: GPUComputePipeline;
}

async function compile(rt: GpuRuntime, kernel: AttentionKernel): Promise<Compiled> {
  return { kernel, pipeline: await createComputePipelineChecked(rt.device, kernel.kernel.name, kernel.kernel.wgsl, kernel.kernel.entryPoint) };
}

function dispatch(rt: GpuRuntime, pass: GPUComputePassEncoder, { kernel, pipeline }: Compiled, buffers: Record<string, GPUBuffer>, uniformBuffer: GPUBuffer, tokens: number, past: number): void {
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, rt.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      ...kernel.kernel.bindings.map((b) => {
        const buffer = buffers[b.name];
        if (!buffer) throw new Error(`${kernel.kernel.name}: no buffer for binding ${b.name}`);
        return { binding: b.binding, resource: { buffer } };
      }),
      { binding: kernel.kernel.uniformBinding, resource: { buffer: uniformBuffer } },
    ],
  }));
  pass.dispatchWorkgroups(...kernel.grid(tokens, past));
}

/** A cache of [context, width] elements: rows < past hold `history`, the rest poison. Returns its bytes. */
function cacheBytes(shape: AttentionShape, width: number, history: Float32Array): Uint8Array {
  const words = kvCacheWords(shape.context, width, shape.cacheDtype);
  if (shape.cacheDtype === 'f32') {
    const cache = new Float32Array(words).fill(NaN);
    cache.set(history);
    return new Uint8Array(cache.buffer);
  }
  const halves = new Uint16Array(2 * words).fill(POISON_BITS_F16 & 0xffff);
  halves.set(float32ToFloat16Bits(history));
  return new Uint8Array(halves.buffer);
}

/** The cache's elements as f32 (an f16 cache decoded exactly). */
function cacheValues(shape: AttentionShape, bytes: ArrayBuffer, width: number): Float32Array {
  const n = shape.context * width;
  return shape.cacheDtype === 'f32' ? new Float32Array(bytes, 0, n) : float16BitsToFloat32(new Uint16Array(bytes, 0, n));
}

/** Rows outside the new ones keep their bits; new rows hold the input (f16: rounded to a neighbouring half). Returns the f16 roundings that differ from ties-to-even. */
function checkCacheWrite(where: string, shape: AttentionShape, before: Uint8Array, after: ArrayBuffer, fresh: Float32Array, width: number, tokens: number, past: number): number {
  const bytesPerElement = shape.cacheDtype === 'f16' ? 2 : 4;
  const begin = past * width * bytesPerElement;
  const end = (past + tokens) * width * bytesPerElement;
  const got = new Uint8Array(after);
  expect(got.byteLength, `${where}: cache size`).toBe(before.byteLength);
  const untouched = (from: number, to: number) => Buffer.compare(Buffer.from(got.subarray(from, to)), Buffer.from(before.subarray(from, to))) === 0;
  expect(untouched(0, begin), `${where}: cache rows before past changed`).toBe(true);
  expect(untouched(end, got.byteLength), `${where}: cache rows after past + T changed`).toBe(true);
  if (shape.cacheDtype === 'f32') {
    expect(Array.from(new Float32Array(after, begin, tokens * width)), `${where}: written rows`).toEqual(Array.from(fresh));
    return 0;
  }
  const halves = new Uint16Array(after, begin, tokens * width);
  let inexact = 0;
  for (let i = 0; i < fresh.length; i++) {
    const want = float32ToFloat16Bit(fresh[i]!);
    if (halves[i] === want) continue;
    inexact++;
    // WGSL lets f32 -> f16 round either way: the stored half must be a neighbour of the value.
    expect(Math.abs(halves[i]! - want) === 1 && (halves[i]! & 0x8000) === (want & 0x8000), `${where}: element ${i}: half 0x${halves[i]!.toString(16)} for ${fresh[i]}`).toBe(true);
  }
  return inexact;
}

/** MLA: the first valueDim columns of each key row (one kv head). */
function valuesOfKeyRows(keys: Float32Array, shape: AttentionShape): Float32Array {
  const rows = keys.length / shape.keyDim;
  const values = new Float32Array(rows * shape.valueDim);
  for (let j = 0; j < rows; j++) values.set(keys.subarray(j * shape.keyDim, j * shape.keyDim + shape.valueDim), j * shape.valueDim);
  return values;
}

function relativeError(got: Float32Array, want: Float64Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    diff += (got[i]! - want[i]!) ** 2;
    norm += want[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

async function runCase(rt: GpuRuntime, c: AttentionCase): Promise<void> {
  const { shape, tokens, past } = c;
  const { device } = rt;
  const where = `${c.label} (T ${tokens}, past ${past})`;
  if (past + tokens > shape.context) throw new Error(`${where}: past + T exceeds the context ${shape.context}`);
  const keyWidth = shape.kvHeads * shape.keyDim;
  const valueWidth = shape.kvHeads * shape.valueDim;
  // Logits with a spread of a few units, so the softmax is neither flat nor one-hot.
  const q = randomArray(tokens * shape.heads * shape.keyDim, 6 / (shape.scale * Math.sqrt(shape.keyDim)));
  const historyKeys = randomArray(past * keyWidth, 1);
  const historyValues = randomArray(past * valueWidth, 1);
  const newKeys = randomArray(tokens * keyWidth, 1);
  const newValues = randomArray(tokens * valueWidth, 1);
  // Sink logits: most near the scores, some large enough to take most of the softmax.
  const sinks = Float32Array.from({ length: shape.heads }, () => (random() < 0.3 ? uniform(5, 12) : uniform(-3, 3)));

  const keyBefore = cacheBytes(shape, keyWidth, historyKeys);
  const valueBefore = cacheBytes(shape, valueWidth, historyValues);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const poisoned = (words: number) => uploadBytes(device, new Float32Array(words).fill(NaN), usage);
  const outWords = tokens * shape.heads * shape.valueDim;
  const writeBuffers = {
    q: uploadBytes(device, q, usage),
    new_keys: uploadBytes(device, newKeys, usage),
    new_values: uploadBytes(device, newValues, usage),
    key_cache: uploadBytes(device, keyBefore, usage),
    value_cache: uploadBytes(device, valueBefore, usage),
    sinks: uploadBytes(device, sinks, usage),
  };
  // With values in the key rows the kernels read values from key_cache (the write's value cache is unused).
  const buffers = c.valuesInKeys ? { ...writeBuffers, value_cache: writeBuffers.key_cache } : writeBuffers;
  const uniformBuffer = uploadBytes(device, attentionParamsWords(tokens, past), GPUBufferUsage.UNIFORM);
  const created: GPUBuffer[] = [...Object.values(writeBuffers), uniformBuffer];

  const write = await compile(rt, renderKvCacheWriteKernel(shape));
  const prefill = c.prefill ? await compile(rt, renderAttentionPrefillKernel(shape, c.prefillTile)) : undefined;
  const decodeKernels = c.decode ? renderAttentionDecodeKernels(shape, c.decodeOptions) : undefined;
  const decode = decodeKernels && { partials: await compile(rt, decodeKernels.partials), merge: await compile(rt, decodeKernels.merge) };

  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  dispatch(rt, pass, write, writeBuffers, uniformBuffer, tokens, past);
  let prefillOut: GPUBuffer | undefined;
  if (prefill) {
    prefillOut = poisoned(outWords);
    created.push(prefillOut);
    dispatch(rt, pass, prefill, { ...buffers, out: prefillOut }, uniformBuffer, tokens, past);
  }
  let decodeOut: GPUBuffer | undefined;
  if (decode) {
    const words = decodeKernels!.partialWords(tokens);
    const partial = { partial_stats: poisoned(words.stats), partial_acc: poisoned(words.acc) };
    decodeOut = poisoned(outWords);
    created.push(decodeOut, ...Object.values(partial));
    dispatch(rt, pass, decode.partials, { ...buffers, ...partial }, uniformBuffer, tokens, past);
    dispatch(rt, pass, decode.merge, { ...buffers, ...partial, out: decodeOut }, uniformBuffer, tokens, past);
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  await rt.settle();

  const keyAfter = await readBackBytes(device, writeBuffers.key_cache, keyBefore.byteLength);
  const valueAfter = await readBackBytes(device, writeBuffers.value_cache, valueBefore.byteLength);
  const inexact = checkCacheWrite(`${where} key cache`, shape, keyBefore, keyAfter, newKeys, keyWidth, tokens, past) + checkCacheWrite(`${where} value cache`, shape, valueBefore, valueAfter, newValues, valueWidth, tokens, past);

  const positions = Array.from({ length: tokens }, (_, t) => past + t);
  const keyCache = cacheValues(shape, keyAfter, keyWidth).subarray(0, (past + tokens) * keyWidth);
  const valueCache = c.valuesInKeys ? valuesOfKeyRows(keyCache, shape) : cacheValues(shape, valueAfter, valueWidth).subarray(0, (past + tokens) * valueWidth);
  const ref = attendToCache(q, keyCache, valueCache, positions, shape, shape.sinks ? sinks : undefined);
  const errors: string[] = [];
  for (const [path, buffer] of [['prefill', prefillOut], ['decode', decodeOut]] as const) {
    if (!buffer) continue;
    const got = new Float32Array(await readBackBytes(device, buffer, outWords * 4));
    const error = relativeError(got, ref);
    errors.push(`${path} ${error.toExponential(2)}`);
    expect(error, `${where}: ${path} relative error ${error} (seed ${seed})`).toBeLessThan(TOLERANCE);
  }
  const chunks = decodeKernels ? `, ${decodeKernels.chunks} chunks of ${decodeKernels.chunkKeys}` : '';
  const rounding = shape.cacheDtype === 'f16' ? `, f16 writes not ties-to-even: ${inexact}` : '';
  console.log(`${where}${chunks}: ${errors.join(', ')}${rounding}`);
  created.forEach((b) => b.destroy());
}

describe('attention kernels under WebGPU default limits', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true, noOptionalFeatures: true });
  });
  afterAll(() => rt?.destroy());

  it('GQA: 8 heads over 2 kv heads, dim 64, T 1, 7, 37 at past 0 and 50', async () => {
    const shape = shapeOf({ heads: 8, kvHeads: 2, keyDim: 64, context: 100 });
    for (const past of [0, 50]) {
      for (const tokens of [1, 7, 37]) await runCase(rt, { label: 'gqa h8/kv2 d64', shape, tokens, past, prefill: true, decode: tokens <= 8 });
    }
  });

  it('head dim 40 with T 130 (several query tiles), and odd tiles', async () => {
    const shape = shapeOf({ heads: 4, kvHeads: 4, keyDim: 40, context: 150 });
    await runCase(rt, { label: 'mha h4 d40', shape, tokens: 130, past: 0, prefill: true });
    await runCase(rt, { label: 'mha h4 d40, tile 5x7, dim chunk 24, 64 threads', shape, tokens: 61, past: 9, prefill: true, prefillTile: { queryRows: 5, keys: 7, dimChunk: 24, threads: 64 } });
    await runCase(rt, { label: 'mha h4 d40, decode tile 3x5, dim chunk 16, 32 threads', shape, tokens: 6, past: 70, decode: true, decodeOptions: { tile: { queryRows: 3, keys: 5, dimChunk: 16, threads: 32 }, chunkKeys: 29 } });
  });

  it('keyDim 72 != valueDim 40', async () => {
    const shape = shapeOf({ heads: 6, kvHeads: 3, keyDim: 72, valueDim: 40, context: 80 });
    await runCase(rt, { label: 'gqa h6/kv3 k72 v40', shape, tokens: 19, past: 33, prefill: true });
    await runCase(rt, { label: 'gqa h6/kv3 k72 v40', shape, tokens: 3, past: 60, prefill: true, decode: true });
  });

  it('MLA-like absorbed MQA: 4 heads, 1 kv head, keyDim 576, valueDim 512, past ~300, values apart or in the key rows', async () => {
    const shape = shapeOf({ heads: 4, kvHeads: 1, keyDim: 576, valueDim: 512, context: 320, scale: 0.0722 });
    for (const tokens of [1, 5]) await runCase(rt, { label: 'mla k576 v512', shape, tokens, past: 300, prefill: true, decode: true });
    const inKeys = { ...shape, valueStride: shape.keyDim, cacheDtype: 'f16' as const };
    await runCase(rt, { label: 'mla k576 v512, values in the f16 key rows', shape: inKeys, tokens: 3, past: 290, prefill: true, decode: true, valuesInKeys: true });
  });

  it('sliding window 16: prefill T 40, decode at past 100', async () => {
    const shape = shapeOf({ heads: 4, kvHeads: 2, keyDim: 32, context: 128, window: 16 });
    await runCase(rt, { label: 'window 16', shape, tokens: 40, past: 0, prefill: true });
    await runCase(rt, { label: 'window 16', shape, tokens: 40, past: 30, prefill: true });
    for (const tokens of [1, 4]) await runCase(rt, { label: 'window 16, chunks of 48', shape, tokens, past: 100, prefill: true, decode: true, decodeOptions: { chunkKeys: 48 } });
  });

  it('sinks (some large) on prefill and decode, with and without a window', async () => {
    const shape = shapeOf({ heads: 8, kvHeads: 2, keyDim: 64, context: 300, sinks: true });
    await runCase(rt, { label: 'sinks', shape, tokens: 23, past: 10, prefill: true });
    await runCase(rt, { label: 'sinks, chunks of 64', shape, tokens: 3, past: 200, prefill: true, decode: true, decodeOptions: { chunkKeys: 64 } });
    const windowed = { ...shape, window: 40 };
    await runCase(rt, { label: 'sinks + window 40', shape: windowed, tokens: 30, past: 5, prefill: true });
    await runCase(rt, { label: 'sinks + window 40, chunks of 32', shape: windowed, tokens: 2, past: 250, prefill: true, decode: true, decodeOptions: { chunkKeys: 32 } });
  });

  it('decode with a long context: past ~1000, several chunks, boundaries not tile-aligned, dead chunks', async () => {
    const shape = shapeOf({ heads: 8, kvHeads: 2, keyDim: 64, context: 2048 });
    for (const tokens of [1, 4]) await runCase(rt, { label: 'long, chunks of 96', shape, tokens, past: 1003, decode: true, decodeOptions: { chunkKeys: 96 } });
    await runCase(rt, { label: 'long, default chunks', shape, tokens: 2, past: 997, prefill: true, decode: true });
  });

  it('f16 cache: prefill and decode, odd row widths', async () => {
    const gqa = shapeOf({ heads: 8, kvHeads: 2, keyDim: 64, context: 400, cacheDtype: 'f16' });
    await runCase(rt, { label: 'f16 gqa', shape: gqa, tokens: 37, past: 50, prefill: true });
    await runCase(rt, { label: 'f16 gqa, chunks of 128', shape: gqa, tokens: 2, past: 300, prefill: true, decode: true, decodeOptions: { chunkKeys: 128 } });
    const odd = shapeOf({ heads: 3, kvHeads: 1, keyDim: 45, valueDim: 33, context: 64, cacheDtype: 'f16' });
    for (const [tokens, past] of [[7, 13], [1, 0], [1, 12], [4, 30]] as const) await runCase(rt, { label: 'f16 k45 v33', shape: odd, tokens, past, prefill: true, decode: tokens <= 4, decodeOptions: { chunkKeys: 16 } });
  });
});
