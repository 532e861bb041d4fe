// Splits stacked expert weights into shards that fit one storage binding (at their packed size):
// each grouped GEMM / expert GEMV becomes one op per shard over slice_rows of its weights, all
// writing one buffer (each shard's op takes the previous one's result as `init`), and moe.align
// learns the shard boundaries so it writes one indirect grid per shard.
import type { Graph, Op, Value } from '../ir/graph.js';
import type { OpDefinition } from '../ir/op-checks.js';
import { inputsByName } from '../ir/ops.js';
import { expertRange } from '../ir/ops-lowered.js';
import { GraphRewriter, reinferGraph } from '../ir/rewriter.js';
import { weightFormatOf } from '../ir/storage-format.js';
import { dimText } from '../ir/types.js';
import { packedBytes, type FormatLayouts } from '../runtime/quant/weight-format.js';
import { forEachFunction, type Pass } from './pass.js';

const GROUPED = new Set(['moe.grouped_gemm', 'moe.expert_gemv']);
const WEIGHTS = ['w0', 'w1', 'b0', 'b1'];

export const shardExperts: Pass = {
  name: 'shard-experts',
  description: 'Split expert weights into shards that fit maxStorageBufferBindingSize; one grouped op per shard.',
  run(module, { target, ops }) {
    return forEachFunction(module, (f) => shardFunction(f, target.limits.maxStorageBufferBindingSize, ops, target.weightFormats));
  },
};

/** First expert of each shard: as many experts per shard as fit one binding. */
export function shardBegins(experts: number, bytesPerExpert: number, maxBinding: number, what: string): number[] {
  const perShard = Math.floor(maxBinding / bytesPerExpert);
  if (perShard < 1) {
    throw new Error(`${what}: one expert's matrix is ${bytesPerExpert} bytes, more than the ${maxBinding}-byte storage binding limit; ` +
      'splitting a single expert across bindings is not supported yet');
  }
  return Array.from({ length: Math.ceil(experts / perShard) }, (_, s) => s * perShard);
}

/** The shard boundaries of a block, from the largest packed expert matrix its grouped ops read. */
function blockShards(ops: Op[], maxBinding: number, formats: FormatLayouts): number[] {
  let bytes = 0;
  let experts = 0;
  let what = '';
  for (const op of ops) {
    const w = inputsByName(op)['w0']!;
    const shape = w.type.shape as number[];
    experts = expertRange(op.attrs)[1];
    const format = weightFormatOf(w, formats);
    const b = packedBytes(format, [1, ...shape.slice(1)], formats);
    if (b > bytes) [bytes, what] = [b, `${w.name} [${shape.map(dimText).join(', ')}] ${format.format}`];
  }
  return shardBegins(experts, bytes, maxBinding, what);
}

function shardFunction(f: Graph, maxBinding: number, opTable: Readonly<Record<string, OpDefinition>>, formats: FormatLayouts): Graph {
  // Ops that still read whole params (not yet sharded: sharding twice changes nothing).
  const params = new Set(f.params.map((p) => p.id));
  const grouped = f.ops.filter((op) => GROUPED.has(op.opcode) && params.has(inputsByName(op)['w0']!.id));
  if (grouped.length === 0) return f;
  // Every block of a function has its own experts; group the grouped ops by the moe.align or route ids they read.
  const byBlock = new Map<number, Op[]>();
  for (const op of grouped) {
    const key = (inputsByName(op)['sorted_slots'] ?? inputsByName(op)['route_ids'])!.id;
    byBlock.set(key, [...(byBlock.get(key) ?? []), op]);
  }
  const begins = new Map<number, number[]>();
  for (const [key, ops] of byBlock) begins.set(key, blockShards(ops, maxBinding, formats));
  const r = new GraphRewriter(f);
  const slices = new Map<string, Value>();
  for (const op of f.ops) {
    if (op.opcode === 'moe.align') {
      const b = begins.get(op.outputs[0]!.id);
      r.keep(b ? { ...op, attrs: { ...op.attrs, shard_begins: b } } : op);
      continue;
    }
    const inputs = inputsByName(op, opTable);
    const b = grouped.includes(op) ? begins.get((inputs['sorted_slots'] ?? inputs['route_ids'])!.id)! : undefined;
    if (!b || b.length === 1) {
      r.keep(op);
      continue;
    }
    const experts = expertRange(op.attrs)[1];
    const out = op.outputs[0]!;
    let previous: Value | undefined;
    b.forEach((begin, shard) => {
      const end = b[shard + 1] ?? experts;
      const sliced = (name: string, v: Value) => (WEIGHTS.includes(name) ? slice(r, slices, v, begin, end) : v);
      const shardInputs = Object.entries(inputs).map(([name, v]) => sliced(name, v));
      const last = shard === b.length - 1;
      const attrs = { ...op.attrs, expert_range: [begin, end], shard, ...(previous ? { init: true } : {}) };
      previous = r.emit1(op.opcode, previous ? [...shardInputs, previous] : shardInputs, attrs, last ? out.name : `${out.name}.shard${shard}`, last ? out : undefined);
    });
  }
  // moe.align's route_meta grows by one block per shard: re-infer the types downstream.
  return reinferGraph(r.finish(), new Map(), opTable);
}

/** Rows [begin, end) of a stacked weight, made once per function. */
function slice(r: GraphRewriter, slices: Map<string, Value>, w: Value, begin: number, end: number): Value {
  const key = `${w.id}:${begin}:${end}`;
  let v = slices.get(key);
  if (!v) slices.set(key, (v = r.emit1('slice_rows', [w], { begin, end }, `${w.name}[${begin}:${end}]`)));
  return v;
}
