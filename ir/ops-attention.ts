// Kernel-level ops of attention, what passes/lower-attention.ts makes of an `attention` op: the
// projections become gemm/gemv, and these do the rest. `*.prepare` normalises, clamps and rotates
// q and k (cos/sin from the `rope_table` param the runtime fills at load) and writes the new
// tokens' cache rows in place; MLA folds kv_b's key half into the queries (`mla.absorb_q`) and
// applies its value half after attention (`mla.unabsorb`); `attention.attend` (prefill: tiled
// with an online softmax) or `attention.decode_partials` + `attention.decode_merge` (decode:
// flash-decoding over context chunks) attend over the cache.
import { expectShape, IRTypeError, numAttr, type Attrs, type Inputs, type OpDefinition } from './op-checks.js';
import { TOKENS, type TensorType } from './types.js';

const rows = (width: number, dtype: TensorType['dtype'] = 'f32'): TensorType => ({ shape: [TOKENS, width], dtype });

/** The cache's row count (the context) and its check against `width`. */
function expectCache(what: string, t: TensorType, width: number): number {
  const context = t.shape[0];
  if (t.shape.length !== 2 || typeof context !== 'number' || t.shape[1] !== width) throw new IRTypeError(`${what} must be [context, ${width}], got [${t.shape.join(', ')}]`);
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new IRTypeError(`${what} must be f32 or f16`);
  return context;
}

/** rope_table: [variants, context, dim] f32, each row cos then sin of dim / 2 pairs; variant 1 serves calls past rope_switch (LongRoPE). */
function expectRopeTable(inputs: Inputs, a: Attrs, context: number, dim: number): void {
  const variants = numAttr(a, 'rope_switch') > 0 ? 2 : 1;
  expectShape('rope_table', inputs['rope_table']!, [variants, context, dim]);
}

function expectPositions(inputs: Inputs): void {
  expectShape('positions', inputs['positions']!, [TOKENS]);
  if (inputs['positions']!.dtype !== 'i32') throw new IRTypeError('positions must be i32');
}

const qkNormOf = (a: Attrs): string => String(a['qk_norm'] ?? 'none');

/** The attend ops' inputs: queries, positions, the caches (one when values live in the key rows, MLA), sinks (not read by decode partials: the merge adds them). */
const attendInputs = (a: Attrs, withSinks = true): string[] => ['q', 'positions', 'cache_k', ...(a['values_in_keys'] === true ? [] : ['cache_v']), ...(withSinks && a['sinks'] === true ? ['sinks'] : [])];

function checkAttendInputs(inputs: Inputs, a: Attrs): void {
  const [heads, kvHeads, keyDim, valueDim] = [numAttr(a, 'heads'), numAttr(a, 'kv_heads'), numAttr(a, 'key_dim'), numAttr(a, 'value_dim')];
  expectShape('q', inputs['q']!, [TOKENS, heads * keyDim]);
  expectPositions(inputs);
  const context = expectCache('cache_k', inputs['cache_k']!, kvHeads * keyDim);
  if (a['values_in_keys'] === true) {
    if (kvHeads !== 1 || valueDim > keyDim) throw new IRTypeError('values in the key rows need one kv head and value_dim <= key_dim');
  } else if (expectCache('cache_v', inputs['cache_v']!, kvHeads * valueDim) !== context) {
    throw new IRTypeError('cache_k and cache_v hold different contexts');
  }
  if (inputs['sinks']) expectShape('sinks', inputs['sinks'], [heads]);
}

/** Chunks of the context a decode row's keys are split into. */
export const decodeChunks = (a: Attrs, context: number): number => Math.ceil(context / numAttr(a, 'chunk_keys'));

