// Lowered opcode -> its kernel: how to render it from the op's attrs and value types, which
// value each WGSL binding reads or writes, the dispatch grid and the Params words. No decisions:
// tiles, shards, paths and formats are already attrs and types of the op.
import type { Op, Value } from '../../ir/graph.js';
import type { KindRef } from '../../ir/model-config.js';
import { inputsByName } from '../../ir/ops.js';
import { epilogueOf, expertRange, extrasOf, tileOf } from '../../ir/ops-lowered.js';
import type { RoundingMode } from '../../ir/interpret/token-rounding.js';
import { renderRoundTokensKernels } from '../kernels/round-tokens/round-tokens.js';
import { storageFormatOf } from '../../ir/storage-format.js';
import type { PlanGrid, TokenExpr } from '../../runtime/plan.js';
import { tokenExpr } from '../../runtime/plan.js';
import type { DecodeBlockShape } from '../kernels/decode-block-shape.js';
import { decodeDownCombineGrid, renderDecodeDownCombineKernel } from '../kernels/decode-down-combine/decode-down-combine.js';
import { decodeGateUpGrid, renderDecodeGateUpKernel } from '../kernels/decode-gate-up/decode-gate-up.js';
import { COMBINE_GRID_WIDTH, renderCombineKernel } from '../kernels/combine/combine.js';
import { GEMV_MAX_ROWS, GEMV_ROWS, renderGemvKernel } from '../kernels/expert-gemv/expert-gemv.js';
import { renderGemmKernel } from '../kernels/grouped-gemm/grouped-gemm.js';
import type { ActivationDtype, ActivationKernels, RenderedKernel } from '../kernels/kernel.js';
import { renderRouteAlignKernel } from '../kernels/route-align/route-align.js';
import type { RouterKernelPartial } from '../kernels/router/router-partials.js';
import type { WeightLoads } from '../kernels/weights/weight-loads.js';
import { renderRouterKernel, routerTokensPerWorkgroup } from '../kernels/router/router.js';
import type { WEBGPU_OPCODES } from './supported.js';

type DecoderOpcode = 'embed' | 'norm' | 'add' | 'add_norm' | 'attention.prepare' | 'mla.prepare' | 'mla.absorb_q' | 'mla.unabsorb' | 'attention.attend' | 'attention.decode_partials' | 'attention.decode_merge' | 'moe.trace_routes';

/** What the table needs from the function around an op, and the registry's router partials. */
export interface OpContext {
  /** The op that produced a value (for moe.align's shard count). */
  producer(v: Value): Op | undefined;
  routers: Readonly<Record<string, RouterKernelPartial>>;
  /** Each weight format's WGSL decode (builtin and a plugin's). */
  weightLoads: WeightLoads;
  /** Each activation kind's `fn act` (builtin and a plugin's). */
  activations: ActivationKernels;
}

export interface KernelEntry {
  render(op: Op, context: OpContext): RenderedKernel;
  /** WGSL binding name -> the value bound to it. */
  bindings(op: Op): Record<string, Value>;
  grid(op: Op, buffer: (v: Value) => string): PlanGrid;
  /** The Params words { tokens, expert_begin, expert_end, shard }. */
  words?(op: Op): TokenExpr[];
  label(op: Op): string;
}

const T = tokenExpr(1);
const constant = (n: number): TokenExpr => tokenExpr(0, n);
const fixedGrid = (x: TokenExpr, y: TokenExpr = constant(1), z: TokenExpr = constant(1)): PlanGrid => ({ kind: 'fixed', x, y, z });

const act = (v: Value): ActivationDtype => (v.type.dtype === 'f16' ? 'f16' : 'f32');
const width = (v: Value): number => v.type.shape.at(-1) as number;
const rowsOf = (op: Op) => (op.outputs[0]!.type.shape.at(-1) as number);
/** A weight's storage format (legalize-webgpu checked that the target decodes it). */
const formatOf = (w: Value) => storageFormatOf(w.type.dtype)!;

