// The routing trace's op (what passes/trace-routing.ts adds for `moec trace`): each MoE layer's
// counters are a u32 state tensor, counts[E] then, when a next MoE layer exists, transitions[E, E'],
// incremented in place from the router's ids, so the counting happens where the ids are.
import { expectShape, IRTypeError, numAttr, type OpDefinition } from './op-checks.js';
import { TOKENS, type TensorType } from './types.js';

/** Counters of one MoE layer: E counts, then E x E' transitions when `nextExperts` > 0. */
export const traceCounterCount = (experts: number, nextExperts: number): number => experts + experts * nextExperts;

export const traceOpDefinitions: Record<string, OpDefinition> = {
  'moe.trace_routes': {
    doc: 'Routing trace: per token, counts[i] += 1 for each chosen expert i (id -1, a null slot, is skipped) and, with next_route_ids, transitions[i, j] += 1 for each pair of its choices i here and j at the next MoE layer; the counters (a u32 state) are updated in place.',
    inputNames: (a) => ['route_ids', ...(numAttr(a, 'next_experts') > 0 ? ['next_route_ids'] : []), 'trace'],
    outputNames: ['trace'],
    inPlace: { 0: 'trace' },
    infer: ({ route_ids, next_route_ids, trace }, a) => {
      const [e, next] = [numAttr(a, 'experts'), numAttr(a, 'next_experts')];
      if (!Number.isInteger(e) || e < 1 || !Number.isInteger(next) || next < 0) throw new IRTypeError('experts must be >= 1 and next_experts >= 0');
      for (const [name, ids] of [['route_ids', route_ids], ['next_route_ids', next_route_ids]] as const) {
        if (!ids) continue;
        if (ids.shape.length !== 2 || ids.shape[0] !== TOKENS || typeof ids.shape[1] !== 'number') throw new IRTypeError(`${name} must be [${TOKENS}, k]`);
        if (ids.dtype !== 'i32') throw new IRTypeError(`${name} must be i32`);
      }
      expectShape('trace', trace!, [traceCounterCount(e, next)]);
      if (trace!.dtype !== 'u32') throw new IRTypeError('trace must be u32 (counters)');
      const out: TensorType = trace!;
      return [out];
    },
  },
};
