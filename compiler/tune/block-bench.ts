/// <reference types="@webgpu/types" />
// One MoE block on the GPU for the tuner and bench/tune.ts: seeded random weights and inputs, the
// CPU reference interpreter's output per token count, a candidate target compiled to a plan,
// checked against that reference on a poisoned run, and timed (GPU timestamps when the adapter has
// timestamp-query, else wall clock; warm-up first, median of several samples).
import { compileMoeBlock, planTarget, type PlanOptions } from '../moe-block-plan.js';
import { compileReferenceModule } from '../pipeline.js';
import type { ModelConfig } from '../../ir/model-config.js';
import type { TargetDescription } from '../../ir/target.js';
import { interpretModule } from '../../ir/interpret/interpret.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { weightFormatOf } from '../../ir/storage-format.js';
import type { Value } from '../../ir/graph.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import type { GpuRuntime } from '../../runtime/device.js';
import type { MoeBlockPlan, PlanStep, WeightSource } from '../../runtime/plan.js';
import { dequantize } from '../../runtime/quant/weight-codec.js';
import { float32ToFloat16Bits } from '../../runtime/float16.js';
import { median, relativeNoise } from '../../runtime/tuning/time-block.js';
import { seededRandom } from '../seeded-random.js';


function normals(random: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}

/** Which dispatches of a plan a family owns (by kernel name), for timing them apart from the rest. */
export const FAMILY_KERNELS: Readonly<Record<string, (kernel: string) => boolean>> = {
  'grouped_gemm.gate_up': (k) => k.startsWith('grouped_gemm_gateup'),
  'grouped_gemm.down': (k) => k.startsWith('grouped_gemm_down'),
  'decode.rows': (k) => k.startsWith('decode_gateup') || k.startsWith('decode_down_combine'),
};

/** The path a family's dispatches run on: the decode kernels' family on decode, the GEMMs on prefill. */
export const familyPath = (family: string): 'prefill' | 'decode' => (family.startsWith('decode.') ? 'decode' : 'prefill');

/**
 * The plan with the family's dispatches on `path` run `repeat` more times at the end: they only
 * read what the block computed before them and rewrite the same rows, so the output is unchanged
 * and the block time grows by `repeat` times theirs.
 */
export function withRepeatedSteps(plan: MoeBlockPlan, owns: (kernel: string) => boolean, repeat: number, path: 'prefill' | 'decode' = 'prefill'): MoeBlockPlan {
  const steps = plan[path].filter((s) => owns(s.kernel));
  if (!steps.length) throw new Error(`${plan.name}: no ${path} dispatch of the family to time`);
  const extra: PlanStep[] = Array.from({ length: repeat }, () => steps).flat();
  return { ...plan, [path]: [...plan[path], ...extra] };
}

export interface Timing {
  /** Median milliseconds per run. */
  ms: number;
  /** Every sample, in milliseconds per run. */
  samples: number[];
  clock: 'gpu timestamps' | 'wall clock';
}

export interface TimingOptions {
  samples?: number;
  /** Runs per sample are raised until a sample takes about this long (short kernels need many). */
  sampleMs?: number;
}

export class BlockBench {
  readonly hidden: number;
  private readonly weights = new Map<string, Float32Array>();
  private readonly gpuWeights: WeightSource;
  private readonly references = new Map<string, Float32Array>();
  private readonly inputs = new Map<number, Float32Array>();

  constructor(readonly rt: GpuRuntime, readonly config: ModelConfig, readonly layer: number, readonly options: PlanOptions = {}, seed = 1) {
    const reference = compileReferenceModule(config, layer, { ...options, target: planTarget(options) });
    const f = reference.functions[0]!;
    this.hidden = f.inputs[0]!.type.shape[1] as number;
    const random = seededRandom(seed);
    for (const p of f.params) {
      const shape = p.type.shape as number[];
      const n = shape.reduce((a, d) => a * d, 1);
      const fanIn = shape[shape.length - 1]!;
      // Router logits about 2 apart: routing ties (where GPU and CPU may pick differently) stay rare.
      const std = p.name.endsWith('router.weight') ? 2 / Math.sqrt(fanIn) : p.name.endsWith('bias') ? 0.1 : 1 / Math.sqrt(fanIn);
      this.weights.set(p.name, normals(random, n, std));
    }
    const weights = this.weights;
    this.gpuWeights = {
      readF32(name, shape, rows) {
        const all = weights.get(name);
        if (!all) throw new Error(`tune: no weight ${name}`);
        if (!rows) return all;
        const width = shape.slice(1).reduce((a, d) => a * d, 1);
        return all.subarray(rows.begin * width, rows.end * width);
      },
    };
  }

  input(tokens: number): Float32Array {
    let x = this.inputs.get(tokens);
    if (!x) this.inputs.set(tokens, (x = normals(seededRandom(1000 + tokens), tokens * this.hidden, 1)));
    return x;
  }

