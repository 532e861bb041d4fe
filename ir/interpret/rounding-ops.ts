// Reference semantics of the token-rounding ops (moe.round_decide, moe.round_apply): roundTokens
// (token-rounding.ts) run on the routing, laid out as the kernels lay out their results, so the
// lowered block and the GPU can be checked against it step by step.
import { roundTokens, type RoundingMode } from './token-rounding.js';
import { dim, floats, ints, numAttr, type HostTensor, type OpCall } from './host-tensor.js';

const f32Bits = (x: number): number => new Int32Array(Float32Array.of(x).buffer)[0]!;
const bitsF32 = (bits: number): number => new Float32Array(Int32Array.of(bits).buffer)[0]!;

export function runRoundDecide(call: OpCall): HostTensor[] {
  const [E, K, tile] = [numAttr(call, 'experts'), numAttr(call, 'top_k'), numAttr(call, 'tile')];
  const tokens = dim(call, 'route_ids', 0);
  const ids = ints(call, 'route_ids');
  const weights = floats(call, 'routing_weights');
  const rounded = roundTokens({ tokens, experts: E, topK: K, ids, weights, probs: floats(call, 'probs'), mode: call.attrs['mode'] as RoundingMode, tile });
  const per = tile - 1;
  // round_scratch: expert e's dropped slots at e (M - 1) + i (-1 unused), then 5 words per expert:
  // count before, count after, dropped / added / routed weight (f32 bits).
  const scratch = new Int32Array(E * per + 5 * E).fill(-1, 0, E * per);
  const dropped = new Array<number>(E).fill(0);
  const stats = Array.from({ length: E }, () => ({ before: 0, after: 0, droppedWeight: 0, addedWeight: 0, routedWeight: 0 }));
  ids.forEach((e, slot) => {
    if (e < 0) return;
    stats[e]!.before++;
    stats[e]!.routedWeight += weights[slot]!;
    if (rounded.ids[slot] === -1) {
      scratch[e * per + dropped[e]!++] = slot;
      stats[e]!.droppedWeight += weights[slot]!;
    } else stats[e]!.after++;
  });
  for (let j = 0; j < rounded.extraWeights.length; j++) {
    const e = rounded.extraIds[2 * j + 1]!;
    if (e < 0) continue;
    stats[e]!.after++;
    stats[e]!.addedWeight += rounded.extraWeights[j]!;
  }
  stats.forEach((s, e) => scratch.set([s.before, s.after, f32Bits(s.droppedWeight), f32Bits(s.addedWeight), f32Bits(s.routedWeight)], E * per + 5 * e));
  return [{ shape: [E * per, 2], data: rounded.extraIds }, { shape: [E * per], data: rounded.extraWeights }, { shape: [scratch.length], data: scratch }];
}

export function runRoundApply(call: OpCall): HostTensor[] {
  const [E, tile] = [numAttr(call, 'experts'), numAttr(call, 'tile')];
  const ids = Int32Array.from(ints(call, 'route_ids'));
  const weights = Float32Array.from(floats(call, 'routing_weights'));
  const scratch = ints(call, 'round_scratch');
  const per = tile - 1;
  for (let i = 0; i < E * per; i++) {
    const slot = scratch[i]!;
    if (slot < 0) continue;
    ids[slot] = -1;
    weights[slot] = 0;
  }
  // round_stats: padded rows before, after, tokens dropped, added, then dropped / added / routed weight and their ratio (f32 bits).
  let [before, after, droppedTokens, addedTokens, droppedWeight, addedWeight, routedWeight] = [0, 0, 0, 0, 0, 0, 0];
  for (let e = 0; e < E; e++) {
    const [b, a, dw, aw, rw] = scratch.subarray(E * per + 5 * e, E * per + 5 * e + 5);
    before += Math.ceil(b! / tile) * tile;
    after += Math.ceil(a! / tile) * tile;
    droppedTokens += Math.max(0, b! - a!);
    addedTokens += Math.max(0, a! - b!);
    droppedWeight = Math.fround(droppedWeight + bitsF32(dw!));
    addedWeight = Math.fround(addedWeight + bitsF32(aw!));
    routedWeight = Math.fround(routedWeight + bitsF32(rw!));
  }
  const changed = routedWeight > 0 ? Math.fround((droppedWeight + addedWeight) / routedWeight) : 0;
  const stats = Int32Array.from([before, after, droppedTokens, addedTokens, f32Bits(droppedWeight), f32Bits(addedWeight), f32Bits(routedWeight), f32Bits(changed)]);
  return [{ shape: [...call.inputs['route_ids']!.shape], data: ids }, { shape: [...call.inputs['routing_weights']!.shape], data: weights }, { shape: [8], data: stats }];
}

/** round_stats (u32 words) as numbers: what `moec run` and the bench print. */
export function decodeRoundStats(words: Int32Array | Uint32Array) {
  const f = (i: number) => bitsF32(words[i]! | 0);
  return { paddedRowsBefore: words[0]!, paddedRowsAfter: words[1]!, tokensDropped: words[2]!, tokensAdded: words[3]!, droppedWeight: f(4), addedWeight: f(5), routedWeight: f(6), weightMassChanged: f(7) };
}
