/// <reference types="@webgpu/types" />
// Runs a MoeBlockPlan: compiles its kernels, uploads its weights (weight-upload.ts: read shard by
// shard, packed into each weight's storage format by runtime/quant), and per call encodes every
// dispatch of the path chosen by the token count into one compute pass.
// Nothing is read back between router and combine; run() reads the block output once (once per
// piece of at most plan.maxTokens tokens when a batch is larger).
import { poison, POISON_BITS, POISON_BITS_F16, ReadbackStaging, uploadU32 } from './buffer-pool.js';
import { createComputePipelineChecked, GpuError, requireFeatures, type GpuRuntime } from './device.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from './float16.js';
import { dtypeBytes, evalTokenExpr, pathSteps, type MoeBlockPlan, type PlanBuffer, type PlanStep, type WeightSource } from './plan.js';
import { uploadWeights, type WeightUploadOptions } from './weight-upload.js';

export interface MoeBlockExecutor {
  readonly plan: MoeBlockPlan;
  /**
   * hidden: [tokens, hidden] f32. Uploads, runs every dispatch in one submit, reads the output back once.
   * A batch of more than plan.maxTokens (what the binding limits let one run hold) runs as
   * consecutive runs of at most maxTokens tokens, one readback each: tokens are independent here.
   */
  run(hidden: Float32Array, tokens: number): Promise<Float32Array>;
  /**
   * Encodes the block reading `input` and writing `output` (both [tokens, hidden], STORAGE usage, in
   * the plan's activation dtype: f16 when it was compiled with `dtype = f16`), for at most
   * plan.maxTokens tokens.
   * Submit the encoder before awaiting anything: buffers it uses that a later call retires (outgrown
   * activations, evicted uniforms) are destroyed once the queue has finished the work submitted so far.
   */
  encode(encoder: GPUCommandEncoder, input: GPUBuffer, output: GPUBuffer, tokens: number): void;
  /** Dispatches run() makes for `tokens` (decode path up to plan.decodeMaxTokens, prefill above; summed over the pieces of a batch above plan.maxTokens). */
  dispatchCount(tokens: number): number;
  /** Sizes the activation buffers for up to `tokens` (encode() does it on demand; growing replaces buffers). */
  reserve(tokens: number): void;
  /** For tests: fills every scratch and output buffer, sized for `tokens`, with NaN. */
  poisonScratch(tokens: number): void;
  /** For tests and debugging: the GPU buffer behind a non-weight plan buffer (valid until buffers grow). */
  scratchBuffer(name: string): GPUBuffer;
  /** For tests: what the caches hold now, and how many retired buffers still wait for the queue. */
  stats(): ExecutorStats;
  destroy(): void;
}

export interface ExecutorStats {
  /** Token counts with a uniform buffer (and bind groups) cached; at most TOKEN_COUNT_CACHE. */
  tokenCounts: number;
  /** Cached bind-group sets, over all token counts. */
  bindGroupSets: number;
  /** Outgrown activation buffers and evicted uniform buffers not destroyed yet. */
  retiredBuffers: number;
}

const UNIFORM_BYTES = 16;
/** Token counts whose uniform buffer and bind groups stay cached. */
const TOKEN_COUNT_CACHE = 64;
/** Bind-group sets per token count, one per (input, output) pair seen. */
const BIND_GROUPS_PER_TOKEN_COUNT = 4;

/** A token count's uniform buffer and the bind groups that reference it, evicted together. */
interface TokenCountEntry {
  uniform: GPUBuffer;
  /** By `${input id}/${output id}`; cleared when the activation buffers grow. */
  bindGroups: Map<string, GPUBindGroup[]>;
}

// A function, not a table: in Node GPUBufferUsage exists only once createNodeGpu() has run.
function usageOf(role: PlanBuffer['role']): number {
  const { STORAGE, COPY_SRC, COPY_DST, INDIRECT } = GPUBufferUsage;
  switch (role) {
    case 'input':
      return STORAGE | COPY_DST;
    case 'indirect':
      return STORAGE | INDIRECT | COPY_SRC;
    default:
      return STORAGE | COPY_SRC | COPY_DST;
  }
}

