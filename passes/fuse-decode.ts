// Decode in 3 dispatches per MoE block: the routed gate/up GEMV and the shared expert's become one
// (the shared expert is an expert every token chose, slot K), and the down GEMVs fuse with the
// combine (one workgroup per token and row range sums its k experts in a fixed order, then the
// shared row: deterministic, no float atomics). A sharded block keeps the per-shard GEMVs.
import type { Graph, Op, Value } from '../ir/graph.js';
import { inputsByName } from '../ir/ops.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const fuseDecode: Pass = {
  name: 'fuse-decode',
  description: 'Decode path: router + gate/up of routed and shared experts + down fused with combine (3 dispatches).',
  run(module) {
    return forEachFunction(module, (f) => (pathOf(f) === 'decode' ? fuseFunction(f) : f));
  },
};

interface DecodeBlock {
  combine: Op;
  gateUp: Op;
  down: Op;
  sharedGateUp?: Op;
  sharedDown?: Op;
}

/** The combine's producers when they are the unsharded GEMVs the fused kernels replace. */
function matchBlock(combine: Op, producer: (v: Value) => Op | undefined, params: Set<number>): DecodeBlock | undefined {
  const c = inputsByName(combine);
  const down = producer(c['slot_out']!);
  const gateUp = down && producer(inputsByName(down)['a']!);
  const whole = (op: Op | undefined) => op !== undefined && params.has(inputsByName(op)['w0']!.id) && op.attrs['init'] !== true;
  if (down?.opcode !== 'moe.expert_gemv' || gateUp?.opcode !== 'moe.expert_gemv' || !whole(down) || !whole(gateUp)) return undefined;
  if (!c['shared_out']) return { combine, gateUp, down };
  const sharedDown = producer(c['shared_out']);
  const sharedGateUp = sharedDown && producer(inputsByName(sharedDown)['a']!);
  if (sharedDown?.opcode !== 'gemv' || sharedGateUp?.opcode !== 'gemv') return undefined;
  return { combine, gateUp, down, sharedGateUp, sharedDown };
}

function fuseFunction(f: Graph): Graph {
  const producers = new Map<number, Op>();
  for (const op of f.ops) for (const v of op.outputs) producers.set(v.id, op);
  const params = new Set(f.params.map((p) => p.id));
  const blocks = f.ops.filter((op) => op.opcode === 'moe.combine').map((c) => matchBlock(c, (v) => producers.get(v.id), params)).filter((b) => b !== undefined);
  const fused = new Set(blocks.flatMap((b) => [b.gateUp, b.down, ...(b.sharedGateUp ? [b.sharedGateUp, b.sharedDown!] : [])]));
  const r = new GraphRewriter(f);
  for (const op of f.ops) {
    const block = blocks.find((b) => b.combine === op);
    if (block) emitFused(r, block);
    else if (!fused.has(op)) r.keep(op);
  }
  return r.finish();
}

function emitFused(r: GraphRewriter, b: DecodeBlock): void {
  const gu = inputsByName(b.gateUp);
  const dn = inputsByName(b.down);
  const c = inputsByName(b.combine);
  const sgu = b.sharedGateUp && inputsByName(b.sharedGateUp);
  const sdn = b.sharedDown && inputsByName(b.sharedDown);
  const bias = b.gateUp.attrs['bias'] === true;
  const sharedBias = b.sharedGateUp?.attrs['bias'] === true;
  const attrs = {
    activation: b.gateUp.attrs['activation']!,
    bias,
    top_k: b.gateUp.attrs['top_k']!,
    shared: !!sgu,
    ...(sgu ? { shared_activation: b.sharedGateUp!.attrs['activation']!, shared_bias: sharedBias } : {}),
    shared_gate: b.combine.attrs['shared_gate']!,
    rows: b.gateUp.attrs['rows']!,
  };
  const interName = b.gateUp.outputs[0]!.name.replace(/expert_inter$/, 'decode_inter');
  const inter = r.emit1('moe.decode_gate_up', [
    gu['a']!, gu['route_ids']!, gu['w0']!, gu['w1']!, ...(bias ? [gu['b0']!, gu['b1']!] : []),
    ...(sgu ? [sgu['w0']!, sgu['w1']!, ...(sharedBias ? [sgu['b0']!, sgu['b1']!] : [])] : []),
  ], attrs, interName);
  r.emit1('moe.decode_down_combine', [
    c['route_ids']!, dn['routing_weights']!, inter, dn['w0']!, ...(bias ? [dn['b0']!] : []),
    ...(sdn ? [sdn['w0']!, ...(sharedBias ? [sdn['b0']!] : [])] : []),
    ...(c['shared_gate_weight'] ? [c['x']!, c['shared_gate_weight']] : []),
  ], attrs, b.combine.outputs[0]!.name, b.combine.outputs[0]);
}
