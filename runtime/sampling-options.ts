// What a generation call may ask of the GPU sampler, checked, and the 8-word uniform the sampling
// kernels read (codegen/kernels/sample). The reference sampler (ir/interpret/sampling.ts) and the
// kernels share these rules; the runtime writes the uniform once per generated token.

export interface SamplingOptions {
  /** 0 = greedy; otherwise > 0. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off; in [0, 1]. */
  topP: number;
  /** u32. */
  seed: number;
  /** u32: the generated token's index (a decode loop changes only this). */
  step: number;
}

/** f32(1 / temperature), 0 for greedy: the kernels multiply, never divide (WGSL division is not exactly rounded). */
export function inverseTemperature(temperature: number): number {
  return temperature === 0 ? 0 : Math.fround(1 / temperature);
}

export function checkSamplingOptions(options: SamplingOptions): void {
  const { temperature, topK, topP, seed, step } = options;
  const inverse = inverseTemperature(temperature);
  if (!(temperature >= 0) || !Number.isFinite(inverse) || (temperature > 0 && inverse === 0)) {
    throw new RangeError(`sampling: temperature ${temperature} must be 0 (greedy) or a positive number whose f32 reciprocal is finite and nonzero`);
  }
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`sampling: topK ${topK} must be 0 (off) or a positive integer`);
  if (!(topP >= 0 && topP <= 1)) throw new RangeError(`sampling: topP ${topP} must be in [0, 1] (1 = off)`);
  for (const [name, n] of Object.entries({ seed, step })) {
    if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new RangeError(`sampling: ${name} ${n} must be a u32`);
  }
}

export const SAMPLE_UNIFORM_BYTES = 32;

/**
 * The 8 words of the SampleParams uniform: offset (index of the row's first logit), f32(1 /
 * temperature) (0 = greedy), topK, topP (f32), seed, step, 0 (the fence), 0.
 */
export function sampleUniform(options: SamplingOptions & { offset: number }): ArrayBuffer {
  checkSamplingOptions(options);
  if (!Number.isInteger(options.offset) || options.offset < 0 || options.offset >= 2 ** 32) throw new RangeError(`sampling: offset ${options.offset} must be a u32`);
  const buffer = new ArrayBuffer(SAMPLE_UNIFORM_BYTES);
  const words = new Uint32Array(buffer);
  const floats = new Float32Array(buffer);
  words[0] = options.offset;
  floats[1] = inverseTemperature(options.temperature);
  words[2] = options.topK;
  floats[3] = options.topP;
  words[4] = options.seed;
  words[5] = options.step;
  return buffer;
}