function checkPlan(rt: GpuRuntime, plan: MoeBlockPlan): void {
  if (plan.format !== 'moec.moe-block-plan' || plan.version !== 1) throw new GpuError(`not a version 1 MoE block plan (format ${String(plan.format)}, version ${String(plan.version)})`);
  if (!(plan.maxTokens >= 1)) throw new GpuError(`${plan.name}: the plan holds ${plan.maxTokens} tokens per run; it cannot run`);
  requireFeatures(rt, plan.name, plan.features ?? []);
  for (const [name, needed] of Object.entries(plan.requires) as [keyof MoeBlockPlan['requires'], number][]) {
    const available = rt.limits[name];
    if (available < needed) {
      throw new GpuError(
        `${plan.name}: the plan needs ${name} >= ${needed}, this device has ${available}` +
          (name === 'maxStorageBufferBindingSize' ? `; compile it with { maxStorageBufferBindingSize: ${available} } so expert weights are sharded to fit` : ''),
      );
    }
  }
}

/** A buffer's bytes at `tokens`, rounded up to 4 (binding sizes and copies need multiples of 4). */
const bytesOf = (buffer: PlanBuffer, tokens: number): number => Math.max(4, Math.ceil((evalTokenExpr(buffer.elements, tokens) * dtypeBytes(buffer.dtype)) / 4) * 4);

