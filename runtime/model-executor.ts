/// <reference types="@webgpu/types" />
// Runs a ModelPlan: a decoder session on the GPU. Weights are uploaded once (weight-upload.ts;
// the rope table is computed here, not read), the KV caches are state buffers zeroed at the
// start of a session, and each call encodes every dispatch of its path into one compute pass
// with the call's token count and first position in the uniforms.
import { poison, POISON_BITS, POISON_BITS_F16, readBackBytes, ReadbackStaging } from './buffer-pool.js';
import { createComputePipelineChecked, GpuError, requireFeatures, type GpuRuntime } from './device.js';
import { float16BitsToFloat32 } from './float16.js';
import { dtypeBytes, evalTokenExpr, modelPathSteps, samplingSteps, type ModelPlan, type PlanBuffer, type PlanStep, type WeightSource } from './plan.js';
import { buildRopeTable } from './rope-table.js';
import { SAMPLE_UNIFORM_BYTES, sampleUniform, type SamplingOptions } from './sampling-options.js';
import { isEncodedSource, uploadWeights, type WeightUploadOptions } from './weight-upload.js';

export interface ModelExecutor {
  readonly plan: ModelPlan;
  /** Positions already in the KV caches: the next call's first position. */
  readonly length: number;
  /** Starts a new session: caches zeroed, length 0. */
  reset(): void;
  /**
   * Runs `ids` at the next positions and returns their logits [ids.length, vocab] (one readback).
   * A call longer than plan.maxTokens runs in pieces (one readback each).
   */
  forward(ids: ArrayLike<number>): Promise<Float32Array>;
  /**
   * Runs `ids` at the next positions and samples the next token from the last one's logits on the
   * GPU: only the 4-byte id is read back. Needs the plan's sampler (f32 logits).
   */
  next(ids: ArrayLike<number>, sampling: SamplingOptions): Promise<number>;
  /** Encodes one call of `ids` (at most plan.maxTokens) after the cached positions; its logits stay in `logitsBuffer()`. */
  encode(encoder: GPUCommandEncoder, ids: ArrayLike<number>): void;
  /** The buffer holding the last call's logits ([T, vocab] f32 or f16 as compiled). */
  logitsBuffer(): GPUBuffer;
  /** Dispatches of one call of `tokens`. */
  dispatchCount(tokens: number): number;
  /**
   * A state buffer as it stands (one readback): a KV cache (f32, f16 widened), or a traced plan's
   * routing counters `layers.L.moe.trace` (u32; zeroed by reset() like every state).
   */
  readState(name: string): Promise<Uint32Array | Float32Array>;
  /** For tests: fills every scratch and output buffer with NaN. */
  poisonScratch(): void;
  destroy(): void;
}

const UNIFORM_BYTES = 16;

function usageOf(role: PlanBuffer['role']): number {
  const { STORAGE, COPY_SRC, COPY_DST, INDIRECT } = GPUBufferUsage;
  return role === 'indirect' ? STORAGE | INDIRECT | COPY_SRC : STORAGE | COPY_SRC | COPY_DST;
}

const bytesOf = (buffer: PlanBuffer, tokens: number): number => Math.max(4, Math.ceil((evalTokenExpr(buffer.elements, tokens) * dtypeBytes(buffer.dtype)) / 4) * 4);

function checkPlan(rt: GpuRuntime, plan: ModelPlan): void {
  if (plan.format !== 'moec.model-plan' || plan.version !== 1) throw new GpuError(`not a version 1 model plan (format ${String(plan.format)}, version ${String(plan.version)})`);
  // No token per call: a prompt would run in pieces of 0 tokens, forever.
  if (!(plan.maxTokens >= 1)) {
    throw new GpuError(`${plan.name}: the plan holds ${plan.maxTokens} tokens per call (its activation buffers do not fit the storage binding limit ` +
      `of ${plan.requires.maxStorageBufferBindingSize} bytes it was compiled for); it cannot run: compile it for a larger limit`);
  }
  requireFeatures(rt, plan.name, plan.features ?? []);
  for (const [name, needed] of Object.entries(plan.requires) as [keyof ModelPlan['requires'], number][]) {
    if (rt.limits[name] < needed) throw new GpuError(`${plan.name}: the plan needs ${name} >= ${needed}, this device has ${rt.limits[name]}`);
  }
}

