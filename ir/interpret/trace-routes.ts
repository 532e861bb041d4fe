// Reference semantics of moe.trace_routes (ir/ops-trace.ts): the layer's counters plus one per
// chosen expert and, with the next MoE layer's ids, one per (here, next) pair of a token's choices.
import { input, ints, numAttr, type HostTensor, type OpCall, type OpImplementation } from './host-tensor.js';

/** A token's chosen experts (k of them; -1 and anything outside 0 .. experts - 1 left out). */
function chosen(ids: Int32Array, t: number, k: number, experts: number): number[] {
  return Array.from(ids.subarray(t * k, (t + 1) * k)).filter((e) => e >= 0 && e < experts);
}

function runTraceRoutes(call: OpCall): HostTensor[] {
  const [experts, nextExperts] = [numAttr(call, 'experts'), numAttr(call, 'next_experts')];
  const here = input(call, 'route_ids');
  const ids = ints(call, 'route_ids');
  const trace = input(call, 'trace');
  // u32 counters are held as Int32Array on the host, as the interpreter holds every integer tensor.
  const counters = Int32Array.from(trace.data);
  const [tokens, k] = here.shape as [number, number];
  const next = nextExperts > 0 ? { ids: ints(call, 'next_route_ids'), k: input(call, 'next_route_ids').shape[1]! } : undefined;
  // Ids are storage positions under mixed precision (passes/group-experts-by-format.ts): count the experts they stand for.
  const stored = call.attrs['stored_experts'] as number[] | undefined;
  const nextStored = call.attrs['next_stored_experts'] as number[] | undefined;
  for (let t = 0; t < tokens; t++) {
    const targets = next ? chosen(next.ids, t, next.k, nextExperts).map((j) => nextStored?.[j] ?? j) : [];
    for (const i of chosen(ids, t, k, experts).map((e) => stored?.[e] ?? e)) {
      counters[i] += 1;
      for (const j of targets) counters[experts + i * nextExperts + j] += 1;
    }
  }
  return [{ shape: trace.shape, data: counters }];
}

export const traceImplementations: Readonly<Record<string, OpImplementation>> = {
  'moe.trace_routes': runTraceRoutes,
};
