// Splits stacked expert weights into shards that fit one storage binding (at their packed size):
// each grouped GEMM / expert GEMV becomes one op per shard over slice_rows of its weights, all
// writing one buffer (each shard's op takes the previous one's result as `init`), and moe.align
// learns the shard boundaries so it writes one indirect grid per shard. Under mixed precision a
// shard also never spans two formats (group-experts-by-format made each format one run), so every
// launch decodes one format; a mixed weight is always sliced, even into one shard.
import type { Graph, Op, Value } from '../ir/graph.js';
import type { OpDefinition } from '../ir/op-checks.js';
import { inputsByName } from '../ir/ops.js';
import { expertRange } from '../ir/ops-lowered.js';
import { GraphRewriter, reinferGraph } from '../ir/rewriter.js';
import { weightFormatOf } from '../ir/storage-format.js';
import { dimText, dtypeName, isMixed } from '../ir/types.js';
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

/** Expert e's rows of weight `w` as a value of its own format (a mixed weight's experts differ). */
function expertRows(w: Value, e: number): Value {
  const dtype = w.type.dtype;
  return isMixed(dtype) ? { ...w, type: { ...w.type, dtype: dtype.experts[e]! } } : w;
}

/** The first expert of each run of one format over all of a block's weights ([0] without mixed precision). */
function formatRuns(ops: Op[]): number[] {
  const starts = new Set([0]);
  for (const op of ops) {
    const dtype = inputsByName(op)['w0']!.type.dtype;
    if (isMixed(dtype)) dtype.experts.forEach((d, e) => e > 0 && dtypeName(d) !== dtypeName(dtype.experts[e - 1]!) && starts.add(e));
  }
  return [...starts].sort((a, b) => a - b);
}

/** The shard boundaries of a block: per run of one format, from the largest packed expert matrix its grouped ops read. */
function blockShards(ops: Op[], maxBinding: number, formats: FormatLayouts): number[] {
  const experts = expertRange(ops[0]!.attrs)[1];
  const runs = formatRuns(ops);
  return runs.flatMap((begin, run) => {
    const end = runs[run + 1] ?? experts;
    let bytes = 0;
    let what = '';
    for (const op of ops) {
      const w = expertRows(inputsByName(op)['w0']!, begin);
      const shape = w.type.shape as number[];
      const format = weightFormatOf(w, formats);
      const b = packedBytes(format, [1, ...shape.slice(1)], formats);
      if (b > bytes) [bytes, what] = [b, `${w.name} [${shape.map(dimText).join(', ')}] ${format.format}`];
    }
    return shardBegins(end - begin, bytes, maxBinding, what).map((s) => begin + s);
  });
}

function shardFunction(f: Graph, maxBinding: number, opTable: Readonly<Record<string, OpDefinition>>, formats: FormatLayouts): Graph {
  // Ops that still read whole params, or whole params reordered by format (not yet sharded: sharding twice changes nothing).
  const params = new Set([...f.params.map((p) => p.id), ...f.ops.filter((op) => op.opcode === 'permute_rows').map((op) => op.outputs[0]!.id)]);
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
    if (!b || (b.length === 1 && !isMixed(inputs['w0']!.type.dtype))) {
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
