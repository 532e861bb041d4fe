// The decoder kernels (embed, norm, add, add_norm, attention.prepare, mla.prepare, mla.absorb_q,
// mla.unabsorb) against the CPU interpreter's implementation of their op (a one-op graph run by
// interpretGraph) on fresh seeded inputs, with sizes that are not multiples of any workgroup and
// past > 0. Outputs are poisoned (NaN) before each run; cache rows outside past .. past + T - 1
// are poisoned too and must keep their bits. Relative errors ||out - ref|| / ||ref|| must stay
// under 1e-5 for f32, and under 1e-3 where activations or the cache are f16 (the reference then
// reads the same f16-rounded inputs and rounds its results to f16 as well).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderAttentionPrepareKernel, type AttentionPrepareShape, type QkNorm } from '../../codegen/kernels/attention-prepare/attention-prepare.js';
import { renderMlaPrepareKernel, type MlaPrepareShape } from '../../codegen/kernels/attention-prepare/mla-prepare.js';
import { renderAddKernel } from '../../codegen/kernels/elementwise/add.js';
import type { DecoderKernel } from '../../codegen/kernels/elementwise/decoder-kernel.js';
import { renderEmbedKernel } from '../../codegen/kernels/embed/embed.js';
import type { ActivationDtype } from '../../codegen/kernels/kernel.js';
import { renderMlaAbsorbKernel, renderMlaUnabsorbKernel, type MlaAbsorbShape } from '../../codegen/kernels/mla/mla-absorb.js';
import { renderNormKernel, type NormShape } from '../../codegen/kernels/norm/norm.js';
import type { AttrValue } from '../../ir/graph.js';
import { GraphBuilder } from '../../ir/graph-builder.js';
import type { KindRef } from '../../ir/model-config.js';
import { interpretGraph, type HostTensor } from '../../ir/interpret/interpret.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { TOKENS, type Dim } from '../../ir/types.js';
import { readBackBytes, uploadBytes } from '../../runtime/buffer-pool.js';
import { createComputePipelineChecked, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../runtime/float16.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { evalTokenExpr } from '../../runtime/plan.js';
import { dequantize, packWeight } from '../../runtime/quant/weight-codec.js';
import { describeFormat, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { buildRopeTable, ropeSwitch, ropeTableVariants, type RopeSpec } from '../../runtime/rope-table.js';
import { seededRandom } from '../support/seeded-random.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`decoder-kernels: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);
const random = seededRandom(seed);
const randoms = (n: number, amplitude = 1, offset = 0) => Float32Array.from({ length: n }, () => offset + amplitude * (2 * random() - 1));

type Act = ActivationDtype;
const TOKEN_COUNTS = [1, 5, 37];
const tolerance = (...f16: boolean[]) => (f16.some(Boolean) ? 1e-3 : 1e-5);
const F16_NAN = 0x7e00;

let rt: GpuRuntime;
/** The adapter's own limits: for the one kernel that binds 9 storage buffers (q/k norms without qInPlace). */
let raised: GpuRuntime;
const pipelines = new Map<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu(), defaultLimits: true });
  raised = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => {
  rt?.destroy();
  raised?.destroy();
});

/** The activation dtypes this adapter can run (f16 needs shader-f16). */
const acts = (): Act[] => (rt.features.has('shader-f16') ? ['f32', 'f16'] : ['f32']);

// ---- GPU side ----------------------------------------------------------------------------------

