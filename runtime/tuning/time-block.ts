/// <reference types="@webgpu/types" />
// Wall-clock timing of one MoE block executor on the device, for load-time tuning: the block is
// encoded several times per submit (enough runs that a sample lasts about `sampleMs`), after one
// warm-up, and the median of the samples is its time. Plus the statistics both tuners use.
import type { GpuRuntime } from '../device.js';
import { float32ToFloat16Bits } from '../float16.js';
import type { MoeBlockExecutor } from '../moe-executor.js';

export const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Relative spread of samples: half the interquartile range over the median. */
export function relativeNoise(samples: readonly number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(f * (s.length - 1))))]!;
  return (q(0.75) - q(0.25)) / 2 / median(s);
}

/** ||a - b|| / ||b|| in float64 (the absolute norm when b is all zeros); NaN for different lengths or any NaN. */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.NaN;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

export interface BlockTimingOptions {
  samples?: number;
  /** Runs per sample are raised until a sample lasts about this long (default 10 ms, at most 64 runs). */
  sampleMs?: number;
}

/** Milliseconds per run of each sample of `executor` on `hidden` ([tokens, hidden] f32), input on the GPU, no readback. */
export async function timeBlock(rt: GpuRuntime, executor: MoeBlockExecutor, hidden: Float32Array, tokens: number, options: BlockTimingOptions = {}): Promise<number[]> {
  const { device } = rt;
  const f16 = executor.plan.features?.includes('shader-f16') ?? false;
  const data = f16 ? float32ToFloat16Bits(hidden) : hidden;
  const size = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
  const input = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const output = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  // Real values in: a zero input would route every token to the same experts.
  const padded = new Uint8Array(size);
  padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  device.queue.writeBuffer(input, 0, padded);
  try {
    const runs = async (n: number): Promise<number> => {
      const encoder = device.createCommandEncoder({ label: 'load tuning' });
      for (let i = 0; i < n; i++) executor.encode(encoder, input, output, tokens);
      const start = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - start) / n;
    };
    const first = await runs(1); // warm-up
    const perSample = Math.min(64, Math.max(1, Math.ceil((options.sampleMs ?? 10) / Math.max(first, 0.01))));
    const samples: number[] = [];
    for (let i = 0; i < (options.samples ?? 5); i++) samples.push(await runs(perSample));
    rt.checkErrors();
    return samples;
  } finally {
    input.destroy();
    output.destroy();
  }
}