  /** The interpreter's output for `tokens` under `target` (its path bound decides decode or prefill rounding). */
  reference(tokens: number, target: Partial<TargetDescription> = {}): Float32Array {
    const key = `${tokens}/${target.decodeMaxTokens ?? ''}`;
    let out = this.references.get(key);
    if (out) return out;
    const full = planTarget({ ...this.options, target: { ...this.options.target, ...target } });
    const module = compileReferenceModule(this.config, this.layer, { ...this.options, target: full });
    const f = module.functions[0]!;
    const byName = new Map<string, Value>(module.functions.flatMap((g) => g.params.map((p) => [p.name, p] as const)));
    const dequantized = new Map<string, Float32Array>();
    const weight = (p: Value): Float32Array => {
      let w = dequantized.get(p.name);
      if (!w) dequantized.set(p.name, (w = dequantize(weightFormatOf(byName.get(p.name) ?? p, this.options.registry?.formats), this.weights.get(p.name)!, p.type.shape as number[], p.name, this.options.registry?.formats)));
      return w;
    };
    const result = interpretModule(module, { [f.inputs[0]!.name]: { shape: [tokens, this.hidden], data: this.input(tokens) } }, weight, this.options.registry?.semantics);
    out = Float32Array.from(result[f.outputs[0]!.name]!.data as ArrayLike<number>);
    this.references.set(key, out);
    return out;
  }

  /** The block's plan under the target overrides `target`. */
  plan(target: Partial<TargetDescription>): MoeBlockPlan {
    return compileMoeBlock(this.config, this.layer, { ...this.options, target: { ...this.options.target, ...target } }).plan;
  }

  /** Compiles the plan's kernels and uploads the weights; a kernel the adapter refuses throws a GpuError naming it. */
  executor(plan: MoeBlockPlan): Promise<MoeBlockExecutor> {
    return createMoeBlockExecutor(this.rt, plan, this.gpuWeights);
  }

  /** Relative error of one poisoned run at `tokens` against the interpreter under `target`. */
  async check(executor: MoeBlockExecutor, tokens: number, target: Partial<TargetDescription>): Promise<number> {
    executor.poisonScratch(tokens);
    const out = await executor.run(this.input(tokens), tokens);
    return relativeError(out, this.reference(tokens, target));
  }

  /** Median time of one run of the block at `tokens` (input already on the GPU, no readback). */
  async time(executor: MoeBlockExecutor, tokens: number, options: TimingOptions = {}): Promise<Timing> {
    const { device } = this.rt;
    const { STORAGE, COPY_DST, COPY_SRC } = GPUBufferUsage;
    const f16 = executor.plan.features?.includes('shader-f16') ?? false;
    const bytes = Math.max(16, tokens * this.hidden * (f16 ? 2 : 4));
    const input = device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: STORAGE | COPY_DST });
    // The seeded random input, not zeros: a zero input ties every router logit and sends all tokens to the same experts.
    const x = this.input(tokens);
    const data = f16 ? float32ToFloat16Bits(x) : x;
    device.queue.writeBuffer(input, 0, data.buffer, data.byteOffset, data.byteLength - (data.byteLength % 4));
    const output = device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: STORAGE | COPY_SRC | COPY_DST });
    const timestamps = this.rt.features.has('timestamp-query') ? new GpuClock(device) : undefined;
    try {
      const runs = async (n: number): Promise<number> => {
        const encoder = device.createCommandEncoder({ label: 'tune timing' });
        timestamps?.begin(encoder);
        for (let i = 0; i < n; i++) executor.encode(encoder, input, output, tokens);
        timestamps?.end(encoder);
        const start = performance.now();
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        const wall = performance.now() - start;
        const gpu = timestamps ? await timestamps.read() : undefined;
        return (gpu !== undefined && gpu > 0 ? gpu : wall) / n;
      };
      const first = await runs(1); // warm-up
      const perSample = Math.min(64, Math.max(1, Math.ceil((options.sampleMs ?? 20) / Math.max(first, 0.01))));
      const samples: number[] = [];
      for (let i = 0; i < (options.samples ?? 5); i++) samples.push(await runs(perSample));
      this.rt.checkErrors();
      return { ms: median(samples), samples, clock: timestamps ? 'gpu timestamps' : 'wall clock' };
    } finally {
      input.destroy();
      output.destroy();
      timestamps?.destroy();
    }
  }
}

// The statistics are the load-time tuner's (runtime/tuning/time-block.ts), so both decide alike.
export { median, relativeNoise };

/** GPU time between two empty compute passes' timestamps (nanoseconds -> milliseconds). */
class GpuClock {
  private readonly set: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private readonly staging: GPUBuffer;

  constructor(device: GPUDevice) {
    this.set = device.createQuerySet({ type: 'timestamp', count: 2 });
    this.resolved = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.staging = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  begin(encoder: GPUCommandEncoder): void {
    encoder.beginComputePass({ timestampWrites: { querySet: this.set, beginningOfPassWriteIndex: 0 } }).end();
  }

  end(encoder: GPUCommandEncoder): void {
    encoder.beginComputePass({ timestampWrites: { querySet: this.set, endOfPassWriteIndex: 1 } }).end();
    encoder.resolveQuerySet(this.set, 0, 2, this.resolved, 0);
    encoder.copyBufferToBuffer(this.resolved, 0, this.staging, 0, 16);
  }

  async read(): Promise<number> {
    await this.staging.mapAsync(GPUMapMode.READ);
    const [t0, t1] = new BigUint64Array(this.staging.getMappedRange().slice(0));
    this.staging.unmap();
    return Number(t1! - t0!) / 1e6;
  }

  destroy(): void {
    this.set.destroy();
    this.resolved.destroy();
    this.staging.destroy();
  }
}