// GPUBufferUsage exists once createNodeGpu() has installed Dawn's globals.
const upload = (data: ArrayBufferView, on = rt) => uploadBytes(on.device, data, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
const actBytes = (values: Float32Array, act: Act): ArrayBufferView => (act === 'f16' ? float32ToFloat16Bits(values) : values);
/** Values as an activation of `act` holds them (f16: rounded to nearest). */
const stored = (values: Float32Array, act: Act): Float32Array => (act === 'f16' ? float16BitsToFloat32(float32ToFloat16Bits(values)) : values);
const poisonedAct = (n: number, act: Act): ArrayBufferView => (act === 'f16' ? new Uint16Array(n).fill(F16_NAN) : new Float32Array(n).fill(NaN));

async function readBytes(buffer: GPUBuffer, byteLength: number, on = rt): Promise<Uint8Array> {
  return new Uint8Array(await readBackBytes(on.device, buffer, Math.ceil(byteLength / 4) * 4)).subarray(0, byteLength);
}

async function readAct(buffer: GPUBuffer, n: number, act: Act, on = rt): Promise<Float32Array> {
  const bytes = (await readBytes(buffer, n * (act === 'f16' ? 2 : 4), on)).slice();
  return act === 'f16' ? float16BitsToFloat32(new Uint16Array(bytes.buffer)) : new Float32Array(bytes.buffer);
}

/** Dispatches `k` once on `buffers` (by binding name) with its Params words evaluated at (tokens, past). */
async function run(k: DecoderKernel, buffers: Record<string, GPUBuffer>, tokens: number, past = 0, on = rt): Promise<void> {
  const { device } = on;
  const cache = pipelines.get(device) ?? new Map<string, Promise<GPUComputePipeline>>();
  pipelines.set(device, cache);
  const key = `${k.kernel.name}\0${k.kernel.wgsl}`;
  if (!cache.has(key)) cache.set(key, createComputePipelineChecked(device, k.kernel.name, k.kernel.wgsl, k.kernel.entryPoint));
  const pipeline = await cache.get(key)!;
  const words = Uint32Array.from(k.words, (e) => evalTokenExpr(e, tokens, past));
  const uniform = uploadBytes(device, words, GPUBufferUsage.UNIFORM);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      ...k.kernel.bindings.map((b) => {
        const buffer = buffers[b.name];
        if (!buffer) throw new Error(`${k.kernel.name}: no buffer for binding ${b.name}`);
        return { binding: b.binding, resource: { buffer } };
      }),
      { binding: k.kernel.uniformBinding, resource: { buffer: uniform } },
    ],
  }));
  pass.dispatchWorkgroups(...k.grid(tokens));
  pass.end();
  device.queue.submit([encoder.finish()]);
  await on.settle();
  uniform.destroy();
}

const destroyAll = (buffers: Record<string, GPUBuffer>) => Object.values(buffers).forEach((b) => b.destroy());

// ---- Reference side ----------------------------------------------------------------------------

/** One operand of the reference op, in the op's input order: a graph input, a param (f32 values, dequantized) or state. */
interface Operand {
  kind: 'input' | 'param' | 'state';
  name: string;
  shape: Dim[];
  dtype?: 'f32' | 'f16' | 'i32';
  data: Float32Array | Int32Array;
  /** The concrete shape (T bound) of an input or state. */
  dims?: number[];
}

/** The op's outputs on the CPU interpreter: a one-op graph of `operands`. */
function reference(opcode: string, attrs: Record<string, AttrValue>, operands: Operand[]): HostTensor[] {
  const b = new GraphBuilder(`${opcode}_reference`);
  const values = operands.map((o) => {
    const type = { shape: o.shape, dtype: o.dtype ?? 'f32' };
    if (o.kind === 'input') return b.input(o.name, type);
    if (o.kind === 'state') return b.state(o.name, type);
    return b.param(o.name, o.shape as number[], 'attention');
  });
  const outputs = b.op(opcode, values, attrs, 'out');
  const graph = b.finish(outputs);
  const tensors = (kind: Operand['kind']) => Object.fromEntries(operands.filter((o) => o.kind === kind).map((o) => [o.name, { shape: o.dims ?? (o.shape as number[]), data: o.data }]));
  const params = new Map(operands.filter((o) => o.kind === 'param').map((o) => [o.name, o.data as Float32Array]));
  const out = interpretGraph(graph, tensors('input'), (p) => params.get(p.name)!, undefined, tensors('state'));
  return outputs.map((v) => out[v.name]!);
}

const rowsInput = (name: string, data: Float32Array, tokens: number, act: Act): Operand => ({ kind: 'input', name, shape: [TOKENS, data.length / tokens], dtype: act, data, dims: [tokens, data.length / tokens] });
const param = (name: string, data: Float32Array, shape: number[] = [data.length]): Operand => ({ kind: 'param', name, shape, data });
const positionsInput = (tokens: number, past: number): Operand => ({ kind: 'input', name: 'positions', shape: [TOKENS], dtype: 'i32', data: Int32Array.from({ length: tokens }, (_, t) => past + t), dims: [tokens] });

