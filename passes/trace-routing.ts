// For `moec trace` only (compileModel's traceRouting option; not in the default pipeline): gives
// each MoE layer a u32 state of counters, `layers.L.moe.trace` (counts[E], then transitions[E, E']
// to the next MoE layer), and one moe.trace_routes op per layer that adds a call's routing to it
// on the GPU. The ops run last in each function, when every layer's routing ids are final: with
// token rounding those are the ids after moe.round_apply's drops (its added pairs are not ids).
import type { Graph, Op, Value } from '../ir/graph.js';
import type { OpDefinition } from '../ir/op-checks.js';
import { traceCounterCount } from '../ir/ops-trace.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, type Pass } from './pass.js';

/** The state holding MoE layer `layer`'s counters. */
export const traceStateName = (layer: number): string => `layers.${layer}.moe.trace`;

export const traceRouting: Pass = {
  name: 'trace-routing',
  description: 'Counters of each MoE layer\'s routing (per expert, and per pair with the next MoE layer) as u32 state, updated by moe.trace_routes.',
  run(module, { ops }) {
    return forEachFunction(module, (f) => traceFunction(f, ops));
  },
};

interface RoutedLayer {
  layer: number;
  experts: number;
  /** The route ids as the experts read them: the router's output after any in-place update. */
  ids: Value;
}

function traceFunction(f: Graph, ops: Readonly<Record<string, OpDefinition>>): Graph {
  const layers = f.ops.filter((op) => op.opcode === 'moe.route').map((op): RoutedLayer => {
    const layer = /^layers\.(\d+)\.moe\./.exec(op.outputs[0]!.name)?.[1];
    if (layer === undefined) throw new Error(`internal: ${f.name}: moe.route -> %${op.outputs[0]!.name} names no layer (layers.L.moe.*)`);
    return { layer: Number(layer), experts: op.attrs['experts'] as number, ids: finalVersion(f.ops, op.outputs[0]!, ops) };
  });
  if (layers.length === 0) return f;
  const r = new GraphRewriter(f, ops);
  for (const op of f.ops) r.keep(op);
  const state = layers.map(({ layer, experts }, i) => {
    const next = layers[i + 1]?.experts ?? 0;
    return r.value(traceStateName(layer), { shape: [traceCounterCount(experts, next)], dtype: 'u32' });
  });
  layers.forEach(({ layer, experts, ids }, i) => {
    const next = layers[i + 1];
    r.emit1('moe.trace_routes', [ids, ...(next ? [next.ids] : []), state[i]!], { experts, next_experts: next?.experts ?? 0 }, `layers.${layer}.moe.traced`);
  });
  return r.finish({ state: [...(f.state ?? []), ...state] });
}

/** `v` after the ops that update it in place (moe.round_apply rewrites dropped slots to -1). */
function finalVersion(fops: readonly Op[], v: Value, ops: Readonly<Record<string, OpDefinition>>): Value {
  let current = v;
  for (const op of fops) {
    const definition = ops[op.opcode];
    if (!definition?.inPlace) continue;
    const names = definition.inputNames(op.attrs);
    for (const [output, inputName] of Object.entries(definition.inPlace)) {
      if (op.inputs[names.indexOf(inputName)]?.id === current.id) current = op.outputs[Number(output)]!;
    }
  }
  return current;
}
