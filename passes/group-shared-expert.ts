// Prefill folds the shared expert into the grouped launches: it becomes virtual expert E of the
// grouped gate/up and down GEMMs (its T rows appended by moe.align, its own weight bindings), and
// the combine reads its rows from slot_out. 7 dispatches become 5. Where shapes allow: one weight
// shard, no expert biases, the same activation kind, and no token-rounding extras (the gate/up
// GEMM would need 9 storage buffers); otherwise the dense GEMMs stay.
import type { Graph, Op, Value } from '../ir/graph.js';
import type { KindRef } from '../ir/model-config.js';
import { inputsByName } from '../ir/ops.js';
import { extrasOf, tileOf } from '../ir/ops-lowered.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const groupSharedExpert: Pass = {
  name: 'group-shared-expert',
  description: 'Prefill: the shared expert as virtual expert E of the grouped GEMMs (5 dispatches instead of 7).',
  run(module, { ops }) {
    return forEachFunction(module, (f) => (pathOf(f) === 'decode' ? f : groupFunction(f, ops)));
  },
};

interface Group {
  align: Op;
  gateUp: Op;
  down: Op;
  sharedGateUp: Op;
  sharedDown: Op;
  combine: Op;
}

function matchGroup(combine: Op, producer: (v: Value) => Op | undefined, params: Set<number>): Group | undefined {
  const c = inputsByName(combine);
  if (!c['shared_out']) return undefined;
  const down = producer(c['slot_out']!);
  const gateUp = down && producer(inputsByName(down)['a']!);
  const sharedDown = producer(c['shared_out']);
  const sharedGateUp = sharedDown && producer(inputsByName(sharedDown)['a']!);
  if (down?.opcode !== 'moe.grouped_gemm' || gateUp?.opcode !== 'moe.grouped_gemm' || sharedDown?.opcode !== 'gemm' || sharedGateUp?.opcode !== 'gemm') return undefined;
  const whole = (op: Op) => params.has(inputsByName(op)['w0']!.id) && op.attrs['init'] !== true;
  // The gate/up kernel binds 8 storage buffers with the shared expert: no room for biases or rounding's extras.
  if (!whole(down) || !whole(gateUp) || sharedGateUp.attrs['bias'] === true || gateUp.attrs['bias'] === true || extrasOf(gateUp.attrs) > 0) return undefined;
  // One `act` serves both: the shared expert's activation must be the routed one (its width aside).
  if (!sameActivation(gateUp.attrs['activation'] as KindRef, sharedGateUp.attrs['activation'] as KindRef)) return undefined;
  if (inputsByName(sharedGateUp)['a']!.id !== inputsByName(gateUp)['a']!.id) return undefined;
  const align = producer(inputsByName(gateUp)['sorted_slots']!)!;
  return { align, gateUp, down, sharedGateUp, sharedDown, combine };
}

function sameActivation(a: KindRef, b: KindRef): boolean {
  const withoutWidth = (k: KindRef) => JSON.stringify({ ...k.params, intermediate: 0, kind: k.kind });
  return withoutWidth(a) === withoutWidth(b);
}

function groupFunction(f: Graph, ops: Parameters<typeof inputsByName>[1]): Graph {
  const producers = new Map<number, Op>();
  for (const op of f.ops) for (const v of op.outputs) producers.set(v.id, op);
  const params = new Set(f.params.map((p) => p.id));
  const groups = f.ops.filter((op) => op.opcode === 'moe.combine').map((c) => matchGroup(c, (v) => producers.get(v.id), params)).filter((g) => g !== undefined);
  if (groups.length === 0) return f;
  const r = new GraphRewriter(f, ops);
  const replaced = new Map<number, Value>();
  const at = (v: Value) => replaced.get(v.id) ?? v;
  const emitReplacing = (op: Op, inputs: Value[], attrs: Op['attrs'], keepOutput = false) => {
    const outputs = r.emit(op.opcode, inputs.map(at), attrs, op.outputs.map((v) => v.name), keepOutput ? op.outputs : []);
    op.outputs.forEach((v, i) => replaced.set(v.id, outputs[i]!));
  };
  for (const op of f.ops) {
    const g = groups.find((group) => Object.values(group).includes(op));
    if (!g) {
      r.keep({ ...op, inputs: op.inputs.map(at) });
    } else if (op === g.align) {
      const intermediate = Math.max(inputsByName(g.gateUp)['w0']!.type.shape[1] as number, inputsByName(g.sharedGateUp)['w0']!.type.shape[0] as number);
      emitReplacing(op, op.inputs, { ...op.attrs, shared_expert: true, gate_up_tiles: Math.ceil(intermediate / tileOf(g.gateUp.attrs).bn) });
    } else if (op === g.gateUp) {
      const s = inputsByName(g.sharedGateUp);
      emitReplacing(op, [...op.inputs, s['w0']!, s['w1']!], { ...op.attrs, shared: true });
    } else if (op === g.down) {
      emitReplacing(op, [...op.inputs, inputsByName(g.sharedDown)['w0']!], { ...op.attrs, shared: true });
    } else if (op === g.combine) {
      const c = inputsByName(op);
      const inputs = [c['route_ids']!, c['slot_out']!, ...(c['x'] ? [c['x'], c['shared_gate_weight']!] : []), ...(c['extra_ids'] ? [c['extra_ids']] : [])];
      emitReplacing(op, inputs, { ...op.attrs, shared_in_slots: true }, true);
    }
    // The shared expert's dense GEMMs are gone: its rows come from the grouped ones.
  }
  return r.finish();
}
