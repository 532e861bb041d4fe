// Kernel-level ops of the lowered IR: what passes/lower-*.ts produce and codegen maps one to one
// onto kernels. Sizes that depend on routing are affine in T (TokenDim): the buffers the runtime
// allocates are exactly these value types. Ops that write part of a buffer another op already
// wrote (one expert shard of a grouped GEMM) take it as `init` and return it updated
// (destination passing): codegen gives both values one buffer.
import { isKindRef } from './graph.js';
import { attentionOpDefinitions } from './ops-attention.js';
import { traceOpDefinitions } from './ops-trace.js';
import { boolParam, numParam, type KindRef } from './model-config.js';
import { expectActivation, expectExtras, expectShape, IRTypeError, kindAttr, numAttr, type Attrs, type Inputs, type OpDefinition } from './op-checks.js';
import { dtypeName, isMixed, TOKENS, tokenDim, type Dim, type DType, type TensorType } from './types.js';

/** What a matrix op does after its dot products: the gated activation of gate and up, the routing weight, or nothing. */
export type Epilogue = 'activation' | 'routing_weight' | 'none';

export function epilogueOf(attrs: Attrs): Epilogue {
  const e = attrs['epilogue'];
  if (e !== 'activation' && e !== 'routing_weight' && e !== 'none') throw new IRTypeError('attribute epilogue must be activation, routing_weight or none');
  return e;
}

/** [first, end) of the experts an op's weights hold. */
export function expertRange(attrs: Attrs): [number, number] {
  const r = attrs['expert_range'];
  if (!Array.isArray(r) || r.length !== 2 || r.some((x) => typeof x !== 'number')) throw new IRTypeError('attribute expert_range must be [begin, end]');
  return [r[0] as number, r[1] as number];
}

/**
 * A GEMM tile: bm x bn outputs per workgroup, bk of the reduced dim per step, tm x tn per thread.
 * The variant fields are absent at their defaults (so a default tile prints as before):
 * kvec 4 runs the tile loop on vec4s along the reduced dim (tiles in workgroup memory as vec4
 * rows, dot products), 1 (default) on scalars; direct 1 reads a and the weights straight from
 * their buffers (no workgroup tiles, no barriers in the K loop; needs kvec 4), 0 (default) stages
 * them through workgroup memory.
 */
export interface GemmTile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
  kvec?: 1 | 4;
  direct?: 0 | 1;
}

/** The tile with its variant fields dropped where they are the defaults (one spelling per tile). */
export function normalTile(tile: GemmTile): GemmTile {
  const { kvec, direct, ...base } = tile;
  return { ...base, ...(kvec === 4 ? { kvec } : {}), ...(direct === 1 ? { direct } : {}) };
}

export const tileAttr = (tile: GemmTile): KindRef => ({ kind: 'tile', params: { ...normalTile(tile) } });

export function tileOf(attrs: Attrs): GemmTile {
  const t = kindAttr(attrs, 'tile');
  const variant = { kvec: t.params['kvec'] === 4 ? 4 : 1, direct: t.params['direct'] === 1 ? 1 : 0 } as const;
  return normalTile({ bm: numParam(t, 'bm'), bn: numParam(t, 'bn'), bk: numParam(t, 'bk'), tm: numParam(t, 'tm'), tn: numParam(t, 'tn'), ...variant });
}

/** Weight inputs of a matrix op: w0 (gate, or the one matrix), w1 (up), biases, in binding order. */
function matrixInputs(a: Attrs): string[] {
  const gateup = epilogueOf(a) === 'activation';
  const bias = a['bias'] === true;
  return ['w0', ...(gateup ? ['w1'] : []), ...(bias ? ['b0'] : []), ...(bias && gateup ? ['b1'] : [])];
}

