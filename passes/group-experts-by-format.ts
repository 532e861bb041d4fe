// Under `quantize experts = mixed(...)` a layer's experts have different formats, and a kernel
// decodes one. So each format's experts become one contiguous run: the stacked weights are read in
// an order that groups experts by format (permute_rows, a view the weight loader follows: nothing
// moves at run time), and the router writes each chosen expert's position in that order
// (moe.route's expert_order). Every op after the router then indexes the reordered weights, and
// shard-experts cuts the runs into launches of one format each. The order is stable: formats in
// the order their first expert appears, experts in id order within a format. The routing weights,
// the combine and a token's choices are unchanged: only the ids' numbering is.
import type { Graph, Op, Value } from '../ir/graph.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { dtypeName, isMixed, type MixedType } from '../ir/types.js';
import { forEachFunction, type Pass } from './pass.js';

export const groupExpertsByFormat: Pass = {
  name: 'group-experts-by-format',
  description: 'Mixed precision: order each layer\'s experts by format (permute_rows), the router writes the new positions (expert_order).',
  run(module) {
    return forEachFunction(module, groupFunction);
  },
};

/** The `layers.N.` prefix every value of a layer's block carries (ir/build-model.ts). */
const layerPrefix = (v: Value): string | undefined => /^layers\.\d+\./.exec(v.name)?.[0];

/** Expert ids in storage order: grouped by format, stable. */
export function formatOrder(dtype: MixedType): number[] {
  const names = dtype.experts.map((d) => dtypeName(d));
  const formats = [...new Set(names)];
  return formats.flatMap((f) => names.flatMap((n, e) => (n === f ? [e] : [])));
}

function groupFunction(f: Graph): Graph {
  const orders = new Map<string, number[]>();
  for (const p of f.params) {
    const prefix = layerPrefix(p);
    if (!isMixed(p.type.dtype) || !prefix) continue;
    const order = formatOrder(p.type.dtype);
    const other = orders.get(prefix);
    if (other && other.join() !== order.join()) throw new Error(`internal: ${p.name}'s experts are grouped unlike the rest of its layer`);
    orders.set(prefix, order);
  }
  const reordered = new Map([...orders].filter(([, order]) => order.some((e, i) => e !== i)));
  if (reordered.size === 0) return f;
  const prefixOf = (op: Op) => layerPrefix(op.outputs[0]!);
  for (const op of f.ops) {
    if (op.opcode === 'moe.round_decide' && reordered.has(prefixOf(op) ?? '')) {
      throw new Error(`${prefixOf(op)}moe: quantize experts = mixed(...) with token_rounding = sonic is not supported yet ` +
        '(token rounding reads router probabilities by expert id, which mixed precision renumbers); use token_rounding = exact');
    }
  }
  const r = new GraphRewriter(f);
  const permuted = new Map<number, Value>();
  // Every routed-expert param of the layer (biases too: they are indexed by expert like the matrices).
  for (const p of f.params) {
    const order = reordered.get(layerPrefix(p) ?? '');
    if (order && p.role === 'expert') permuted.set(p.id, r.emit1('permute_rows', [p], { order }, `${p.name}.by_format`));
  }
  for (const op of f.ops) {
    const order = reordered.get(prefixOf(op) ?? '');
    const inputs = op.inputs.map((v) => permuted.get(v.id) ?? v);
    // The router numbers experts by storage position (expert_order[e]); a trace maps positions
    // back to ids (stored_experts[i]), here and at the next MoE layer it pairs them with.
    const attrs = { ...op.attrs };
    if (order && op.opcode === 'moe.route') attrs['expert_order'] = inversePermutation(order);
    if (op.opcode === 'moe.trace_routes') {
      const orderOf = (ids: Value | undefined) => (ids ? reordered.get(layerPrefix(ids) ?? '') : undefined);
      const [here, next] = [orderOf(op.inputs[0]), op.attrs['next_experts'] ? orderOf(op.inputs[1]) : undefined];
      if (here) attrs['stored_experts'] = here;
      if (next) attrs['next_stored_experts'] = next;
    }
    r.keep({ ...op, inputs, attrs });
  }
  return r.finish();
}

/** order[i] = the expert stored at position i  ->  position of each expert. */
function inversePermutation(order: readonly number[]): number[] {
  const position = new Array<number>(order.length);
  order.forEach((e, i) => (position[e] = i));
  return position;
}