export const attentionOpDefinitions: Record<string, OpDefinition> = {
  'attention.prepare': {
    doc: 'GQA: q/k RMSNorm (qk_norm = head | projection), clamp (clip), rotary embedding of q and k from rope_table; writes k and v into the caches at positions.',
    inputNames: (a) => ['q', 'k', 'v', 'positions', 'cache_k', 'cache_v', 'rope_table', ...(qkNormOf(a) === 'none' ? [] : ['q_norm', 'k_norm'])],
    outputNames: ['q_roped', 'cache_k', 'cache_v'],
    // q is rotated where it lies: nothing else reads the projection, and the kernel stays at 8 storage buffers.
    inPlace: { 0: 'q', 1: 'cache_k', 2: 'cache_v' },
    infer: (inputs, a) => {
      const [heads, kvHeads, d] = [numAttr(a, 'heads'), numAttr(a, 'kv_heads'), numAttr(a, 'head_dim')];
      expectShape('q', inputs['q']!, [TOKENS, heads * d]);
      expectShape('k', inputs['k']!, [TOKENS, kvHeads * d]);
      expectShape('v', inputs['v']!, [TOKENS, kvHeads * d]);
      expectPositions(inputs);
      const context = expectCache('cache_k', inputs['cache_k']!, kvHeads * d);
      if (expectCache('cache_v', inputs['cache_v']!, kvHeads * d) !== context) throw new IRTypeError('cache_k and cache_v hold different contexts');
      expectRopeTable(inputs, a, context, d);
      const whole = qkNormOf(a) === 'projection';
      if (inputs['q_norm']) expectShape('q_norm', inputs['q_norm'], [whole ? heads * d : d]);
      if (inputs['k_norm']) expectShape('k_norm', inputs['k_norm'], [whole ? kvHeads * d : d]);
      return [inputs['q']!, inputs['cache_k']!, inputs['cache_v']!];
    },
  },
  'mla.prepare': {
    doc: 'MLA: RMSNorm of the latent (kv_a_norm), rotary embedding of the shared rope key and of each query head\'s rope part from rope_table; writes [latent, rope key] into the cache at positions.',
    inputNames: () => ['q', 'kv', 'positions', 'cache_k', 'rope_table', 'kv_a_norm'],
    outputNames: ['q_roped', 'cache_k'],
    inPlace: { 0: 'q', 1: 'cache_k' },
    infer: (inputs, a) => {
      const [heads, nope, rope, rank] = [numAttr(a, 'heads'), numAttr(a, 'nope'), numAttr(a, 'rope'), numAttr(a, 'kv_rank')];
      expectShape('q', inputs['q']!, [TOKENS, heads * (nope + rope)]);
      expectShape('kv', inputs['kv']!, [TOKENS, rank + rope]);
      expectPositions(inputs);
      const context = expectCache('cache_k', inputs['cache_k']!, rank + rope);
      expectRopeTable(inputs, a, context, rope);
      expectShape('kv_a_norm', inputs['kv_a_norm']!, [rank]);
      return [inputs['q']!, inputs['cache_k']!];
    },
  },
  'mla.absorb_q': {
    doc: 'MLA: each head\'s query as [kv_b key half^T q_nope, q_rope], a query against the latent rows.',
    inputNames: () => ['q', 'kv_b'],
    outputNames: ['q_absorbed'],
    infer: (inputs, a) => {
      const [heads, nope, rope, rank, v] = [numAttr(a, 'heads'), numAttr(a, 'nope'), numAttr(a, 'rope'), numAttr(a, 'kv_rank'), numAttr(a, 'value_dim')];
      expectShape('q', inputs['q']!, [TOKENS, heads * (nope + rope)]);
      expectShape('kv_b', inputs['kv_b']!, [heads * (nope + v), rank]);
      return [rows(heads * (rank + rope))];
    },
  },
  'mla.unabsorb': {
    doc: 'MLA: each head\'s attended latent through kv_b\'s value half.',
    inputNames: () => ['attended', 'kv_b'],
    outputNames: ['y'],
    infer: (inputs, a) => {
      const [heads, nope, rank, v] = [numAttr(a, 'heads'), numAttr(a, 'nope'), numAttr(a, 'kv_rank'), numAttr(a, 'value_dim')];
      expectShape('attended', inputs['attended']!, [TOKENS, heads * rank]);
      expectShape('kv_b', inputs['kv_b']!, [heads * (nope + v), rank]);
      return [rows(heads * v)];
    },
  },
  'attention.attend': {
    doc: 'Each query row against the cached keys it sees (causal, window), online softmax (sinks join it), times the values: [T, heads * value_dim].',
    inputNames: attendInputs,
    outputNames: ['y'],
    infer: (inputs, a) => {
      checkAttendInputs(inputs, a);
      return [rows(numAttr(a, 'heads') * numAttr(a, 'value_dim'))];
    },
  },
  'attention.decode_partials': {
    doc: 'Flash-decoding, step 1: per (row, head, context chunk of chunk_keys) the running max, sum and unnormalised value sum; chunks a row does not see stay (-inf, 0, 0). Sinks wait for the merge.',
    inputNames: (a) => attendInputs(a, false),
    outputNames: ['partial_stats', 'partial_acc'],
    infer: (inputs, a) => {
      checkAttendInputs(inputs, a);
      const slots = numAttr(a, 'heads') * decodeChunks(a, inputs['cache_k']!.shape[0] as number);
      return [rows(slots * 2), rows(slots * numAttr(a, 'value_dim'))];
    },
  },
  'attention.decode_merge': {
    doc: 'Flash-decoding, step 2: a row\'s chunks (and its sink) combined into the attended values.',
    inputNames: (a) => ['partial_stats', 'partial_acc', 'positions', ...(a['sinks'] === true ? ['sinks'] : [])],
    outputNames: ['y'],
    infer: (inputs, a) => {
      const [heads, v, chunks] = [numAttr(a, 'heads'), numAttr(a, 'value_dim'), numAttr(a, 'chunks')];
      expectShape('partial_stats', inputs['partial_stats']!, [TOKENS, heads * chunks * 2]);
      expectShape('partial_acc', inputs['partial_acc']!, [TOKENS, heads * chunks * v]);
      expectPositions(inputs);
      if (inputs['sinks']) expectShape('sinks', inputs['sinks'], [heads]);
      return [rows(heads * v)];
    },
  },
};