/** The matrix ops' shared reading of their op: gate/up or one matrix, bias, routing weight, format. */
function matrixShape(op: Op) {
  const inputs = inputsByName(op);
  const gateup = epilogueOf(op.attrs) === 'activation';
  return {
    act: act(inputs['a']!),
    gateup,
    bias: op.attrs['bias'] === true,
    weighted: epilogueOf(op.attrs) === 'routing_weight',
    kdim: width(inputs['a']!),
    ndim: rowsOf(op),
    topK: (op.attrs['top_k'] as number | undefined) ?? 0,
    ...(gateup ? { activation: op.attrs['activation'] as KindRef } : {}),
    weights: formatOf(inputs['w0']!),
  };
}

/** Every input but the grid's and the destination's, plus `out`. */
function matrixBindings(op: Op): Record<string, Value> {
  const { dispatch_args: _args, init: _init, ...rest } = inputsByName(op);
  return { ...rest, out: op.outputs[0]! };
}

const shardWords = (op: Op): TokenExpr[] => {
  const [begin, end] = expertRange(op.attrs);
  return [T, constant(begin), constant(end), constant(op.attrs['shard'] as number)];
};

const shardLabel = (op: Op) => `[${expertRange(op.attrs).join(', ')})`;
const matrixLabel = (op: Op) => (epilogueOf(op.attrs) === 'activation' ? 'gate/up' : 'down');
/** `shared` or `dense`: the role of the weights a dense matrix op reads. */
const roleOf = (op: Op) => inputsByName(op)['w0']!.role ?? 'dense';

/** The fused decode kernels' description of the block, read off either fused op. */
function decodeBlockShape(op: Op): DecodeBlockShape {
  const i = inputsByName(op);
  const down = op.opcode === 'moe.decode_down_combine';
  const routedWeight = i[down ? 'w_down' : 'w_gate']!;
  const sharedWeight = i[down ? 'ws_down' : 'ws_gate'];
  const intermediate = (w: Value) => (down ? w.type.shape.at(-1) : w.type.shape.at(-2)) as number;
  const x = i['x'];
  return {
    hidden: down ? rowsOf(op) : width(x!),
    topK: op.attrs['top_k'] as number,
    routed: { intermediate: intermediate(routedWeight), activation: op.attrs['activation'] as KindRef, bias: op.attrs['bias'] === true, weights: formatOf(routedWeight) },
    ...(sharedWeight ? { shared: { intermediate: intermediate(sharedWeight), activation: op.attrs['shared_activation'] as KindRef, bias: op.attrs['shared_bias'] === true, weights: formatOf(sharedWeight) } } : {}),
    sharedGate: op.attrs['shared_gate'] === 'sigmoid',
    act: act(op.outputs[0]!),
    ...(Array.isArray(op.attrs['routed_shards']) ? { routedShards: op.attrs['routed_shards'] as number[] } : {}),
    rows: op.attrs['rows'] as number,
  };
}

/**
 * A grouped GEMM with the shared expert as virtual expert E: its intermediate size and weight
 * format, and the routed dims read off the weights (the intermediate buffer is flat then).
 */
function sharedShape(op: Op) {
  if (op.attrs['shared'] !== true) return {};
  const i = inputsByName(op);
  const [ws0, w0] = [i['ws0']!, i['w0']!];
  const format = formatOf(ws0);
  const extras = extrasOf(op.attrs);
  return epilogueOf(op.attrs) === 'activation'
    ? { ndim: w0.type.shape[1] as number, shared: { ndim: ws0.type.shape[0] as number, format, extras } }
    : { kdim: w0.type.shape[2] as number, shared: { kdim: ws0.type.shape[1] as number, format, extras } };
}

const roundShape = (op: Op) => ({ experts: op.attrs['experts'] as number, topK: op.attrs['top_k'] as number, tile: op.attrs['tile'] as number, mode: op.attrs['mode'] as RoundingMode });

