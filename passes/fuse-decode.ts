// Decode in 3 dispatches per MoE block: the routed gate/up GEMV and the shared expert's become one
// (the shared expert is an expert every token chose, slot K), and the down GEMVs fuse with the
// combine (one workgroup per token and row range sums its k experts in a fixed order, then the
// shared row: deterministic, no float atomics). A sharded block keeps the per-shard GEMVs. The
// fused ops' `rows` (outputs, one thread each, per workgroup) is the target's decodeRows.
import type { Graph, Op, Value } from '../ir/graph.js';
import { inputsByName } from '../ir/ops.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { dtypeName } from '../ir/types.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const fuseDecode: Pass = {
  name: 'fuse-decode',
  description: 'Decode path: router + gate/up of routed and shared experts + down fused with combine (3 dispatches).',
  run(module, context) {
    return forEachFunction(module, (f) => (pathOf(f) === 'decode' ? fuseFunction(f, context.target.decodeRows) : f));
  },
};

interface DecodeBlock {
  combine: Op;
  /** The first (or only) weight shard's GEMVs, and the second shard's when the experts are split in two. */
  gateUp: Op;
  down: Op;
  gateUp1?: Op;
  down1?: Op;
  sharedGateUp?: Op;
  sharedDown?: Op;
}

/**
 * The expert GEMVs of one or two weight shards ending in `last`: [op] for a whole weight, [shard 0,
 * shard 1] for a chain of two (the second reads the first's rows as `init`); undefined otherwise.
 */
function shardChain(last: Op | undefined, producer: (v: Value) => Op | undefined, params: Set<number>): Op[] | undefined {
  if (last?.opcode !== 'moe.expert_gemv') return undefined;
  if (last.attrs['init'] !== true) return params.has(inputsByName(last)['w0']!.id) ? [last] : undefined;
  const first = producer(inputsByName(last)['init']!);
  return first?.opcode === 'moe.expert_gemv' && first.attrs['init'] !== true && first.attrs['shard'] === 0 && last.attrs['shard'] === 1 ? [first, last] : undefined;
}

/** The combine's producers when they are the GEMVs the fused kernels replace (one or two shards; two without biases). */
function matchBlock(combine: Op, producer: (v: Value) => Op | undefined, params: Set<number>): DecodeBlock | undefined {
  const c = inputsByName(combine);
  const downs = shardChain(producer(c['slot_out']!), producer, params);
  const gateUps = downs && shardChain(producer(inputsByName(downs[0]!)['a']!), producer, params);
  if (!downs || !gateUps || downs.length !== gateUps.length) return undefined;
  const [gateUp, gateUp1] = gateUps as [Op, Op | undefined];
  const [down, down1] = downs as [Op, Op | undefined];
  // Two shards bind two matrices each: with biases (or a shared expert) the kernels pass 8 storage buffers.
  if (gateUp1 && (gateUp.attrs['bias'] === true || c['shared_out'])) return undefined;
  if (gateUp1 && inputsByName(down1!)['a']!.id !== gateUp1.outputs[0]!.id) return undefined;
  // The fused kernels decode both shards in one format; mixed precision's shards of two formats stay apart.
  const formatOf = (op: Op) => dtypeName(inputsByName(op)['w0']!.type.dtype);
  if (gateUp1 && (formatOf(gateUp) !== formatOf(gateUp1) || formatOf(down) !== formatOf(down1!))) return undefined;
  if (gateUp1) return { combine, gateUp, down, gateUp1, down1: down1! };
  if (!c['shared_out']) return { combine, gateUp, down };
  const sharedDown = producer(c['shared_out']);
  const sharedGateUp = sharedDown && producer(inputsByName(sharedDown)['a']!);
  if (sharedDown?.opcode !== 'gemv' || sharedGateUp?.opcode !== 'gemv') return undefined;
  return { combine, gateUp, down, sharedGateUp, sharedDown };
}

function fuseFunction(f: Graph, rows: number): Graph {
  const producers = new Map<number, Op>();
  for (const op of f.ops) for (const v of op.outputs) producers.set(v.id, op);
  const params = new Set(f.params.map((p) => p.id));
  const blocks = f.ops.filter((op) => op.opcode === 'moe.combine').map((c) => matchBlock(c, (v) => producers.get(v.id), params)).filter((b) => b !== undefined);
  const fused = new Set(blocks.flatMap((b) => [b.gateUp, b.down, ...(b.gateUp1 ? [b.gateUp1, b.down1!] : []), ...(b.sharedGateUp ? [b.sharedGateUp, b.sharedDown!] : [])]));
  const r = new GraphRewriter(f);
  for (const op of f.ops) {
    const block = blocks.find((b) => b.combine === op);
    if (block) emitFused(r, block, rows);
    else if (!fused.has(op)) r.keep(op);
  }
  return r.finish();
}

function emitFused(r: GraphRewriter, b: DecodeBlock, rows: number): void {
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
    rows,
    ...(b.gateUp1 ? { routed_shards: [0, (b.gateUp1.attrs['expert_range'] as number[])[0]!] } : {}),
  };
  const gu1 = b.gateUp1 && inputsByName(b.gateUp1);
  const dn1 = b.down1 && inputsByName(b.down1);
  const interName = (b.gateUp1 ?? b.gateUp).outputs[0]!.name.replace(/expert_inter$/, 'decode_inter');
  const inter = r.emit1('moe.decode_gate_up', [
    gu['a']!, gu['route_ids']!, gu['w0']!, gu['w1']!, ...(bias ? [gu['b0']!, gu['b1']!] : []), ...(gu1 ? [gu1['w0']!, gu1['w1']!] : []),
    ...(sgu ? [sgu['w0']!, sgu['w1']!, ...(sharedBias ? [sgu['b0']!, sgu['b1']!] : [])] : []),
  ], attrs, interName);
  r.emit1('moe.decode_down_combine', [
    c['route_ids']!, dn['routing_weights']!, inter, dn['w0']!, ...(bias ? [dn['b0']!] : []), ...(dn1 ? [dn1['w0']!] : []),
    ...(sdn ? [sdn['w0']!, ...(sharedBias ? [sdn['b0']!] : [])] : []),
    ...(c['shared_gate_weight'] ? [c['x']!, c['shared_gate_weight']] : []),
  ], attrs, b.combine.outputs[0]!.name, b.combine.outputs[0]);
}