/** The fused decode ops' weights: the routed experts', then the shared expert's (ws_/bs_), biases where the attrs say. */
function decodeWeights(a: Attrs, matrices: string[], biases: string[]): string[] {
  // Routed experts in two weight shards: the second shard's matrices as w_gate1, w_up1 / w_down1.
  const secondShard = Array.isArray(a['routed_shards']) && a['routed_shards'].length === 2 ? matrices.map((m) => `${m}1`) : [];
  const routed = [...matrices, ...(a['bias'] === true ? biases : []), ...secondShard];
  const shared = a['shared'] === true ? [...matrices.map((m) => m.replace(/^w_/, 'ws_')), ...(a['shared_bias'] === true ? biases.map((b) => b.replace(/^b_/, 'bs_')) : [])] : [];
  return [...routed, ...shared];
}

/** Token rounding's added pairs an op reads (X = attr extras; 0 without rounding). */
export const extrasOf = (a: Attrs): number => (typeof a['extras'] === 'number' ? a['extras'] : 0);

/** gate/up gathers an extra pair's token (extra_ids), down weights it (extra_weights). */
const groupedExtras = (a: Attrs): string[] => (extrasOf(a) ? [epilogueOf(a) === 'activation' ? 'extra_ids' : 'extra_weights'] : []);

const withInit = (a: Attrs, names: string[]) => (a['init'] === true ? [...names, 'init'] : names);

/** Checks w0/w1 [...lead, N, K] against the reduced dim and returns N; biases [...lead, N]. */
function checkMatrices(inputs: Inputs, a: Attrs, reduced: Dim, lead: Dim[]): Dim {
  const w0 = inputs['w0']!;
  const n = w0.shape[lead.length]!;
  for (const w of ['w0', 'w1']) if (inputs[w]) expectShape(w, inputs[w], [...lead, n, reduced]);
  for (const b of ['b0', 'b1']) if (inputs[b]) expectShape(b, inputs[b], [...lead, n]);
  if (epilogueOf(a) === 'activation' && !isKindRef(a['activation'] ?? 0)) throw new IRTypeError('an activation epilogue needs an activation kind');
  return n;
}

function checkInit(inputs: Inputs, out: TensorType): TensorType {
  if (inputs['init']) {
    expectShape('init', inputs['init'], out.shape);
    if (inputs['init'].dtype !== out.dtype) throw new IRTypeError(`init is ${String(inputs['init'].dtype)}, the output ${String(out.dtype)}`);
  }
  return out;
}

/** The shared expert's matrices a grouped GEMM reads as its virtual expert E: gate and up, or down. */
const sharedWeights = (a: Attrs): string[] => (a['shared'] !== true ? [] : epilogueOf(a) === 'activation' ? ['ws0', 'ws1'] : ['ws0']);

/**
 * A grouped GEMM with the shared expert as virtual expert E (one weight shard). gate/up writes a
 * flat buffer: the routed rows as before (row p at p I), then token t's shared row at
 * (K T + X + E (BM - 1)) I + t Is. down reads it and writes K T + X + T slot rows, the shared
 * expert's row of token t at K T + X + t (weight 1).
 */
function groupedWithShared(inputs: Inputs, a: Attrs): TensorType {
  const [k, e, bm, x] = [numAttr(a, 'top_k'), numAttr(a, 'experts'), tileOf(a).bm, extrasOf(a)];
  const [begin, end] = expertRange(a);
  if (begin !== 0 || end !== e) throw new IRTypeError('a grouped GEMM with the shared expert covers every expert (one shard)');
  const w0 = inputs['w0']!;
  const ws0 = inputs['ws0']!;
  if (epilogueOf(a) === 'activation') {
    const h = expectActivation('a', inputs['a']!);
    const [i, is] = [w0.shape[1] as number, ws0.shape[0] as number];
    expectShape('w0', w0, [e, i, h]);
    for (const w of ['ws0', 'ws1']) expectShape(w, inputs[w]!, [is, h]);
    return { shape: [tokenDim(k * i + is, (x + e * (bm - 1)) * i)], dtype: inputs['a']!.dtype };
  }
  const [h, i] = [w0.shape[1] as number, w0.shape[2] as number];
  const is = ws0.shape[1] as number;
  expectShape('ws0', ws0, [h, is]);
  expectShape('a', inputs['a']!, [tokenDim(k * i + is, (x + e * (bm - 1)) * i)]);
  return { shape: [tokenDim(k + 1, x), h], dtype: inputs['a']!.dtype };
}

