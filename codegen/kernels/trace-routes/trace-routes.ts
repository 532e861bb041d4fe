// `moe.trace_routes`: a MoE layer's routing counted into its u32 counters with atomicAdd (counts,
// then transitions to the next MoE layer). Grid (min(ceil(T / 64), 65535)); Params { tokens, 0, 0, 0 }.
import { tokenExpr } from '../../../runtime/plan.js';
import { declareBindings, i32Array } from '../kernel.js';
import { orderConstant, orderTag } from '../common/expert-order.js';
import { renderTemplate } from '../template.js';
import { checkPositive, decoderKernel, MAX_GRID_ROWS, TOKENS_WORDS, type DecoderKernel } from '../elementwise/decoder-kernel.js';

export interface TraceRoutesShape {
  experts: number;
  topK: number;
  /** Under mixed precision ids are storage positions: the expert stored at each (passes/group-experts-by-format.ts). */
  storedExperts?: number[] | undefined;
  /** The next MoE layer's experts and top-k (and storage order); absent on the last MoE layer (no transitions). */
  next?: { experts: number; topK: number; storedExperts?: number[] | undefined };
}

const THREADS = 64;

/** Bindings: route_ids [T, topK] i32, next_route_ids [T, next.topK] i32 (with next), trace (u32 counters, read_write). */
export function renderTraceRoutesKernel(shape: TraceRoutesShape): DecoderKernel {
  const { experts, topK, next } = shape;
  checkPositive('trace_routes', { experts, topK, ...(next ? { nextExperts: next.experts, nextTopK: next.topK } : {}) });
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'route_ids', access: 'read', type: i32Array },
    ...(next ? [{ name: 'next_route_ids', access: 'read' as const, type: i32Array }] : []),
    { name: 'trace', access: 'read_write', type: 'array<atomic<u32>>' },
  ]);
  const wgsl = renderTemplate('trace-routes/trace-routes.wgsl.hbs', {
    header, experts, topK, next: next !== undefined, nextExperts: next?.experts ?? 0, nextTopK: next?.topK ?? 0, threads: THREADS, gridX: MAX_GRID_ROWS,
    stored: orderConstant('STORED', shape.storedExperts), nextStored: orderConstant('NEXT_STORED', next?.storedExperts),
    hasStored: shape.storedExperts !== undefined, hasNextStored: next?.storedExperts !== undefined,
  });
  const name = `trace_routes_e${experts}k${topK}${orderTag(shape.storedExperts)}${next ? `_to_e${next.experts}k${next.topK}${orderTag(next.storedExperts)}` : ''}`;
  return decoderKernel({ name, wgsl, entryPoint: 'main', workgroupSize: [THREADS, 1, 1], bindings, uniformBinding }, TOKENS_WORDS, tokenExpr(1, 0, THREADS, MAX_GRID_ROWS));
}