/** The checkpoint's weights, and the rope table computed from the plan's rope description. */
function withRopeTable(plan: ModelPlan, source: WeightSource): WeightSource {
  const rope = plan.rope;
  if (!rope) return source;
  return {
    ...source,
    readF32: (name, shape, rows) => (name === rope.weight ? buildRopeTable({ kind: rope.kind, params: rope.params, theta: rope.theta, dim: rope.dim }, rope.context) : source.readF32(name, shape, rows)),
    ...(source.sharesStorage ? { sharesStorage: (a: string, b: string) => a !== rope.weight && b !== rope.weight && source.sharesStorage!(a, b) } : {}),
    // A packed directory's buffers pass through as stored (it holds no rope table: that is read above).
    ...(isEncodedSource(source) ? { readBufferWords: source.readBufferWords.bind(source) } : {}),
  };
}

export async function createModelExecutor(rt: GpuRuntime, plan: ModelPlan, weights: WeightSource, options: WeightUploadOptions = {}): Promise<ModelExecutor> {
  checkPlan(rt, plan);
  const { device } = rt;
  const pipelines = new Map<string, GPUComputePipeline>();
  for (const kernel of plan.kernels) pipelines.set(kernel.name, await createComputePipelineChecked(device, `${plan.name}/${kernel.name}`, kernel.wgsl, kernel.entryPoint));
  const weightBuffers = await uploadWeights(rt, plan, withRopeTable(plan, weights), options);
  // Tokens one call holds: longer prompts run in pieces of this many.
  const capacity = Math.min(plan.maxTokens, Math.max(plan.decodeMaxTokens + 1, 256));
  const byName = new Map(plan.buffers.map((b) => [b.name, b]));
  // Activations sized for `capacity` tokens; a larger call runs in pieces of at most capacity.
  const buffers = new Map<string, GPUBuffer>();
  for (const b of plan.buffers) {
    if (b.role === 'weight') continue;
    buffers.set(b.name, device.createBuffer({ label: `${plan.name}/${b.name}`, size: bytesOf(b, capacity), usage: usageOf(b.role) }));
  }
  const resolve = (name: string): GPUBuffer => {
    const buffer = weightBuffers.get(name) ?? buffers.get(name);
    if (!buffer) throw new GpuError(`${plan.name}: no buffer ${name}`);
    return buffer;
  };
  const uniformStride = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
  const steps = Math.max(plan.prefill.length, plan.decode.length);
  const uniforms = device.createBuffer({ label: `${plan.name}/params`, size: steps * uniformStride, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  // Bind groups per path: the buffers never change size, only the uniform words do.
  const bindGroups = new Map<PlanStep[], GPUBindGroup[]>();
  const groupsOf = (path: PlanStep[]): GPUBindGroup[] => {
    let groups = bindGroups.get(path);
    if (groups) return groups;
    groups = path.map((step, i) =>
      device.createBindGroup({
        label: `${plan.name}/${step.label}`,
        layout: pipelines.get(step.kernel)!.getBindGroupLayout(0),
        entries: [
          ...step.bindings.map((b) => ({ binding: b.binding, resource: { buffer: resolve(b.buffer) } })),
          { binding: step.uniform.binding, resource: { buffer: uniforms, offset: i * uniformStride, size: UNIFORM_BYTES } },
        ],
      }),
    );
    bindGroups.set(path, groups);
    return groups;
  };
  const staging = new ReadbackStaging(device, `${plan.name}/logits staging`);
  const sampler = plan.sampler ? await createSampler(rt, plan, buffers.get(plan.logits)!) : undefined;
  const logitsPlan = byName.get(plan.logits)!;
  let length = 0;

  const zeroState = (): void => {
    for (const b of plan.buffers) if (b.role === 'state') device.queue.writeBuffer(buffers.get(b.name)!, 0, new Uint8Array(bytesOf(b, 0)));
  };
  zeroState();

  const checkIds = (ids: ArrayLike<number>): void => {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= plan.vocab) throw new RangeError(`${plan.name}: token ${i} is ${id}, outside the vocabulary 0..${plan.vocab - 1}`);
    }
    if (length + ids.length > plan.context) throw new RangeError(`${plan.name}: ${length} cached + ${ids.length} new tokens is more than the context of ${plan.context} positions (compile { context = N })`);
  };

  const encode = (encoder: GPUCommandEncoder, ids: ArrayLike<number>): void => {
    const tokens = ids.length;
    if (tokens === 0) return;
    if (tokens > capacity) throw new RangeError(`${plan.name}: one call takes at most ${capacity} tokens, not ${tokens}`);
    checkIds(ids);
    const past = length;
    device.queue.writeBuffer(buffers.get(plan.tokenIds)!, 0, Int32Array.from(ids));
    device.queue.writeBuffer(buffers.get(plan.positions)!, 0, Int32Array.from({ length: tokens }, (_, t) => past + t));
    const path = modelPathSteps(plan, tokens);
    const words = new Uint32Array((path.length * uniformStride) / 4);
    path.forEach((step, i) => step.uniform.words.forEach((w, j) => (words[(i * uniformStride) / 4 + j] = evalTokenExpr(w, tokens, past))));
    device.queue.writeBuffer(uniforms, 0, words);
    const groups = groupsOf(path);
    const pass = encoder.beginComputePass({ label: `${plan.name} T=${tokens} past=${past}` });
    path.forEach((step, i) => {
      pass.setPipeline(pipelines.get(step.kernel)!);
      pass.setBindGroup(0, groups[i]!);
      const grid = step.grid;
      if (grid.kind === 'indirect') pass.dispatchWorkgroupsIndirect(buffers.get(grid.buffer)!, grid.offset);
      else {
        const [x, y, z] = [grid.x, grid.y, grid.z].map((e) => evalTokenExpr(e, tokens, past));
        if (x! > 0 && y! > 0 && z! > 0) pass.dispatchWorkgroups(x!, y!, z!);
      }
    });
    pass.end();
    length += tokens;
  };

  const forwardOnce = async (ids: ArrayLike<number>): Promise<Float32Array> => {
    const encoder = device.createCommandEncoder({ label: `${plan.name} forward` });
    encode(encoder, ids);
    staging.copyFrom(encoder, buffers.get(plan.logits)!, bytesOf(logitsPlan, ids.length));
    device.queue.submit([encoder.finish()]);
    const bytes = await staging.read();
    rt.checkErrors();
    const count = ids.length * plan.vocab;
    return logitsPlan.dtype === 'f16' ? float16BitsToFloat32(new Uint16Array(bytes, 0, count)) : new Float32Array(bytes, 0, count).slice();
  };

  const next = async (ids: ArrayLike<number>, sampling: SamplingOptions): Promise<number> => {
    if (!sampler) throw new GpuError(`${plan.name}: the plan has no GPU sampler (its logits are not f32)`);
    if (ids.length === 0) throw new RangeError(`${plan.name}: next() needs at least one token`);
    checkIds(ids);
    // All but the last piece only fill the caches; the last one's final row is sampled.
    const last = Math.floor((ids.length - 1) / capacity) * capacity;
    for (let begin = 0; begin < last; begin += capacity) {
      const encoder = device.createCommandEncoder({ label: `${plan.name} prefill piece` });
      encode(encoder, Array.from({ length: capacity }, (_, i) => ids[begin + i]!));
      device.queue.submit([encoder.finish()]);
    }
    const piece = Array.from({ length: ids.length - last }, (_, i) => ids[last + i]!);
    const encoder = device.createCommandEncoder({ label: `${plan.name} next` });
    encode(encoder, piece);
    sampler.encode(encoder, (piece.length - 1) * plan.vocab, sampling);
    device.queue.submit([encoder.finish()]);
    const id = await sampler.read();
    rt.checkErrors();
    return id;
  };

  return {
    plan,
    next,
    get length() {
      return length;
    },
    reset() {
      zeroState();
      length = 0;
    },
    async forward(ids) {
      checkIds(ids);
      const out = new Float32Array(ids.length * plan.vocab);
      for (let begin = 0; begin < ids.length; begin += capacity) {
        const piece = Array.from({ length: Math.min(capacity, ids.length - begin) }, (_, i) => ids[begin + i]!);
        out.set(await forwardOnce(piece), begin * plan.vocab);
      }
      return out;
    },
    encode,
    logitsBuffer: () => buffers.get(plan.logits)!,
    dispatchCount: (tokens) => modelPathSteps(plan, tokens).length,
    async readState(name) {
      const b = byName.get(name);
      if (!b || b.role !== 'state' || b.dtype === 'i32') throw new GpuError(`${plan.name}: no state ${name}; states: ${plan.buffers.filter((s) => s.role === 'state').map((s) => s.name).join(', ')}`);
      const bytes = await readBackBytes(device, buffers.get(name)!, bytesOf(b, 0));
      rt.checkErrors();
      const count = evalTokenExpr(b.elements, 0);
      if (b.dtype === 'u32') return new Uint32Array(bytes, 0, count);
      return b.dtype === 'f16' ? float16BitsToFloat32(new Uint16Array(bytes, 0, count)) : new Float32Array(bytes, 0, count);
    },
    poisonScratch() {
      for (const b of plan.buffers) {
        if (b.role === 'scratch' || b.role === 'output') poison(device, buffers.get(b.name)!, bytesOf(b, capacity), 0, b.dtype === 'f16' ? POISON_BITS_F16 : POISON_BITS);
      }
    },
    destroy() {
      for (const buffer of [...weightBuffers.values(), ...buffers.values(), uniforms]) buffer.destroy();
      staging.destroy();
      sampler?.destroy();
    },
  };
}