function checkGemvRows(op: Op): number {
  const rows = op.attrs['rows'] as number;
  if (rows !== GEMV_ROWS) throw new Error(`internal: the GEMV kernel computes ${GEMV_ROWS} outputs per workgroup, the IR asks for ${rows}`);
  return rows;
}

/** The MoE block's and the dense matrices' kernels (the decoder's others: kernel-table-attention.ts, kernel-table-decoder.ts). */
export const kernelTable: Record<Exclude<(typeof WEBGPU_OPCODES)[number], 'slice_rows' | 'permute_rows' | 'dequantize' | DecoderOpcode>, KernelEntry> = {
  'moe.route': {
    render: (op, context) => {
      const i = inputsByName(op);
      return renderRouterKernel({ act: act(i['x']!), hidden: width(i['x']!), experts: op.attrs['experts'] as number, topK: op.attrs['top_k'] as number, router: op.attrs['router'] as KindRef, bias: !!i['bias'], correctionBias: !!i['correction_bias'], probs: op.attrs['probs'] === true, expertOrder: op.attrs['expert_order'] as number[] | undefined }, context.routers);
    },
    bindings: (op) => {
      const i = inputsByName(op);
      return { x: i['x']!, router_weight: i['weight']!, ...(i['bias'] ? { router_bias: i['bias'] } : {}), ...(i['correction_bias'] ? { correction_bias: i['correction_bias'] } : {}), route_ids: op.outputs[0]!, route_weights: op.outputs[1]!, ...(op.outputs[2] ? { route_probs: op.outputs[2] } : {}) };
    },
    grid: (op) => fixedGrid(tokenExpr(1, 0, routerTokensPerWorkgroup(op.attrs['experts'] as number))),
    label: () => 'router',
  },
  'moe.align': {
    render: (op) => renderRouteAlignKernel({
      experts: op.attrs['experts'] as number, topK: op.attrs['top_k'] as number, blockRows: op.attrs['block_rows'] as number,
      shardBegins: op.attrs['shard_begins'] as number[], gateUpTiles: op.attrs['gate_up_tiles'] as number, downTiles: op.attrs['down_tiles'] as number, extras: extrasOf(op.attrs),
      ...(op.attrs['shared_expert'] === true ? { sharedExpert: true } : {}),
    }),
    bindings: (op) => ({ route_ids: op.inputs[0]!, ...(op.inputs[1] ? { extra_ids: op.inputs[1] } : {}), sorted_slots: op.outputs[0]!, route_meta: op.outputs[1]!, dispatch_args: op.outputs[2]! }),
    grid: () => fixedGrid(constant(1)),
    label: () => 'route-align',
  },
  'moe.grouped_gemm': {
    render: (op, context) => {
      const align = context.producer(inputsByName(op)['route_meta']!)!;
      return renderGemmKernel({ ...matrixShape(op), activations: context.activations, grouped: true, shards: (align.attrs['shard_begins'] as number[]).length, tile: tileOf(op.attrs), extras: extrasOf(op.attrs) > 0, ...sharedShape(op) }, context.weightLoads);
    },
    bindings: matrixBindings,
    // moe.align writes (gate/up tiles, blocks, 1) at word 6 s and (down tiles, blocks, 1) at 6 s + 3.
    grid: (op, buffer) => ({ kind: 'indirect', buffer: buffer(inputsByName(op)['dispatch_args']!), offset: 24 * (op.attrs['shard'] as number) + (epilogueOf(op.attrs) === 'activation' ? 0 : 12) }),
    words: shardWords,
    label: (op) => `experts ${matrixLabel(op)} ${shardLabel(op)}`,
  },
  'moe.expert_gemv': {
    render: (op, context) => renderGemvKernel({ ...matrixShape(op), activations: context.activations, grouped: true, maxRows: GEMV_MAX_ROWS }, context.weightLoads),
    bindings: matrixBindings,
    grid: (op) => fixedGrid(constant(Math.ceil(rowsOf(op) / checkGemvRows(op))), constant(op.attrs['top_k'] as number), T),
    words: shardWords,
    label: (op) => `experts ${matrixLabel(op)} GEMV ${shardLabel(op)}`,
  },
  'moe.combine': {
    render: (op) => renderCombineKernel({ act: act(op.outputs[0]!), hidden: rowsOf(op), topK: op.attrs['top_k'] as number, shared: op.attrs['shared'] === true, sharedGate: op.attrs['shared_gate'] === 'sigmoid', extras: extrasOf(op.attrs), ...(op.attrs['shared_in_slots'] === true ? { sharedInSlots: true } : {}) }),
    bindings: (op) => ({ ...inputsByName(op), out: op.outputs[0]! }),
    grid: () => fixedGrid(tokenExpr(1, 0, 1, COMBINE_GRID_WIDTH), tokenExpr(1, 0, COMBINE_GRID_WIDTH)),
    label: () => 'combine',
  },
  'moe.round_decide': {
    render: (op) => renderRoundTokensKernels(roundShape(op)).decide,
    bindings: (op) => {
      const i = inputsByName(op);
      return { route_ids: i['route_ids']!, route_weights: i['routing_weights']!, probs: i['probs']!, extra_ids: op.outputs[0]!, extra_weights: op.outputs[1]!, round_scratch: op.outputs[2]! };
    },
    grid: (op) => fixedGrid(constant(op.attrs['experts'] as number)),
    label: () => 'round tokens (decide)',
  },
  'moe.round_apply': {
    render: (op) => renderRoundTokensKernels(roundShape(op)).apply,
    bindings: (op) => {
      const i = inputsByName(op);
      return { route_ids: op.outputs[0]!, route_weights: op.outputs[1]!, round_scratch: i['round_scratch']!, round_stats: op.outputs[2]! };
    },
    grid: () => fixedGrid(constant(1)),
    label: () => 'round tokens (apply)',
  },
  'moe.decode_gate_up': {
    render: (op, context) => renderDecodeGateUpKernel({ ...decodeBlockShape(op), activations: context.activations }, context.weightLoads),
    bindings: (op) => ({ ...inputsByName(op), inter: op.outputs[0]! }),
    grid: (op) => {
      const [tiles, slots] = decodeGateUpGrid(decodeBlockShape(op), 1);
      return fixedGrid(constant(tiles), constant(slots), T);
    },
    label: (op) => `experts${op.attrs['shared'] === true ? ' + shared' : ''} gate/up GEMV`,
  },
  'moe.decode_down_combine': {
    render: (op, context) => renderDecodeDownCombineKernel({ ...decodeBlockShape(op), activations: context.activations }, context.weightLoads),
    bindings: (op) => ({ ...inputsByName(op), out: op.outputs[0]! }),
    // One workgroup per n tile of H serves every token (it reads each active expert's rows once).
    grid: (op) => fixedGrid(constant(decodeDownCombineGrid(decodeBlockShape(op))[0])),
    label: (op) => `experts${op.attrs['shared'] === true ? ' + shared' : ''} down GEMV + combine`,
  },
  gemm: {
    render: (op, context) => renderGemmKernel({ ...matrixShape(op), activations: context.activations, grouped: false, shards: 1, tile: tileOf(op.attrs) }, context.weightLoads),
    bindings: matrixBindings,
    grid: (op) => {
      const tile = tileOf(op.attrs);
      return fixedGrid(constant(Math.ceil(rowsOf(op) / tile.bn)), tokenExpr(1, 0, tile.bm));
    },
    label: (op) => `${roleOf(op)} ${matrixLabel(op)}`,
  },
  gemv: {
    render: (op, context) => renderGemvKernel({ ...matrixShape(op), activations: context.activations, grouped: false, maxRows: GEMV_MAX_ROWS }, context.weightLoads),
    bindings: matrixBindings,
    grid: (op) => fixedGrid(constant(Math.ceil(rowsOf(op) / checkGemvRows(op)))),
    label: (op) => `${roleOf(op)} ${matrixLabel(op)} GEMV`,
  },
};

