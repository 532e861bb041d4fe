// moe.trace_routes on the reference interpreter, by hand: two tokens choosing two experts each
// (one slot null, -1), counted into counters that already hold a previous call's counts, with
// and without the next MoE layer; and the shape rule's refusals.
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/graph-builder.js';
import { interpretGraph, type HostTensor } from '../../ir/interpret/interpret.js';
import { inferOp, IRTypeError } from '../../ir/ops.js';
import { TOKENS } from '../../ir/types.js';

const E = 4;
const ids = (values: number[]): HostTensor => ({ shape: [values.length / 2, 2], data: Int32Array.from(values) });

function traceGraph(next: boolean) {
  const b = new GraphBuilder('trace');
  const here = b.input('route_ids', { shape: [TOKENS, 2], dtype: 'i32' });
  const inputs = [here, ...(next ? [b.input('next_route_ids', { shape: [TOKENS, 2], dtype: 'i32' })] : [])];
  const trace = b.state('trace', { shape: [next ? E + E * E : E], dtype: 'u32' });
  return b.finish([b.op1('moe.trace_routes', [...inputs, trace], { experts: E, next_experts: next ? E : 0 }, 'traced')]);
}

describe('moe.trace_routes (interpreter)', () => {
  it('counts each chosen expert and every (here, next) pair of a token, skipping null slots, on top of the counters', () => {
    // Token 0 chose 1 and 3 here, 0 and 2 next; token 1 chose 1 (its second slot null) here and 3 next.
    const before = Int32Array.from({ length: E + E * E }, (_, i) => (i === 0 ? 5 : i === E + 3 * E + 3 ? 7 : 0));
    const state = { trace: { shape: [E + E * E], data: before } };
    const out = interpretGraph(traceGraph(true), { route_ids: ids([1, 3, 1, -1]), next_route_ids: ids([0, 2, -1, 3]) }, () => new Float32Array(), undefined, state);
    const counts = [5, 2, 0, 1];
    const transitions = [
      [0, 0, 0, 0],
      [1, 0, 1, 1], // (1, 0) and (1, 2) from token 0, (1, 3) from token 1
      [0, 0, 0, 0],
      [1, 0, 1, 7], // (3, 0) and (3, 2) from token 0, 7 from before
    ];
    expect(Array.from(out['traced']!.data)).toEqual([...counts, ...transitions.flat()]);
    expect(Array.from(state.trace.data)).toEqual([...counts, ...transitions.flat()]); // the session's state is the update
    expect(Array.from(before)).toEqual(Array.from({ length: E + E * E }, (_, i) => (i === 0 ? 5 : i === E + 3 * E + 3 ? 7 : 0))); // not written over
  });

  it('counts only, on the last MoE layer', () => {
    const state = { trace: { shape: [E], data: new Int32Array(E) } };
    interpretGraph(traceGraph(false), { route_ids: ids([2, 2, 0, -1]) }, () => new Float32Array(), undefined, state);
    expect(Array.from(state.trace.data)).toEqual([1, 0, 2, 0]);
  });

  it('refuses counters of the wrong size or dtype, and ids that are not i32', () => {
    const routes = { shape: [TOKENS, 2], dtype: 'i32' as const };
    const attrs = { experts: E, next_experts: E };
    expect(() => inferOp('moe.trace_routes', [routes, routes, { shape: [E], dtype: 'u32' }], attrs)).toThrow(/trace has shape \[4\], expected \[20\]/);
    expect(() => inferOp('moe.trace_routes', [routes, routes, { shape: [E + E * E], dtype: 'f32' }], attrs)).toThrow(/trace must be u32/);
    expect(() => inferOp('moe.trace_routes', [{ ...routes, dtype: 'f32' }, routes, { shape: [E + E * E], dtype: 'u32' }], attrs)).toThrow(IRTypeError);
    expect(inferOp('moe.trace_routes', [routes, { shape: [E], dtype: 'u32' }], { experts: E, next_experts: 0 })).toEqual([{ shape: [E], dtype: 'u32' }]);
  });
});
