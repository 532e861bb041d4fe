// Lowers `moe.experts` to kernel-level ops. prefill: moe.align sorts the (token, k) slots by
// expert and pads each expert to the GEMM tile's rows; a grouped GEMM gathers token rows on load
// and applies the activation in its epilogue; a second multiplies by the routing weight into
// each slot's row. decode: the same two products as GEMVs over the chosen experts only. Then
// moe.combine sums each token's slot rows in k order (no float atomics).
import type { AttrValue, Graph, Op, Value } from '../ir/graph.js';
import { boolParam, numParam, type KindRef } from '../ir/model-config.js';
import { inputsByName } from '../ir/ops.js';
import { tileAttr } from '../ir/ops-lowered.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { expertGemmTilesOf, type TargetDescription } from '../ir/target.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const lowerRoutedExperts: Pass = {
  name: 'lower-routed-experts',
  description: 'moe.experts -> moe.align + grouped GEMMs (prefill) or expert GEMVs (decode) + moe.combine.',
  run(module, { target }) {
    return forEachFunction(module, (f) => lowerFunction(f, target));
  },
};

/** `layers.3.moe` for the block whose routed experts produce `layers.3.moe.experts`. */
export const blockPrefix = (op: Op): string => op.outputs[0]!.name.replace(/\.experts$/, '');

function lowerFunction(f: Graph, target: TargetDescription): Graph {
  const r = new GraphRewriter(f);
  for (const op of f.ops) {
    if (op.opcode !== 'moe.experts') r.keep(op);
    else if (pathOf(f) === 'decode') lowerDecode(r, op, target);
    else lowerPrefill(r, op, target);
  }
  return r.finish();
}

interface ExpertsOp {
  prefix: string;
  activation: KindRef;
  bias: boolean;
  experts: number;
  topK: number;
  x: Value;
  ids: Value;
  weights: Value;
  gateUp: Value[];
  down: Value[];
  /** Token rounding's added pairs (passes/round-tokens.ts), when the prefill path rounds. */
  extras?: { count: number; ids: Value; weights: Value };
}

function readExperts(op: Op): ExpertsOp {
  const i = inputsByName(op);
  const activation = op.attrs['activation'] as KindRef;
  const bias = boolParam(activation, 'bias');
  return {
    prefix: blockPrefix(op),
    activation,
    bias,
    experts: op.attrs['experts'] as number,
    topK: op.attrs['top_k'] as number,
    x: i['x']!,
    ids: i['ids']!,
    weights: i['weights']!,
    gateUp: bias ? [i['gate']!, i['up']!, i['gate_bias']!, i['up_bias']!] : [i['gate']!, i['up']!],
    down: bias ? [i['down']!, i['down_bias']!] : [i['down']!],
    ...(op.attrs['extras'] ? { extras: { count: op.attrs['extras'] as number, ids: i['extra_ids']!, weights: i['extra_weights']! } } : {}),
  };
}

const matrixAttrs = (e: ExpertsOp, gateUp: boolean) => ({
  epilogue: gateUp ? 'activation' : 'routing_weight',
  ...(gateUp ? { activation: e.activation } : {}),
  bias: e.bias,
  experts: e.experts,
  top_k: e.topK,
  expert_range: [0, e.experts],
  shard: 0,
});

function lowerPrefill(r: GraphRewriter, op: Op, target: TargetDescription): void {
  const e = readExperts(op);
  const tiles = expertGemmTilesOf(target);
  const hidden = e.x.type.shape[1] as number;
  const intermediate = numParam(e.activation, 'intermediate');
  const x = e.extras;
  const extras: Record<string, AttrValue> = x ? { extras: x.count } : {};
  const [slots, meta, args] = r.emit('moe.align', [e.ids, ...(x ? [x.ids] : [])], {
    experts: e.experts, top_k: e.topK, block_rows: tiles.gateUp.bm, shard_begins: [0],
    gate_up_tiles: Math.ceil(intermediate / tiles.gateUp.bn), down_tiles: Math.ceil(hidden / tiles.down.bn), ...extras,
  }, [`${e.prefix}.sorted_slots`, `${e.prefix}.route_meta`, `${e.prefix}.dispatch_args`]);
  const routing = [slots!, meta!, args!];
  const inter = r.emit1('moe.grouped_gemm', [e.x, ...routing, ...e.gateUp, ...(x ? [x.ids] : [])], { ...matrixAttrs(e, true), tile: tileAttr(tiles.gateUp), ...extras }, `${e.prefix}.expert_inter`);
  const slotOut = r.emit1('moe.grouped_gemm', [inter, ...routing, ...e.down, e.weights, ...(x ? [x.weights] : [])], { ...matrixAttrs(e, false), tile: tileAttr(tiles.down), ...extras }, `${e.prefix}.slot_out`);
  r.emit1('moe.combine', [e.ids, slotOut, ...(x ? [x.ids] : [])], { top_k: e.topK, shared: false, shared_gate: 'none', ...extras }, op.outputs[0]!.name, op.outputs[0]);
}

function lowerDecode(r: GraphRewriter, op: Op, target: TargetDescription): void {
  const e = readExperts(op);
  const rows = target.gemvRows;
  const inter = r.emit1('moe.expert_gemv', [e.x, e.ids, ...e.gateUp], { ...matrixAttrs(e, true), rows }, `${e.prefix}.expert_inter`);
  const slotOut = r.emit1('moe.expert_gemv', [inter, e.ids, ...e.down, e.weights], { ...matrixAttrs(e, false), rows }, `${e.prefix}.slot_out`);
  r.emit1('moe.combine', [e.ids, slotOut], { top_k: e.topK, shared: false, shared_gate: 'none' }, op.outputs[0]!.name, op.outputs[0]);
}