function rowsOf(what: string, t: TensorType): Dim {
  if (t.shape.length !== 2) throw new IRTypeError(`${what} must be [rows, n]`);
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new IRTypeError(`${what} must hold activations (f32 or f16)`);
  return t.shape[1]!;
}

export const loweredOpDefinitions: Record<string, OpDefinition> = {
  'moe.align': {
    doc: 'Routing bookkeeping: (token, k) slots sorted by expert, each expert padded to block_rows, the expert of each block, and per weight shard the first block and the indirect grid of its GEMMs.',
    inputNames: (a) => ['ids', ...(a['extras'] ? ['extra_ids'] : [])],
    outputNames: ['sorted_slots', 'route_meta', 'dispatch_args'],
    infer: ({ ids, extra_ids }, a) => {
      const [k, e, bm] = [numAttr(a, 'top_k'), numAttr(a, 'experts'), numAttr(a, 'block_rows')];
      const begins = a['shard_begins'];
      if (!Array.isArray(begins) || begins.some((b) => typeof b !== 'number')) throw new IRTypeError('shard_begins must be a list of expert indices');
      const shards = begins as number[];
      if (shards[0] !== 0 || shards.some((s, i) => i > 0 && s <= shards[i - 1]!) || shards.at(-1)! >= e) {
        throw new IRTypeError('shard_begins must start at 0 and ascend below experts');
      }
      expectShape('ids', ids!, [TOKENS, k]);
      const extras = extrasOf(a);
      if (extra_ids) expectShape('extra_ids', extra_ids, [extras, 2]);
      // Token rounding's X extra pairs are slots K T .. K T + X - 1; with the shared expert grouped
      // in, its T rows follow as slots K T + X + t, in blocks of a virtual expert E.
      const shared = a['shared_expert'] === true ? 1 : 0;
      const padding = extras + (e + shared) * (bm - 1);
      return [
        { shape: [tokenDim(k + shared, padding)], dtype: 'i32' },
        { shape: [tokenDim(k + shared, padding + shards.length * bm, bm)], dtype: 'u32' },
        { shape: [6 * shards.length], dtype: 'u32' },
      ];
    },
  },
  'moe.grouped_gemm': {
    doc: 'Grouped GEMM over the expert-sorted rows of moe.align, for the experts of expert_range: gate/up with the activation (rows gathered from the tokens), or one matrix times the routing weight stored to each slot\'s row.',
    inputNames: (a) => withInit(a, ['a', 'sorted_slots', 'route_meta', 'dispatch_args', ...matrixInputs(a), ...(epilogueOf(a) === 'routing_weight' ? ['routing_weights'] : []), ...groupedExtras(a), ...sharedWeights(a)]),
    outputNames: ['y'],
    infer: (inputs, a) => {
      if (a['shared'] === true) return [groupedWithShared(inputs, a)];
      const [begin, end] = expertRange(a);
      expectExtras(inputs, extrasOf(a));
      const k = numAttr(a, 'top_k');
      const reduced = rowsOf('a', inputs['a']!);
      const n = checkMatrices(inputs, a, reduced, [end - begin]);
      const gateup = epilogueOf(a) === 'activation';
      if (gateup) expectActivation('a', inputs['a']!);
      else expectShape('a', inputs['a']!, [inputs['sorted_slots']!.shape[0]!, reduced]);
      if (inputs['routing_weights']) expectShape('routing_weights', inputs['routing_weights'], [TOKENS, k]);
      const rows = gateup ? inputs['sorted_slots']!.shape[0]! : tokenDim(k, extrasOf(a));
      return [checkInit(inputs, { shape: [rows, n], dtype: inputs['a']!.dtype })];
    },
  },
  'moe.expert_gemv': {
    doc: 'Decode GEMV over the experts each token chose (of expert_range): gate/up with the activation into slot rows, or one matrix times the routing weight.',
    inputNames: (a) => withInit(a, ['a', 'route_ids', ...matrixInputs(a), ...(epilogueOf(a) === 'routing_weight' ? ['routing_weights'] : [])]),
    outputNames: ['y'],
    infer: (inputs, a) => {
      const [begin, end] = expertRange(a);
      const k = numAttr(a, 'top_k');
      const reduced = rowsOf('a', inputs['a']!);
      const n = checkMatrices(inputs, a, reduced, [end - begin]);
      expectShape('route_ids', inputs['route_ids']!, [TOKENS, k]);
      if (epilogueOf(a) === 'activation') expectActivation('a', inputs['a']!);
      else expectShape('a', inputs['a']!, [tokenDim(k), reduced]);
      if (inputs['routing_weights']) expectShape('routing_weights', inputs['routing_weights'], [TOKENS, k]);
      return [checkInit(inputs, { shape: [tokenDim(k), n], dtype: inputs['a']!.dtype })];
    },
  },
  'moe.combine': {
    doc: 'Per token: its slot rows summed in k order (empty slots skipped), plus the shared expert\'s row, times sigmoid(x . w) with a shared gate.',
    inputNames: (a) => ['route_ids', 'slot_out', ...(a['shared'] === true && a['shared_in_slots'] !== true ? ['shared_out'] : []), ...(a['shared_gate'] === 'sigmoid' ? ['x', 'shared_gate_weight'] : []), ...(a['extras'] ? ['extra_ids'] : [])],
    outputNames: ['y'],
    infer: ({ route_ids, slot_out, shared_out, x, shared_gate_weight, extra_ids }, a) => {
      const k = numAttr(a, 'top_k');
      expectShape('route_ids', route_ids!, [TOKENS, k]);
      const h = rowsOf('slot_out', slot_out!);
      // With the shared expert grouped in, its rows follow the routed ones in slot_out.
      expectShape('slot_out', slot_out!, [tokenDim(a['shared_in_slots'] === true ? k + 1 : k, extrasOf(a)), h]);
      if (extra_ids) expectShape('extra_ids', extra_ids, [extrasOf(a), 2]);
      if (a['shared_gate'] === 'sigmoid' && a['shared'] !== true) throw new IRTypeError('a shared gate needs a shared expert');
      if (shared_out) expectShape('shared_out', shared_out, [TOKENS, h]);
      if (x) expectShape('x', x, [TOKENS, h]);
      if (shared_gate_weight) {
        expectShape('shared_gate_weight', shared_gate_weight, [1, h]);
        if (shared_gate_weight.dtype !== 'f32') throw new IRTypeError('shared_gate_weight must be f32 (dequantize it first)');
      }
      return [{ shape: [TOKENS, h], dtype: slot_out!.dtype }];
    },
  },
  'moe.round_decide': {
    doc: 'SonicMoE token rounding, step 1 (per expert): move each expert\'s count to a multiple of tile (mode up, down or nearest); pick the lowest-weight routed tokens to drop or the most probable unrouted ones to add (extra pairs, weighted by their raw probability).',
    inputNames: () => ['route_ids', 'routing_weights', 'probs'],
    outputNames: ['extra_ids', 'extra_weights', 'round_scratch'],
    infer: ({ route_ids, routing_weights, probs }, a) => {
      const [e, k, tile] = [numAttr(a, 'experts'), numAttr(a, 'top_k'), numAttr(a, 'tile')];
      expectShape('route_ids', route_ids!, [TOKENS, k]);
      expectShape('routing_weights', routing_weights!, [TOKENS, k]);
      expectShape('probs', probs!, [TOKENS, e]);
      return [{ shape: [e * (tile - 1), 2], dtype: 'i32' }, { shape: [e * (tile - 1)], dtype: 'f32' }, { shape: [e * (tile - 1) + 5 * e], dtype: 'u32' }];
    },
  },
  'moe.round_apply': {
    doc: 'SonicMoE token rounding, step 2: the dropped slots become id -1, weight 0 (written over the routing in place); round_stats: padded rows before and after, tokens dropped and added, routing weight mass changed.',
    inputNames: () => ['route_ids', 'routing_weights', 'round_scratch'],
    outputNames: ['route_ids', 'routing_weights', 'round_stats'],
    inPlace: { 0: 'route_ids', 1: 'routing_weights' },
    infer: ({ route_ids, routing_weights }, a) => {
      const k = numAttr(a, 'top_k');
      expectShape('route_ids', route_ids!, [TOKENS, k]);
      return [route_ids!, routing_weights!, { shape: [8], dtype: 'u32' }];
    },
  },
  'moe.decode_gate_up': {
    doc: 'Decode: gate/up + activation of each token\'s K chosen experts and of the shared expert (an expert every token chose), into one [T, K I + Is] row per token: its K slot rows, then its shared row.',
    inputNames: (a) => ['x', 'route_ids', ...decodeWeights(a, ['w_gate', 'w_up'], ['b_gate', 'b_up'])],
    outputNames: ['inter'],
    infer: (inputs, a) => {
      const h = expectActivation('x', inputs['x']!);
      const k = numAttr(a, 'top_k');
      expectShape('route_ids', inputs['route_ids']!, [TOKENS, k]);
      const i = inputs['w_gate']!.shape[1] as number;
      for (const w of ['w_gate', 'w_up']) expectShape(w, inputs[w]!, [inputs['w_gate']!.shape[0]!, i, h]);
      for (const w of ['w_gate1', 'w_up1']) if (inputs[w]) expectShape(w, inputs[w], [inputs['w_gate1']!.shape[0]!, i, h]);
      const is = inputs['ws_gate'] ? (inputs['ws_gate'].shape[0] as number) : 0;
      if (inputs['ws_up']) expectShape('ws_up', inputs['ws_up'], [is, h]);
      return [{ shape: [TOKENS, k * i + is], dtype: inputs['x']!.dtype }];
    },
  },
  'moe.decode_down_combine': {
    doc: 'Decode: per token, the down projection of each chosen expert\'s slot row times its routing weight, summed in k order, plus the shared expert\'s down row (times sigmoid(x . w) with a shared gate): the block\'s output.',
    inputNames: (a) => ['route_ids', 'routing_weights', 'inter', ...decodeWeights(a, ['w_down'], ['b_down']), ...(a['shared_gate'] === 'sigmoid' ? ['x', 'shared_gate_weight'] : [])],
    outputNames: ['y'],
    infer: (inputs, a) => {
      const k = numAttr(a, 'top_k');
      const [e, h, i] = inputs['w_down']!.shape as number[];
      if (inputs['w_down1']) expectShape('w_down1', inputs['w_down1'], [inputs['w_down1'].shape[0]!, h!, i!]);
      const is = inputs['ws_down'] ? (inputs['ws_down'].shape[1] as number) : 0;
      expectShape('routing_weights', inputs['routing_weights']!, [TOKENS, k]);
      expectShape('inter', inputs['inter']!, [TOKENS, k * i! + is]);
      if (inputs['b_down']) expectShape('b_down', inputs['b_down'], [e!, h!]);
      if (inputs['ws_down']) expectShape('ws_down', inputs['ws_down'], [h!, is]);
      if (inputs['shared_gate_weight']) expectShape('shared_gate_weight', inputs['shared_gate_weight'], [1, h!]);
      return [{ shape: [TOKENS, h!], dtype: inputs['inter']!.dtype }];
    },
  },
  gemm: {
    doc: 'Dense tiled GEMM over all tokens: gate/up with the activation, or one matrix (plus bias).',
    inputNames: (a) => ['a', ...matrixInputs(a)],
    outputNames: ['y'],
    infer: (inputs, a) => denseMatrixType(inputs, a),
  },
  gemv: {
    doc: 'Dense decode GEMV over all tokens: gate/up with the activation, or one matrix (plus bias).',
    inputNames: (a) => ['a', ...matrixInputs(a)],
    outputNames: ['y'],
    infer: (inputs, a) => denseMatrixType(inputs, a),
  },
  add_norm: {
    doc: 'A residual add and the norm after it in one kernel: sum = a + b (kept: the residual stream goes on), y = norm(sum).',
    inputNames: (a) => ['a', 'b', 'weight', ...(kindAttr(a, 'norm').kind === 'layernorm' && boolParam(kindAttr(a, 'norm'), 'bias') ? ['bias'] : [])],
    outputNames: ['sum', 'y'],
    infer: ({ a, b, weight }) => {
      const h = expectActivation('a', a!);
      expectShape('b', b!, [TOKENS, h]);
      expectShape('weight', weight!, [h]);
      return [a!, a!];
    },
  },
  slice_rows: {
    doc: 'Rows [begin, end) of a weight\'s leading dimension (one expert shard): a view, no kernel.',
    inputNames: () => ['w'],
    outputNames: ['y'],
    infer: ({ w }, a) => {
      const [begin, end] = [numAttr(a, 'begin'), numAttr(a, 'end')];
      const rows = w!.shape[0];
      if (typeof rows !== 'number' || !(0 <= begin && begin < end && end <= rows)) throw new IRTypeError(`rows [${begin}, ${end}) are not inside the ${String(rows)} rows of w`);
      return [{ shape: [end - begin, ...w!.shape.slice(1)], dtype: rowsDtype(w!.dtype, begin, end) }];
    },
  },
  permute_rows: {
    doc: 'A weight\'s leading rows (its experts) in another order: row i is row `order[i]` of w. A view the weight loader follows, no kernel.',
    inputNames: () => ['w'],
    outputNames: ['y'],
    infer: ({ w }, a) => {
      const order = a['order'];
      const rows = w!.shape[0];
      const isPermutation = Array.isArray(order) && order.length === rows && new Set<unknown>(order).size === rows &&
        order.every((r) => typeof r === 'number' && Number.isInteger(r) && r >= 0 && r < (rows as number));
      if (!isPermutation) throw new IRTypeError(`order must list each of the ${String(rows)} rows of w once`);
      const dtype = w!.dtype;
      return [{ shape: [...w!.shape], dtype: isMixed(dtype) ? { experts: (order as number[]).map((r) => dtype.experts[r]!) } : dtype }];
    },
  },
  dequantize: {
    doc: 'A weight\'s values in f32 (uploaded so; for kernels that read f32 only).',
    inputNames: () => ['w'],
    outputNames: ['y'],
    infer: ({ w }) => [{ shape: [...w!.shape], dtype: 'f32' }],
  },
};

