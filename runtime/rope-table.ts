// Rotary embedding frequencies and cos/sin tables, as transformers computes them
// (transformers/modeling_rope_utils.py: _compute_default/linear/yarn/longrope_parameters). The
// runtime builds its cos/sin tables here at load time and the reference interpreter rotates with
// the same numbers, so the GPU never evaluates cos of a large angle in f32.

/** A rope kind with its resolved params (the spec's `rope = ...`), plus the attention's base and rotary width. */
export interface RopeSpec {
  kind: string;
  params: Readonly<Record<string, unknown>>;
  theta: number;
  /** Rotary width (even): a GQA head, or MLA's qk_rope_head_dim. */
  dim: number;
}

export interface RopeFrequencies {
  /** dim / 2 inverse frequencies, rounded to f32 as transformers stores them. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN's attention factor, LongRoPE's mscale; 1 otherwise). */
  magnitude: number;
}

const num = (spec: RopeSpec, name: string): number => {
  const v = spec.params[name];
  if (typeof v !== 'number') throw new Error(`rope ${spec.kind}: parameter ${name} is not a number`);
  return v;
};

/** YaRN's get_mscale: 0.1 * m * ln(scale) + 1 above scale 1. */
export function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/**
 * The frequencies used by a forward call whose last position is `callLength - 1`. Only LongRoPE
 * depends on it: its long factors apply once the call reaches past original_context (PhiMoE
 * passes seq_len = last cache position + 1 to its rotary embedding, modeling_phimoe.py).
 */
export function ropeFrequencies(spec: RopeSpec, callLength: number): RopeFrequencies {
  const { dim, theta } = spec;
  const pairs = dim / 2;
  const base = Array.from({ length: pairs }, (_, i) => theta ** ((2 * i) / dim));
  switch (spec.kind) {
    case 'default':
      return { invFreq: Float32Array.from(base, (b) => 1 / b), magnitude: 1 };
    case 'linear':
      return { invFreq: Float32Array.from(base, (b) => 1 / b / num(spec, 'factor')), magnitude: 1 };
    case 'yarn':
      return yarnFrequencies(spec, base);
    case 'longrope': {
      const long = callLength > num(spec, 'original_context');
      const factors = spec.params[long ? 'long_factor' : 'short_factor'] as number[];
      return { invFreq: Float32Array.from(base, (b, i) => 1 / (factors[i]! * b)), magnitude: num(spec, long ? 'long_mscale' : 'short_mscale') };
    }
    default:
      throw new Error(`rope kind ${spec.kind} has no frequency rule`);
  }
}

function yarnFrequencies(spec: RopeSpec, base: number[]): RopeFrequencies {
  const { dim, theta } = spec;
  const factor = num(spec, 'factor');
  const original = num(spec, 'original_context');
  const correctionDim = (rotations: number) => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(num(spec, 'beta_fast'));
  let high = correctionDim(num(spec, 'beta_slow'));
  // gpt-oss sets truncate = false and keeps the range unrounded.
  if (spec.params['truncate'] !== false) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const invFreq = Float32Array.from(base, (b, i) => {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolation = 1 - ramp;
    return (1 / (factor * b)) * (1 - extrapolation) + (1 / b) * extrapolation;
  });
  const given = num(spec, 'attention_factor');
  const mscale = num(spec, 'mscale');
  const mscaleAllDim = num(spec, 'mscale_all_dim');
  const magnitude = given > 0 ? given : mscale && mscaleAllDim ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim) : yarnMscale(factor);
  return { invFreq, magnitude };
}

/**
 * cos and sin for each position, [positions.length, dim / 2] each, as transformers forms them in
 * f32: angle = f32(position * invFreq), then f32(cos(angle)) * magnitude rounded to f32.
 */
export function ropeCosSin(frequencies: RopeFrequencies, positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, magnitude } = frequencies;
  const pairs = invFreq.length;
  const cos = new Float32Array(positions.length * pairs);
  const sin = new Float32Array(positions.length * pairs);
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < pairs; i++) {
      const angle = Math.fround(positions[t]! * invFreq[i]!);
      cos[t * pairs + i] = Math.fround(Math.cos(angle)) * magnitude;
      sin[t * pairs + i] = Math.fround(Math.sin(angle)) * magnitude;
    }
  }
  return { cos, sin };
}

/**
 * The cos/sin table kernels read: [variants, context, dim] f32, row p = cos of the dim / 2 pairs
 * at position p, then their sin. LongRoPE has two variants (short factors, then long ones for
 * calls that reach past original_context); the other kinds one.
 */
export function buildRopeTable(spec: RopeSpec, context: number): Float32Array {
  const variants = ropeTableVariants(spec);
  const half = spec.dim / 2;
  const positions = Array.from({ length: context }, (_, p) => p);
  const table = new Float32Array(variants * context * spec.dim);
  for (let variant = 0; variant < variants; variant++) {
    // A call length that selects the variant: within the original context, or past it.
    const callLength = variant === 0 ? 1 : Number.MAX_SAFE_INTEGER;
    const { cos, sin } = ropeCosSin(ropeFrequencies(spec, callLength), positions);
    for (let p = 0; p < context; p++) {
      const row = (variant * context + p) * spec.dim;
      table.set(cos.subarray(p * half, (p + 1) * half), row);
      table.set(sin.subarray(p * half, (p + 1) * half), row + half);
    }
  }
  return table;
}

/** 2 for LongRoPE (short and long factors), else 1. */
export const ropeTableVariants = (spec: Pick<RopeSpec, 'kind'>): number => (spec.kind === 'longrope' ? 2 : 1);

/** The call length past which a kernel reads variant 1 (LongRoPE's original_context), 0 when there is one variant. */
export function ropeSwitch(spec: RopeSpec): number {
  return spec.kind === 'longrope' ? (spec.params['original_context'] as number) : 0;
}
