// SonicMoE token rounding (`token_rounding = sonic(mode, tile)`), on the prefill path, where the
// grouped GEMMs pad each expert to the tile: the router also gives each expert's raw probability,
// moe.round_decide moves every expert's count to a multiple of the tile (dropping its lowest-weight
// routed tokens or adding the most probable unrouted ones), moe.round_apply writes the drops over
// the routing, and the experts also run the added (token, expert) pairs. Decode GEMVs read each
// chosen expert once and have no tile to fill, so decode routes exactly.
import type { Graph, Op, Value } from '../ir/graph.js';
import type { KindRef } from '../ir/model-config.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const roundTokens: Pass = {
  name: 'round-tokens',
  description: 'token_rounding = sonic: round each expert\'s token count to the tile on the prefill path (drop or add tokens).',
  run(module, { config }) {
    const rounding = config.compile.tokenRounding;
    if (rounding.kind !== 'sonic') return module;
    return forEachFunction(module, (f) => (pathOf(f) === 'decode' ? f : roundFunction(f, rounding)));
  },
};

function roundFunction(f: Graph, rounding: KindRef): Graph {
  const consumers = (v: Value) => f.ops.filter((op) => op.inputs.some((i) => i.id === v.id));
  const r = new GraphRewriter(f);
  const replaced = new Map<number, Value>();
  const extrasFor = new Map<Op, { extraIds: Value; extraWeights: Value; extras: number }>();
  for (const op of f.ops) {
    if (op.opcode === 'moe.route' && op.attrs['probs'] !== true) {
      const [ids, weights] = op.outputs as [Value, Value];
      const prefix = ids.name.replace(/\.route_ids$/, '');
      const experts = op.attrs['experts'] as number;
      const attrs = { experts, top_k: op.attrs['top_k']!, mode: rounding.params['mode']!, tile: rounding.params['tile']! };
      const [, , probs] = r.emit('moe.route', op.inputs, { ...op.attrs, probs: true }, [ids.name, weights.name, `${prefix}.route_probs`], [ids, weights]);
      const [extraIds, extraWeights, scratch] = r.emit('moe.round_decide', [ids, weights, probs!], attrs, [`${prefix}.extra_ids`, `${prefix}.extra_weights`, `${prefix}.round_scratch`]);
      const [roundedIds, roundedWeights] = r.emit('moe.round_apply', [ids, weights, scratch!], attrs, [`${ids.name}.rounded`, `${weights.name}.rounded`, `${prefix}.round_stats`]);
      replaced.set(ids.id, roundedIds!);
      replaced.set(weights.id, roundedWeights!);
      for (const consumer of consumers(ids)) extrasFor.set(consumer, { extraIds: extraIds!, extraWeights: extraWeights!, extras: experts * ((rounding.params['tile'] as number) - 1) });
      continue;
    }
    const inputs = op.inputs.map((v) => replaced.get(v.id) ?? v);
    const extras = extrasFor.get(op);
    if (op.opcode === 'moe.experts' && extras) {
      r.emit1('moe.experts', [...inputs, extras.extraIds, extras.extraWeights], { ...op.attrs, extras: extras.extras }, op.outputs[0]!.name, op.outputs[0]);
    } else {
      r.keep({ ...op, inputs });
    }
  }
  return r.finish();
}