/** `options.maxReadBytes` bounds the f32 values read at once while packing an expert shard (runtime/weight-upload.ts); `options.formats` adds a plugin's weight formats. */
export async function createMoeBlockExecutor(rt: GpuRuntime, plan: MoeBlockPlan, weights: WeightSource, options: WeightUploadOptions = {}): Promise<MoeBlockExecutor> {
  checkPlan(rt, plan);
  const { device } = rt;
  const pipelines = new Map<string, GPUComputePipeline>();
  for (const kernel of plan.kernels) {
    pipelines.set(kernel.name, await createComputePipelineChecked(device, `${plan.name}/${kernel.name}`, kernel.wgsl, kernel.entryPoint));
  }
  const weightBuffers = await uploadWeights(rt, plan, weights, options);
  const bufferByName = new Map(plan.buffers.map((b) => [b.name, b]));
  const activationPlans = plan.buffers.filter((b) => b.role !== 'weight');
  const uniformStride = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
  const staging = new ReadbackStaging(device, `${plan.name}/output staging`);
  const outputPlan = bufferByName.get(plan.output)!;
  /** Activations stored as f16: the host converts the input and the output. */
  const f16 = outputPlan.dtype === 'f16';

  let capacity = 0;
  let activations = new Map<string, GPUBuffer>();
  const byTokens = new Map<number, TokenCountEntry>();
  // Outgrown activation buffers and evicted uniforms: work already submitted (or an encoder from
  // encode() about to be) may still use them, so they are destroyed once the queue has drained.
  const retired = new Set<GPUBuffer>();
  const retire = (buffers: GPUBuffer[]): void => {
    if (!buffers.length) return;
    for (const buffer of buffers) retired.add(buffer);
    const release = (): void => {
      for (const buffer of buffers) if (retired.delete(buffer)) buffer.destroy();
    };
    device.queue.onSubmittedWorkDone().then(release, release);
  };
  const bufferIds = new WeakMap<GPUBuffer, number>();
  let nextBufferId = 0;
  const idOf = (buffer: GPUBuffer): number => {
    let id = bufferIds.get(buffer);
    if (id === undefined) bufferIds.set(buffer, (id = nextBufferId++));
    return id;
  };

  const checkTokenCount = (tokens: number): void => {
    if (!Number.isInteger(tokens) || tokens < 0) throw new RangeError(`token count ${tokens} is not a non-negative integer`);
  };
  const checkTokens = (tokens: number): void => {
    checkTokenCount(tokens);
    if (tokens > plan.maxTokens) throw new RangeError(`${plan.name}: ${tokens} tokens is more than the ${plan.maxTokens} one run can hold under the binding limits; split the batch`);
  };

  const reserve = (tokens: number): void => {
    checkTokens(tokens);
    if (tokens <= capacity) return;
    retire([...activations.values()]);
    capacity = Math.min(plan.maxTokens, Math.max(plan.decodeMaxTokens, 2 ** Math.ceil(Math.log2(tokens))));
    activations = new Map(activationPlans.map((b) => [b.name, device.createBuffer({ label: `${plan.name}/${b.name}`, size: bytesOf(b, capacity), usage: usageOf(b.role) })]));
    for (const entry of byTokens.values()) entry.bindGroups.clear();
  };

  const entryFor = (tokens: number): TokenCountEntry => {
    const cached = byTokens.get(tokens);
    if (cached) return cached;
    const steps = pathSteps(plan, tokens);
    const data = new Uint32Array((steps.length * uniformStride) / 4);
    steps.forEach((step, i) => step.uniform.words.forEach((w, j) => (data[(i * uniformStride) / 4 + j] = evalTokenExpr(w, tokens))));
    if (byTokens.size >= TOKEN_COUNT_CACHE) {
      const [oldest, evicted] = byTokens.entries().next().value!;
      byTokens.delete(oldest);
      retire([evicted.uniform]);
    }
    const entry = { uniform: uploadU32(device, data, GPUBufferUsage.UNIFORM, `${plan.name}/params T=${tokens}`), bindGroups: new Map() };
    byTokens.set(tokens, entry);
    return entry;
  };

  const resolve = (name: string, input: GPUBuffer, output: GPUBuffer): GPUBuffer => {
    if (name === plan.input) return input;
    if (name === plan.output) return output;
    const buffer = weightBuffers.get(name) ?? activations.get(name);
    if (!buffer) throw new GpuError(`${plan.name}: no buffer ${name}`);
    return buffer;
  };

  const bindGroupsFor = (tokens: number, input: GPUBuffer, output: GPUBuffer): GPUBindGroup[] => {
    const entry = entryFor(tokens);
    const key = `${idOf(input)}/${idOf(output)}`;
    const cached = entry.bindGroups.get(key);
    if (cached) return cached;
    const { uniform } = entry;
    const groups = pathSteps(plan, tokens).map((step, i) =>
      device.createBindGroup({
        label: `${plan.name}/${step.label}`,
        layout: pipelines.get(step.kernel)!.getBindGroupLayout(0),
        entries: [
          ...step.bindings.map((b) => {
            const planBuffer = bufferByName.get(b.buffer)!;
            return { binding: b.binding, resource: { buffer: resolve(b.buffer, input, output), size: bytesOf(planBuffer, tokens) } };
          }),
          { binding: step.uniform.binding, resource: { buffer: uniform, offset: i * uniformStride, size: UNIFORM_BYTES } },
        ],
      }),
    );
    if (entry.bindGroups.size >= BIND_GROUPS_PER_TOKEN_COUNT) entry.bindGroups.delete(entry.bindGroups.keys().next().value!);
    entry.bindGroups.set(key, groups);
    return groups;
  };

  const dispatch = (pass: GPUComputePassEncoder, step: PlanStep, tokens: number): void => {
    const grid = step.grid;
    if (grid.kind === 'indirect') {
      pass.dispatchWorkgroupsIndirect(activations.get(grid.buffer)!, grid.offset);
      return;
    }
    const [x, y, z] = [grid.x, grid.y, grid.z].map((e) => evalTokenExpr(e, tokens));
    if (x! > 0 && y! > 0 && z! > 0) pass.dispatchWorkgroups(x!, y!, z!);
  };

  const encode = (encoder: GPUCommandEncoder, input: GPUBuffer, output: GPUBuffer, tokens: number): void => {
    reserve(tokens);
    if (tokens === 0) return;
    for (const [what, buffer] of [['input', input], ['output', output]] as const) {
      const needed = bytesOf(outputPlan, tokens); // input and output: [tokens, hidden] of the activation dtype
      if (buffer.size < needed) {
        throw new GpuError(`${plan.name}: the ${what} buffer "${buffer.label}" has ${buffer.size} bytes; ${tokens} tokens of ${outputPlan.dtype} activations need ${needed}`);
      }
    }
    const groups = bindGroupsFor(tokens, input, output);
    const pass = encoder.beginComputePass({ label: `${plan.name} T=${tokens}` });
    pathSteps(plan, tokens).forEach((step, i) => {
      pass.setPipeline(pipelines.get(step.kernel)!);
      pass.setBindGroup(0, groups[i]!);
      dispatch(pass, step, tokens);
    });
    pass.end();
  };

  /** One run of at most plan.maxTokens tokens: one submit, one readback. */
  const runOnce = async (hidden: Float32Array, tokens: number): Promise<Float32Array> => {
    if (tokens === 0) return new Float32Array(0);
    reserve(tokens);
    const input = activations.get(plan.input)!;
    const output = activations.get(plan.output)!;
    if (f16) {
      const bits = new Uint16Array(Math.ceil(hidden.length / 2) * 2); // writes are whole 4-byte words
      bits.set(float32ToFloat16Bits(hidden));
      device.queue.writeBuffer(input, 0, bits);
    } else {
      device.queue.writeBuffer(input, 0, hidden.buffer, hidden.byteOffset, hidden.byteLength);
    }
    const encoder = device.createCommandEncoder({ label: `${plan.name} run` });
    encode(encoder, input, output, tokens);
    staging.copyFrom(encoder, output, bytesOf(outputPlan, tokens));
    device.queue.submit([encoder.finish()]);
    const bytes = await staging.read();
    const result = f16 ? float16BitsToFloat32(new Uint16Array(bytes, 0, tokens * plan.hidden)) : new Float32Array(bytes);
    rt.checkErrors(); // the readback waited for the GPU, so this run's validation errors are in
    return result;
  };

  return {
    plan,
    encode,
    reserve,
    async run(hidden, tokens) {
      checkTokenCount(tokens);
      if (hidden.length !== tokens * plan.hidden) throw new RangeError(`${plan.name}: hidden has ${hidden.length} values, expected tokens x hidden = ${tokens} x ${plan.hidden}`);
      if (tokens > plan.maxTokens) {
        const out = new Float32Array(tokens * plan.hidden);
        for (let begin = 0; begin < tokens; begin += plan.maxTokens) {
          const count = Math.min(plan.maxTokens, tokens - begin);
          out.set(await runOnce(hidden.subarray(begin * plan.hidden, (begin + count) * plan.hidden), count), begin * plan.hidden);
        }
        return out;
      }
      return runOnce(hidden, tokens);
    },
    dispatchCount(tokens) {
      const steps = (n: number): number => (n === 0 ? 0 : pathSteps(plan, n).length);
      const full = Math.floor(tokens / plan.maxTokens);
      return full * steps(plan.maxTokens) + steps(tokens - full * plan.maxTokens);
    },
    poisonScratch(tokens) {
      checkTokenCount(tokens);
      reserve(Math.min(tokens, plan.maxTokens)); // a larger batch runs in pieces of maxTokens
      for (const b of activationPlans) {
        if (b.role === 'scratch' || b.role === 'output') poison(device, activations.get(b.name)!, bytesOf(b, capacity), 0, b.dtype === 'f16' ? POISON_BITS_F16 : POISON_BITS);
      }
    },
    scratchBuffer(name) {
      const buffer = activations.get(name);
      if (!buffer) throw new GpuError(`${plan.name}: no activation buffer ${name} (allocated: ${[...activations.keys()].join(', ') || 'none yet'})`);
      return buffer;
    },
    stats() {
      const bindGroupSets = [...byTokens.values()].reduce((n, e) => n + e.bindGroups.size, 0);
      return { tokenCounts: byTokens.size, bindGroupSets, retiredBuffers: retired.size };
    },
    destroy() {
      const uniforms = [...byTokens.values()].map((e) => e.uniform);
      for (const buffer of [...weightBuffers.values(), ...activations.values(), ...retired, ...uniforms]) buffer.destroy();
      staging.destroy();
      weightBuffers.clear();
      activations.clear();
      byTokens.clear();
      retired.clear();
    },
  };
}
