// Kernel entry of the routing trace's op (ir/ops-trace.ts, added by passes/trace-routing.ts).
import type { Op, Value } from '../../ir/graph.js';
import { inputsByName } from '../../ir/ops.js';
import { renderTraceRoutesKernel, type TraceRoutesShape } from '../kernels/trace-routes/trace-routes.js';
import type { KernelEntry } from './kernel-table.js';

const topKOf = (ids: Value): number => ids.type.shape[1] as number;

function traceShape(op: Op): TraceRoutesShape {
  const i = inputsByName(op);
  const next = i['next_route_ids'];
  return {
    experts: op.attrs['experts'] as number,
    topK: topKOf(i['route_ids']!),
    ...(next ? { next: { experts: op.attrs['next_experts'] as number, topK: topKOf(next), storedExperts: op.attrs['next_stored_experts'] as number[] | undefined } } : {}),
    storedExperts: op.attrs['stored_experts'] as number[] | undefined,
  };
}

export const traceKernelTable: Record<string, KernelEntry> = {
  'moe.trace_routes': {
    render: (op) => renderTraceRoutesKernel(traceShape(op)).kernel,
    bindings: (op) => inputsByName(op),
    grid: (op) => renderTraceRoutesKernel(traceShape(op)).planGrid,
    words: (op) => renderTraceRoutesKernel(traceShape(op)).words,
    label: (op) => `trace routes ${op.outputs[0]!.name.split('.').slice(0, 2).join('.')}`,
  },
};