/** Compares, records a line for the log, and fails past the tolerance. */
function expectClose(where: string, got: Float32Array, want: Float32Array, limit: number, log: string[]): void {
  const error = relativeError(got, want);
  log.push(`${where} ${error.toExponential(2)}`);
  expect(error, `${where}: relative error ${error} (seed ${seed})`).toBeLessThan(limit);
}

// ---- KV caches ---------------------------------------------------------------------------------

/** A cache of [context, width]: rows < past hold history, every other row poison. Bytes for the GPU, values for the reference. */
function cacheOf(context: number, width: number, past: number, dtype: 'f32' | 'f16'): { bytes: Uint8Array; values: Float32Array } {
  const history = randoms(past * width);
  if (dtype === 'f32') {
    const values = new Float32Array(context * width).fill(NaN);
    values.set(history);
    return { bytes: new Uint8Array(values.buffer), values };
  }
  const halves = new Uint16Array(Math.ceil((context * width) / 2) * 2).fill(F16_NAN);
  halves.set(float32ToFloat16Bits(history));
  return { bytes: new Uint8Array(halves.buffer), values: float16BitsToFloat32(halves.subarray(0, context * width)) };
}

/** Bytes outside rows past .. past + T - 1 keep their bits; the rows themselves are compared with the reference's. */
async function checkCache(where: string, buffer: GPUBuffer, before: Uint8Array, want: Float32Array, width: number, tokens: number, past: number, dtype: 'f32' | 'f16', log: string[], on = rt): Promise<void> {
  const after = await readBytes(buffer, before.byteLength, on);
  const bytes = dtype === 'f16' ? 2 : 4;
  const [begin, end] = [past * width * bytes, (past + tokens) * width * bytes];
  const same = (from: number, to: number) => Buffer.compare(Buffer.from(after.subarray(from, to)), Buffer.from(before.subarray(from, to))) === 0;
  expect(same(0, begin), `${where}: cache rows before past changed`).toBe(true);
  expect(same(end, after.byteLength), `${where}: cache rows after past + T changed`).toBe(true);
  const written = after.slice(begin, end).buffer;
  const got = dtype === 'f16' ? float16BitsToFloat32(new Uint16Array(written)) : new Float32Array(written);
  expectClose(`${where} cache`, got, want.subarray(past * width, (past + tokens) * width), tolerance(dtype === 'f16'), log);
}

/** The past of each token count: past > 0 always, and with ropeSwitch 24 both table variants show (past + T of 4, 16 under it; 41, 56 over). */
const CASES: [tokens: number, past: number][] = [[1, 3], [1, 40], [5, 11], [37, 19]];
const CONTEXT = 64;

const defaultRope = (dim: number): RopeSpec => ({ kind: 'default', params: {}, theta: 10000, dim });
/** LongRoPE switching at call length 24, short and long factors different per pair. */
const longRope = (dim: number): RopeSpec => ({
  kind: 'longrope',
  theta: 10000,
  dim,
  params: {
    original_context: 24,
    short_factor: Array.from({ length: dim / 2 }, (_, i) => 1 + 0.1 * i),
    long_factor: Array.from({ length: dim / 2 }, (_, i) => 2 + 0.5 * i),
    short_mscale: 1,
    long_mscale: 1.2,
  },
});

// ---- The tests ---------------------------------------------------------------------------------

