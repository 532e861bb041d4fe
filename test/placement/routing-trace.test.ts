// A routing trace is read field by field; a bad one is refused with the file and the field named.
import { describe, expect, it } from 'vitest';
import { parseRoutingTrace, TraceError } from '../../compiler/placement/routing-trace.js';

const E = 4;
const counts = (n = E): number[] => Array.from({ length: n }, (_, i) => i + 1);
const square = (n = E): number[][] => Array.from({ length: n }, () => new Array<number>(n).fill(1));
const good = (): Record<string, unknown> & { layers: Record<string, unknown>[] } => ({
  version: 1, model: 'm', tokens: 5,
  layers: [{ layer: 1, counts: counts(), transitions: square() }, { layer: 2, counts: counts(), transitions: square() }, { layer: 3, counts: counts() }],
});
const expectations = { experts: E, moeLayers: [1, 2, 3] };

function errorOf(trace: unknown, expected = expectations): string {
  try {
    parseRoutingTrace(typeof trace === 'string' ? trace : JSON.stringify(trace), 'trace.json', expected);
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return (e as Error).message;
  }
  throw new Error('the trace was accepted');
}

describe('parseRoutingTrace', () => {
  it('reads a version 1 trace; the last layer\'s transitions may be left out or empty', () => {
    const trace = parseRoutingTrace(JSON.stringify(good()), 'trace.json', expectations);
    expect(trace.layers.map((l) => l.layer)).toEqual([1, 2, 3]);
    expect(trace.layers[2]!.transitions).toEqual([]);
    const withEmpty = good();
    withEmpty.layers[2]!.transitions = [];
    expect(parseRoutingTrace(JSON.stringify(withEmpty), 'trace.json').layers).toHaveLength(3); // experts from layers[0]
  });

  it.each([
    ['not JSON', '{"version": 1,', /^trace\.json: not valid JSON/],
    ['another version', { ...good(), version: 2 }, 'trace.json: version is 2, expected 1 (the only trace format this moec reads)'],
    ['no model', { ...good(), model: 7 }, 'trace.json: model is 7, expected the model\'s name (a string)'],
    ['bad tokens', { ...good(), tokens: -1 }, 'trace.json: tokens is -1, expected a whole number >= 0'],
    ['no layers', { ...good(), layers: [] }, /^trace\.json: layers is \[\], expected a non-empty array/],
    ['too few layers', { ...good(), layers: good().layers.slice(0, 2) }, 'trace.json: layers has 2 entries, expected 3 (the spec\'s MoE layers 1..3)'],
  ])('refuses %s', (_, trace, message) => {
    expect(errorOf(trace)).toMatch(message instanceof RegExp ? message : new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });

  it('names the layer and the field at fault', () => {
    const t = good();
    t.layers[1]!.counts = counts(3);
    expect(errorOf(t)).toBe('trace.json: layers[1].counts has 3 numbers, expected 4 (experts)');
    t.layers[1]!.counts = [1, 2, -3, 4];
    expect(errorOf(t)).toBe('trace.json: layers[1].counts[2] is -3, expected a count >= 0');
    t.layers[1]!.counts = [1, 2, '3', 4];
    expect(errorOf(t)).toBe('trace.json: layers[1].counts[2] is "3", expected a count >= 0');
    const u = good();
    u.layers[0]!.layer = 0;
    expect(errorOf(u)).toBe('trace.json: layers[0].layer is 0, expected 1 (the spec\'s MoE layers are 1..3)');
    const v = good();
    delete v.layers[0]!.transitions;
    expect(errorOf(v)).toBe('trace.json: layers[0].transitions is missing (every MoE layer but the last needs 4 x 4 transitions to the next)');
    v.layers[0]!.transitions = square().slice(1);
    expect(errorOf(v)).toBe('trace.json: layers[0].transitions has 3 rows, expected 4 rows of 4 numbers (experts)');
    v.layers[0]!.transitions = [...square().slice(1), [1, 1]];
    expect(errorOf(v)).toBe('trace.json: layers[0].transitions[3] has 2 numbers, expected 4 (experts)');
    const w = good();
    w.layers[2]!.transitions = square();
    expect(errorOf(w)).toBe('trace.json: layers[2].transitions must be empty or left out: the last MoE layer has no next layer');
  });

  it('without a spec, takes the expert count from layers[0] and wants layers in model order', () => {
    const t = good();
    t.layers[2]!.counts = counts(5);
    expect(errorOf(t, {} as typeof expectations)).toBe('trace.json: layers[2].counts has 5 numbers, expected 4 (experts, as in layers[0].counts)');
    const u = good();
    u.layers[1]!.layer = 1;
    expect(errorOf(u, {} as typeof expectations)).toBe('trace.json: layers[1].layer is 1, expected more than 1 (layers in model order)');
  });
});