interface Sampler {
  encode(encoder: GPUCommandEncoder, offset: number, sampling: SamplingOptions): void;
  read(): Promise<number>;
  destroy(): void;
}

/** The plan's sampling dispatches over `logits`, their scratch, the 4-byte result and its staging. */
async function createSampler(rt: GpuRuntime, plan: ModelPlan, logits: GPUBuffer): Promise<Sampler> {
  const { device } = rt;
  const spec = plan.sampler!;
  const pipelines = new Map<string, GPUComputePipeline>();
  for (const k of spec.kernels) pipelines.set(k.name, await createComputePipelineChecked(device, `${plan.name}/${k.name}`, k.wgsl, k.entryPoint));
  const scratch = device.createBuffer({ label: `${plan.name}/sample_scratch`, size: Math.max(4, spec.scratchWords * 4), usage: GPUBufferUsage.STORAGE });
  const sampled = device.createBuffer({ label: `${plan.name}/sampled`, size: 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const uniform = device.createBuffer({ label: `${plan.name}/sample params`, size: SAMPLE_UNIFORM_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const staging = new ReadbackStaging(device, `${plan.name}/sampled staging`);
  const named = { logits, sample_scratch: scratch, sampled };
  const groups = spec.steps.map((step) =>
    device.createBindGroup({
      label: `${plan.name}/${step.kernel}`,
      layout: pipelines.get(step.kernel)!.getBindGroupLayout(0),
      entries: [...step.bindings.map((b) => ({ binding: b.binding, resource: { buffer: named[b.name] } })), { binding: step.uniformBinding, resource: { buffer: uniform } }],
    }),
  );
  return {
    encode(encoder, offset, sampling) {
      device.queue.writeBuffer(uniform, 0, sampleUniform({ ...sampling, offset }));
      const pass = encoder.beginComputePass({ label: `${plan.name} sample` });
      for (const i of samplingSteps(spec, sampling)) {
        const step = spec.steps[i]!;
        pass.setPipeline(pipelines.get(step.kernel)!);
        pass.setBindGroup(0, groups[i]!);
        pass.dispatchWorkgroups(...step.grid);
      }
      pass.end();
      staging.copyFrom(encoder, sampled, 4);
    },
    async read() {
      return new Uint32Array(await staging.read())[0]!;
    },
    destroy() {
      for (const b of [scratch, sampled, uniform]) b.destroy();
      staging.destroy();
    },
  };
}