describe('decoder kernels against the interpreter, under WebGPU default limits', () => {
  it('add: width 72 and 1000 (several workgroups), f32 and f16', async () => {
    const log: string[] = [];
    for (const act of acts()) {
      for (const width of [72, 1000]) {
        const kernel = renderAddKernel({ width, act });
        for (const tokens of TOKEN_COUNTS) {
          const [a, b] = [randoms(tokens * width, 4), randoms(tokens * width, 4)];
          const buffers = { a: upload(actBytes(a, act)), b: upload(actBytes(b, act)), y: upload(poisonedAct(tokens * width, act)) };
          await run(kernel, buffers, tokens);
          const [want] = reference('add', {}, [rowsInput('a', a, tokens, act), rowsInput('b', b, tokens, act)]);
          expectClose(`add ${act} w${width} T${tokens}`, await readAct(buffers.y, tokens * width, act), want!.data as Float32Array, tolerance(act === 'f16'), log);
          destroyAll(buffers);
        }
      }
    }
    console.log(log.join('\n'));
  });

  it('norm: rmsnorm 72 and 12 (q_a), layernorm 72 with bias and 300 without, f32 and f16', async () => {
    const log: string[] = [];
    const shapes: Omit<NormShape, 'act'>[] = [
      { width: 72, norm: 'rmsnorm', eps: 1e-6, bias: false },
      { width: 12, norm: 'rmsnorm', eps: 1e-6, bias: false },
      { width: 72, norm: 'layernorm', eps: 1e-5, bias: true },
      { width: 300, norm: 'layernorm', eps: 1e-5, bias: false },
    ];
    for (const act of acts()) {
      for (const s of shapes) {
        const kernel = renderNormKernel({ ...s, act });
        const normKind: KindRef = { kind: s.norm, params: s.norm === 'layernorm' ? { eps: s.eps, bias: s.bias } : { eps: s.eps } };
        for (const tokens of TOKEN_COUNTS) {
          // LayerNorm rows off-centre, so subtracting the mean matters.
          const x = randoms(tokens * s.width, 3, s.norm === 'layernorm' ? 5 : 0);
          const weight = randoms(s.width, 0.5, 1);
          const bias = randoms(s.width, 0.5);
          const buffers: Record<string, GPUBuffer> = { x: upload(actBytes(x, act)), weight: upload(weight), y: upload(poisonedAct(tokens * s.width, act)) };
          if (s.bias) buffers['bias'] = upload(bias);
          await run(kernel, buffers, tokens);
          const [want] = reference('norm', { norm: normKind }, [rowsInput('x', x, tokens, act), param('weight', weight), ...(s.bias ? [param('bias', bias)] : [])]);
          expectClose(`${s.norm} ${act} w${s.width}${s.bias ? ' bias' : ''} T${tokens}`, await readAct(buffers['y']!, tokens * s.width, act), want!.data as Float32Array, tolerance(act === 'f16'), log);
          destroyAll(buffers);
        }
      }
    }
    console.log(log.join('\n'));
  });

  it('add_norm: the residual sum and its rmsnorm / layernorm (with bias), as add then norm, f32 and f16', async () => {
    const log: string[] = [];
    const shapes: Omit<NormShape, 'act'>[] = [
      { width: 72, norm: 'rmsnorm', eps: 1e-6, bias: false },
      { width: 300, norm: 'layernorm', eps: 1e-5, bias: true },
      { width: 1000, norm: 'rmsnorm', eps: 1e-5, bias: false }, // rows longer than the workgroup
    ];
    for (const act of acts()) {
      for (const s of shapes) {
        const kernel = renderNormKernel({ ...s, act, add: true });
        const normKind: KindRef = { kind: s.norm, params: s.norm === 'layernorm' ? { eps: s.eps, bias: s.bias } : { eps: s.eps } };
        for (const tokens of TOKEN_COUNTS) {
          const [a, b] = [randoms(tokens * s.width, 3, s.norm === 'layernorm' ? 5 : 0), randoms(tokens * s.width, 3)];
          const [weight, bias] = [randoms(s.width, 0.5, 1), randoms(s.width, 0.5)];
          const buffers: Record<string, GPUBuffer> = {
            a: upload(actBytes(a, act)), b: upload(actBytes(b, act)), weight: upload(weight),
            sum: upload(poisonedAct(tokens * s.width, act)), y: upload(poisonedAct(tokens * s.width, act)),
          };
          if (s.bias) buffers['bias'] = upload(bias);
          await run(kernel, buffers, tokens);
          const [sum, y] = reference('add_norm', { norm: normKind }, [rowsInput('a', a, tokens, act), rowsInput('b', b, tokens, act), param('weight', weight), ...(s.bias ? [param('bias', bias)] : [])]);
          const where = `add_norm ${s.norm} ${act} w${s.width}${s.bias ? ' bias' : ''} T${tokens}`;
          expectClose(`${where} sum`, await readAct(buffers['sum']!, tokens * s.width, act), sum!.data as Float32Array, tolerance(act === 'f16'), log);
          expectClose(`${where} y`, await readAct(buffers['y']!, tokens * s.width, act), y!.data as Float32Array, tolerance(act === 'f16'), log);
          destroyAll(buffers);
        }
      }
    }
    console.log(log.join('\n'));
  });

  it('embed: vocab 50 x hidden 72 in f32, f16, bf16, int8, int4 (and mxfp4 at hidden 96); ids outside the vocabulary give zeros', async () => {
    const log: string[] = [];
    const vocab = 50;
    const formats: [WeightFormat, number][] = [
      [{ format: 'f32' }, 72], [{ format: 'f16' }, 72], [{ format: 'bf16' }, 72],
      [{ format: 'int8', group: 36 }, 72], [{ format: 'int4', group: 24 }, 72], [{ format: 'mxfp4', group: 32 }, 96],
    ];
    for (const act of acts()) {
      for (const [format, hidden] of formats) {
        const kernel = renderEmbedKernel({ vocab, hidden, format, act });
        const table = randoms(vocab * hidden, 2);
        const tableBuffer = upload(packWeight(format, table, [vocab, hidden]));
        const decoded = dequantize(format, table, [vocab, hidden]);
        for (const tokens of TOKEN_COUNTS) {
          const ids = Int32Array.from({ length: tokens }, () => Math.floor(random() * vocab));
          // Out-of-range ids (the runtime rejects them): on the GPU their rows must be zeros.
          const bad = tokens > 1 ? [0, tokens - 1] : [];
          const gpuIds = Int32Array.from(ids, (id, t) => (t === 0 && bad.length ? -1 : t === tokens - 1 && bad.length ? vocab : id));
          const buffers = { ids: upload(gpuIds), table: tableBuffer, y: upload(poisonedAct(tokens * hidden, act)) };
          await run(kernel, buffers, tokens);
          const [ref] = reference('embed', act === 'f16' ? { dtype: 'f16' } : {}, [
            { kind: 'input', name: 'ids', shape: [TOKENS], dtype: 'i32', data: ids, dims: [tokens] },
            param('table', decoded, [vocab, hidden]),
          ]);
          const want = Float32Array.from(ref!.data);
          for (const t of bad) want.fill(0, t * hidden, (t + 1) * hidden);
          expectClose(`embed ${describeFormat(format)} ${act} T${tokens}`, await readAct(buffers.y, tokens * hidden, act), want, tolerance(act === 'f16'), log);
          buffers.ids.destroy();
          buffers.y.destroy();
        }
        tableBuffer.destroy();
      }
    }
    console.log(log.join('\n'));
  });

  interface PrepareCase {
    heads: number;
    kvHeads: number;
    qkNorm: QkNorm;
    clip: number;
    cacheDtype: 'f32' | 'f16';
    act: Act;
    rope: 'default' | 'longrope';
    qInPlace: boolean;
  }

  async function runAttentionPrepare(c: PrepareCase, log: string[]): Promise<void> {
    const headDim = 18;
    const spec = c.rope === 'longrope' ? longRope(headDim) : defaultRope(headDim);
    const shape: AttentionPrepareShape = { heads: c.heads, kvHeads: c.kvHeads, headDim, context: CONTEXT, qkNorm: c.qkNorm, eps: 1e-5, clip: c.clip, ropeSwitch: ropeSwitch(spec), cacheDtype: c.cacheDtype, act: c.act, qInPlace: c.qInPlace };
    const kernel = renderAttentionPrepareKernel(shape);
    // Separate q_roped with q/k norms binds 9 storage buffers: that one runs with the adapter's limits.
    const storageBuffers = kernel.kernel.bindings.length;
    expect(storageBuffers).toBe(7 + (c.qkNorm === 'none' ? 0 : 2) - (c.qInPlace ? 1 : 0));
    const on = storageBuffers > 8 ? raised : rt;
    const table = buildRopeTable(spec, CONTEXT);
    const [qWidth, kvWidth] = [c.heads * headDim, c.kvHeads * headDim];
    const whole = c.qkNorm === 'projection';
    const qNorm = randoms(whole ? qWidth : headDim, 0.3, 1);
    const kNorm = randoms(whole ? kvWidth : headDim, 0.3, 1);
    for (const [tokens, past] of CASES) {
      const where = `attention.prepare h${c.heads}/kv${c.kvHeads} ${c.qkNorm}${c.clip ? ` clip ${c.clip}` : ''} ${c.rope} cache ${c.cacheDtype} act ${c.act}${c.qInPlace ? ' q in place' : ''} T${tokens} past ${past}`;
      const [q, k, v] = [randoms(tokens * qWidth, 3), randoms(tokens * kvWidth, 3), randoms(tokens * kvWidth, 3)];
      const cacheK = cacheOf(CONTEXT, kvWidth, past, c.cacheDtype);
      const cacheV = cacheOf(CONTEXT, kvWidth, past, c.cacheDtype);
      const put = (data: ArrayBufferView) => upload(data, on);
      const buffers: Record<string, GPUBuffer> = {
        q: put(actBytes(q, c.act)), k: put(actBytes(k, c.act)), v: put(actBytes(v, c.act)),
        cache_k: put(cacheK.bytes), cache_v: put(cacheV.bytes), rope_table: put(table),
        ...(c.qInPlace ? {} : { q_roped: put(poisonedAct(tokens * qWidth, c.act)) }),
        ...(c.qkNorm === 'none' ? {} : { q_norm: put(qNorm), k_norm: put(kNorm) }),
      };
      await run(kernel, buffers, tokens, past, on);
      const attrs = { heads: c.heads, kv_heads: c.kvHeads, head_dim: headDim, qk_norm: c.qkNorm, eps: shape.eps, clip: c.clip, rope_switch: shape.ropeSwitch };
      const cache = (name: string, data: Float32Array): Operand => ({ kind: 'state', name, shape: [CONTEXT, kvWidth], dtype: c.cacheDtype, data, dims: [CONTEXT, kvWidth] });
      const [wantQ, wantK, wantV] = reference('attention.prepare', attrs, [
        rowsInput('q', q, tokens, c.act), rowsInput('k', k, tokens, c.act), rowsInput('v', v, tokens, c.act), positionsInput(tokens, past),
        cache('cache_k', cacheK.values), cache('cache_v', cacheV.values),
        param('rope_table', table, [ropeTableVariants(spec), CONTEXT, headDim]),
        ...(c.qkNorm === 'none' ? [] : [param('q_norm', qNorm), param('k_norm', kNorm)]),
      ]);
      const gotQ = await readAct(buffers[c.qInPlace ? 'q' : 'q_roped']!, tokens * qWidth, c.act, on);
      expectClose(`${where}: q`, gotQ, wantQ!.data as Float32Array, tolerance(c.act === 'f16'), log);
      await checkCache(`${where}: k`, buffers['cache_k']!, cacheK.bytes, wantK!.data as Float32Array, kvWidth, tokens, past, c.cacheDtype, log, on);
      await checkCache(`${where}: v`, buffers['cache_v']!, cacheV.bytes, wantV!.data as Float32Array, kvWidth, tokens, past, c.cacheDtype, log, on);
      destroyAll(buffers);
    }
  }

  it('attention.prepare: heads 3 / kv 1 and 3 of 18, qk_norm none / head / projection, clip, f32 and f16 caches, longrope, q in place', async () => {
    const log: string[] = [];
    const cases: PrepareCase[] = [
      { heads: 3, kvHeads: 1, qkNorm: 'none', clip: 0, cacheDtype: 'f32', act: 'f32', rope: 'default', qInPlace: false },
      { heads: 3, kvHeads: 1, qkNorm: 'none', clip: 1.2, cacheDtype: 'f16', act: 'f32', rope: 'longrope', qInPlace: true },
      { heads: 3, kvHeads: 1, qkNorm: 'head', clip: 1.2, cacheDtype: 'f32', act: 'f32', rope: 'longrope', qInPlace: true },
      { heads: 3, kvHeads: 3, qkNorm: 'projection', clip: 1.2, cacheDtype: 'f16', act: 'f32', rope: 'default', qInPlace: true },
      { heads: 3, kvHeads: 1, qkNorm: 'projection', clip: 0, cacheDtype: 'f32', act: 'f32', rope: 'longrope', qInPlace: false },
      { heads: 3, kvHeads: 1, qkNorm: 'projection', clip: 0, cacheDtype: 'f32', act: 'f16', rope: 'longrope', qInPlace: true },
      { heads: 3, kvHeads: 3, qkNorm: 'head', clip: 1.2, cacheDtype: 'f16', act: 'f16', rope: 'default', qInPlace: true },
    ];
    for (const c of cases) if (acts().includes(c.act)) await runAttentionPrepare(c, log);
    console.log(log.join('\n'));
  });

  interface MlaPrepareCase {
    qInPlace?: boolean;
    kvRank: number;
    interleaved: boolean;
    cacheDtype: 'f32' | 'f16';
    act: Act;
    rope: 'default' | 'longrope';
  }

  async function runMlaPrepare(c: MlaPrepareCase, log: string[]): Promise<void> {
    const [heads, nope, rope] = [3, 10, 12];
    const spec = c.rope === 'longrope' ? longRope(rope) : defaultRope(rope);
    const shape: MlaPrepareShape = { heads, nope, rope, kvRank: c.kvRank, context: CONTEXT, eps: 1e-6, ropeSwitch: ropeSwitch(spec), interleaved: c.interleaved, cacheDtype: c.cacheDtype, act: c.act, qInPlace: c.qInPlace === true };
    const kernel = renderMlaPrepareKernel(shape);
    const table = buildRopeTable(spec, CONTEXT);
    const [qWidth, width] = [heads * (nope + rope), c.kvRank + rope];
    const norm = randoms(c.kvRank, 0.3, 1);
    for (const [tokens, past] of CASES) {
      const where = `mla.prepare rank ${c.kvRank}${c.interleaved ? ' interleaved' : ' halves'} ${c.rope} cache ${c.cacheDtype} act ${c.act}${c.qInPlace ? ' q in place' : ''} T${tokens} past ${past}`;
      const [q, kv] = [randoms(tokens * qWidth, 3), randoms(tokens * width, 3)];
      const cache = cacheOf(CONTEXT, width, past, c.cacheDtype);
      const buffers: Record<string, GPUBuffer> = {
        q: upload(actBytes(q, c.act)), kv: upload(actBytes(kv, c.act)), cache_k: upload(cache.bytes), rope_table: upload(table),
        kv_a_norm: upload(norm), ...(c.qInPlace ? {} : { q_roped: upload(poisonedAct(tokens * qWidth, c.act)) }),
      };
      await run(kernel, buffers, tokens, past);
      const attrs = { heads, nope, rope, kv_rank: c.kvRank, eps: shape.eps, rope_switch: shape.ropeSwitch, interleaved: c.interleaved };
      const [wantQ, wantCache] = reference('mla.prepare', attrs, [
        rowsInput('q', q, tokens, c.act), rowsInput('kv', kv, tokens, c.act), positionsInput(tokens, past),
        { kind: 'state', name: 'cache_k', shape: [CONTEXT, width], dtype: c.cacheDtype, data: cache.values, dims: [CONTEXT, width] },
        param('rope_table', table, [ropeTableVariants(spec), CONTEXT, rope]), param('kv_a_norm', norm),
      ]);
      expectClose(`${where}: q`, await readAct(buffers[c.qInPlace ? 'q' : 'q_roped']!, tokens * qWidth, c.act), wantQ!.data as Float32Array, tolerance(c.act === 'f16'), log);
      await checkCache(`${where}: kv`, buffers['cache_k']!, cache.bytes, wantCache!.data as Float32Array, width, tokens, past, c.cacheDtype, log);
      destroyAll(buffers);
    }
  }

  it('mla.prepare: heads 3, nope 10, rope 12, kv_rank 36 (and 35: odd f16 rows share words), interleaved and halves, longrope', async () => {
    const log: string[] = [];
    const cases: MlaPrepareCase[] = [
      { kvRank: 36, interleaved: true, cacheDtype: 'f32', act: 'f32', rope: 'default' },
      { kvRank: 36, interleaved: false, cacheDtype: 'f32', act: 'f32', rope: 'longrope' },
      { kvRank: 36, interleaved: true, cacheDtype: 'f16', act: 'f32', rope: 'longrope' },
      { kvRank: 35, interleaved: false, cacheDtype: 'f16', act: 'f32', rope: 'default' },
      { kvRank: 35, interleaved: true, cacheDtype: 'f16', act: 'f16', rope: 'longrope', qInPlace: true },
      { kvRank: 36, interleaved: false, cacheDtype: 'f32', act: 'f32', rope: 'longrope', qInPlace: true },
      { kvRank: 36, interleaved: false, cacheDtype: 'f32', act: 'f16', rope: 'default' },
    ];
    for (const c of cases) if (acts().includes(c.act)) await runMlaPrepare(c, log);
    console.log(log.join('\n'));
  });

  it('mla.absorb_q and mla.unabsorb: kv_b in f32, bf16, int8, int4; heads 3 / nope 10 / rope 12 / rank 36 / v 14, and a shape past one tile (nope 40, rank 70, v 40)', async () => {
    const log: string[] = [];
    const shapes: Omit<MlaAbsorbShape, 'act' | 'format'>[] = [
      { heads: 3, nope: 10, rope: 12, kvRank: 36, valueDim: 14 },
      { heads: 2, nope: 40, rope: 6, kvRank: 70, valueDim: 40 },
    ];
    const formats = (rank: number): WeightFormat[] => [{ format: 'f32' }, { format: 'bf16' }, { format: 'int8', group: rank / 2 }, { format: 'int4', group: rank / 2 }];
    for (const act of acts()) {
      for (const s of shapes) {
        for (const format of formats(s.kvRank)) {
          const shape = { ...s, format, act };
          const [absorb, unabsorb] = [renderMlaAbsorbKernel(shape), renderMlaUnabsorbKernel(shape)];
          const kvBShape = [s.heads * (s.nope + s.valueDim), s.kvRank];
          const kvB = randoms(kvBShape[0]! * kvBShape[1]!, 0.5);
          const kvBBuffer = upload(packWeight(format, kvB, kvBShape));
          const kvBValues = param('kv_b', dequantize(format, kvB, kvBShape), kvBShape);
          const attrs = { heads: s.heads, nope: s.nope, rope: s.rope, kv_rank: s.kvRank, value_dim: s.valueDim };
          for (const tokens of TOKEN_COUNTS) {
            const where = `h${s.heads} n${s.nope} r${s.rope} rank ${s.kvRank} v${s.valueDim} kv_b ${describeFormat(format)} act ${act} T${tokens}`;
            const q = randoms(tokens * s.heads * (s.nope + s.rope), 2);
            const attended = randoms(tokens * s.heads * s.kvRank, 1);
            const absorbedWidth = s.heads * (s.kvRank + s.rope);
            const yWidth = s.heads * s.valueDim;
            const buffers = {
              q: upload(actBytes(q, act)), attended: upload(actBytes(attended, act)), kv_b: kvBBuffer,
              q_absorbed: upload(poisonedAct(tokens * absorbedWidth, act)), y: upload(poisonedAct(tokens * yWidth, act)),
            };
            await run(absorb, buffers, tokens);
            await run(unabsorb, buffers, tokens);
            const [wantAbsorbed] = reference('mla.absorb_q', attrs, [rowsInput('q', q, tokens, act), kvBValues]);
            const [wantY] = reference('mla.unabsorb', attrs, [rowsInput('attended', attended, tokens, act), kvBValues]);
            // ops-attention.ts infers f32 outputs for these two whatever the activations; the kernels store `act`.
            expectClose(`mla.absorb_q ${where}`, await readAct(buffers.q_absorbed, tokens * absorbedWidth, act), stored(wantAbsorbed!.data as Float32Array, act), tolerance(act === 'f16'), log);
            expectClose(`mla.unabsorb ${where}`, await readAct(buffers.y, tokens * yWidth, act), stored(wantY!.data as Float32Array, act), tolerance(act === 'f16'), log);
            [buffers.q, buffers.attended, buffers.q_absorbed, buffers.y].forEach((b) => b.destroy());
          }
          kvBBuffer.destroy();
        }
      }
    }
    console.log(log.join('\n'));
  });
});