/** Rows [begin, end) of a weight of `dtype`: a mixed dtype's run of one format is that format. */
function rowsDtype(dtype: DType, begin: number, end: number): DType {
  if (!isMixed(dtype)) return dtype;
  const experts = dtype.experts.slice(begin, end);
  return experts.every((d) => dtypeName(d) === dtypeName(experts[0]!)) ? experts[0]! : { experts };
}

function denseMatrixType(inputs: Inputs, a: Attrs): TensorType[] {
  const reduced = expectActivation('a', inputs['a']!);
  const n = checkMatrices(inputs, a, reduced, []);
  if (epilogueOf(a) === 'routing_weight') throw new IRTypeError('a dense matrix op has no routing weight');
  return [{ shape: [TOKENS, n], dtype: inputs['a']!.dtype }];
}

/** Model-level ops that are one kernel each as they stand. */
const KERNEL_LEVEL_MODEL_OPS: ReadonlySet<string> = new Set(['moe.route', 'embed', 'norm', 'add']);

/** Lowered ops that name a view of a weight (one expert shard, its f32 values): a buffer, not a dispatch. */
export const VIEW_OPCODES: ReadonlySet<string> = new Set(['slice_rows', 'permute_rows', 'dequantize']);

/**
 * Kernel launches of a function whose ops are all kernel-level (moe.route, the ops above and a
 * plugin's ops with a kernel, `pluginKernels`); undefined before lowering.
 */
export function dispatchCount(ops: ReadonlyArray<{ opcode: string }>, pluginKernels: ReadonlySet<string> = new Set()): number | undefined {
  if (!ops.every((op) => KERNEL_LEVEL_MODEL_OPS.has(op.opcode) || op.opcode in loweredOpDefinitions || op.opcode in attentionOpDefinitions || op.opcode in traceOpDefinitions || pluginKernels.has(op.opcode))) return undefined;
  return ops.filter((op) => !VIEW_OPCODES.has(op.opcode)).length;
}

