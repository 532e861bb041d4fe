// Token sampling on the GPU (see sample.wgsl.hbs): one module, six entry points, a fixed list of
// 20 dispatches a runtime encodes in one compute pass; only the 4-byte `sampled` is read back.
// ir/interpret/sampling.ts is the reference, and the source of the polynomials' coefficients.
import { MASKED_KEY, SAMPLING_CONSTANTS } from '../../../ir/interpret/sampling.js';

export { SAMPLE_UNIFORM_BYTES, sampleUniform } from '../../../runtime/sampling-options.js';
import { samplingSteps } from '../../../runtime/plan.js';
import { f32Array, u32Array, type KernelBinding, type RenderedKernel } from '../kernel.js';
import { renderTemplate } from '../template.js';

export interface SampleShape {
  /** Logits per row. */
  vocab: number;
}

export interface SampleDispatch {
  kernel: RenderedKernel;
  grid: [number, number, number];
  /**
   * When it does anything: always; `truncate` (histogram, select_digit) only with top-k or top-p;
   * `draw` (gumbel_block) only when not greedy. A runtime that knows the options leaves the others
   * out (they would return early): greedy runs 3 dispatches, plain temperature 4, truncation 20.
   */
  phase: SamplePhase;
}

export type SamplePhase = 'always' | 'truncate' | 'draw';

export interface SampleKernels {
  /** The distinct pipelines (one per entry point). */
  kernels: RenderedKernel[];
  /** In order, all in one compute pass; the same list for every option (off phases return early). */
  dispatches: SampleDispatch[];
  /** u32 words of the `sample_scratch` binding (no initial contents needed). */
  scratchWords: number;
}

const WORKGROUP = 256;
/** Blocks are capped so one workgroup combines them in a few loads per invocation. */
const MAX_BLOCKS = 256;
/** histogram + select_digit pairs: 4 radix rounds of 8 bits for top-k, 4 for top-p. */
const RADIX_ROUNDS = 8;
const STATE_WORDS = 8;
/** The scratch word holding the final key threshold (tokens below it were not kept): for tests and debugging. */
export const SAMPLE_CUT_WORD = 5;

/** Logits per invocation per block: 16, more only past 256 blocks of 4096 (a vocab over 1M). */
function itemsPerInvocation(vocab: number): number {
  return Math.max(16, Math.ceil(vocab / (WORKGROUP * MAX_BLOCKS)));
}

export function sampleBlocks(vocab: number): number {
  return Math.ceil(vocab / (WORKGROUP * itemsPerInvocation(vocab)));
}

const wgslF32 = (bits: number): string => `bitcast<f32>(0x${bits.toString(16).padStart(8, '0')}u)`;

/** The arithmetic shared by the kernels (and a test's probe shader): needs `params: SampleParams`. */
export function renderSampleMath(): string {
  const { exp2, ln1p, ln2, log2e, sqrt2Mantissa } = SAMPLING_CONSTANTS;
  const horner = (coefficients: readonly number[]) => ({
    top: wgslF32(coefficients[coefficients.length - 1]!),
    rest: coefficients.slice(0, -1).reverse().map(wgslF32),
  });
  const ln = horner(ln1p);
  const exp = horner(exp2);
  return renderTemplate('sample/sample-math.wgsl.hbs', {
    maskedKey: `0x${MASKED_KEY.toString(16)}`,
    sqrt2Mantissa: `0x${sqrt2Mantissa.toString(16)}`,
    lnTop: ln.top,
    lnRest: ln.rest,
    expTop: exp.top,
    expRest: exp.rest,
    ln2: wgslF32(ln2),
    log2e: wgslF32(log2e),
  });
}

export function renderSampleKernels(shape: SampleShape): SampleKernels {
  const { vocab } = shape;
  if (!Number.isInteger(vocab) || vocab < 1 || vocab >= 2 ** 31) throw new Error(`sampling: vocab ${vocab} must be a positive integer below 2^31`);
  const items = itemsPerInvocation(vocab);
  const blocks = sampleBlocks(vocab);
  const storage: KernelBinding[] = [
    { name: 'logits', binding: 0, access: 'read', type: f32Array },
    { name: 'sample_scratch', binding: 1, access: 'read_write', type: u32Array },
    { name: 'sampled', binding: 2, access: 'read_write', type: u32Array },
  ];
  const uniformBinding = storage.length;
  const wgsl = renderTemplate('sample/sample.wgsl.hbs', {
    math: renderSampleMath(),
    bindings: { logits: 0, scratch: 1, sampled: 2, params: uniformBinding },
    vocab,
    items,
    blocks,
  });
  // A pipeline with layout 'auto' binds only what its entry point uses, so each lists its own.
  const kernel = (entryPoint: string, names: string[]): RenderedKernel => ({
    name: `sample_${entryPoint}_v${vocab}`,
    wgsl,
    entryPoint,
    workgroupSize: [WORKGROUP, 1, 1],
    bindings: storage.filter((b) => names.includes(b.name)),
    uniformBinding,
  });
  const blockMax = kernel('block_max', ['logits', 'sample_scratch']);
  const start = kernel('start', ['logits', 'sample_scratch']);
  const histogram = kernel('histogram', ['logits', 'sample_scratch']);
  const selectDigit = kernel('select_digit', ['sample_scratch']);
  const gumbelBlock = kernel('gumbel_block', ['logits', 'sample_scratch']);
  const finish = kernel('finish', ['sample_scratch', 'sampled']);
  const wide = (k: RenderedKernel, phase: SamplePhase = 'always'): SampleDispatch => ({ kernel: k, grid: [blocks, 1, 1], phase });
  const one = (k: RenderedKernel, phase: SamplePhase = 'always'): SampleDispatch => ({ kernel: k, grid: [1, 1, 1], phase });
  return {
    kernels: [blockMax, start, histogram, selectDigit, gumbelBlock, finish],
    dispatches: [
      wide(blockMax),
      one(start),
      ...Array.from({ length: RADIX_ROUNDS }, () => [wide(histogram, 'truncate'), one(selectDigit, 'truncate')]).flat(),
      wide(gumbelBlock, 'draw'),
      one(finish),
    ],
    scratchWords: STATE_WORDS + 2 * blocks + 2 * WORKGROUP * blocks,
  };
}


/** What decides which sampling phases run. */
export type SamplingChoice = Parameters<typeof samplingSteps>[1];

/** Dispatches the sampler runs for a vocabulary with these options (runtime/plan.ts samplingSteps over its steps). */
export function sampleDispatchCount(vocab: number, options: SamplingChoice): number {
  const steps = renderSampleKernels({ vocab }).dispatches.map((d) => ({ phase: d.phase === 'always' ? undefined : d.phase }));
  return samplingSteps({ steps }, options).length;
}
