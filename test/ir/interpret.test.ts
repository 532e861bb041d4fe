// The reference interpreter's MLP math, the non-MoE ops and its error messages, on tiny
// hand-computed cases. Routers: interpret-routers.test.ts; whole MoE blocks: interpret-block.test.ts.
import { describe, expect, test } from 'vitest';
import { GraphBuilder } from '../../ir/graph-builder.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpretGraph, type HostTensor } from '../../ir/interpret/interpret.js';
import type { KindRef } from '../../ir/model-config.js';
import { mlpWeightNames } from '../../ir/ops.js';
import { TOKENS } from '../../ir/types.js';
import { expectRowsClose, kind, route, rows } from './interpret-helpers.js';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const silu = (x: number) => x * sigmoid(x);

const f32 = (shape: number[], values: number[]): HostTensor => ({ shape, data: Float32Array.from(values) });
const i32 = (shape: number[], values: number[]): HostTensor => ({ shape, data: Int32Array.from(values) });
const weightsFrom = (table: Record<string, number[]>) => (p: Value) => Float32Array.from(table[p.name]!);

/** x [T, H], ids / weights [T, K] as graph inputs -> moe.experts with `activation`. */
function expertsGraph(activation: KindRef, experts: number, topK: number, hidden: number): Graph {
  const b = new GraphBuilder('experts_test');
  const x = b.input('x', { shape: [TOKENS, hidden], dtype: 'f32' });
  const ids = b.input('ids', { shape: [TOKENS, topK], dtype: 'i32' });
  const weights = b.input('weights', { shape: [TOKENS, topK], dtype: 'f32' });
  const i = activation.params['intermediate'] as number;
  const shapes: Record<string, number[]> = { gate: [i, hidden], up: [i, hidden], down: [hidden, i], gate_bias: [i], up_bias: [i], down_bias: [hidden] };
  const params = mlpWeightNames(activation).map((n) => b.param(`experts.${n}`, [experts, ...shapes[n]!], 'expert'));
  return b.finish([b.op1('moe.experts', [x, ids, weights, ...params], { activation, experts, top_k: topK }, 'y')]);
}

describe('moe.experts', () => {
  // H = 2, I = 2, two experts with biases.
  // expert 0: gate [[1, 0], [0, 1]] + [0, -1], up [[1, 1], [0, 1]] + [0, .5], down [[1, 0], [1, 1]] + [.5, 0].
  //   x = [1, 2]: g = [1, 1], u = [3, 2.5], a = [3 silu(1), 2.5 silu(1)], y = [3 silu(1) + .5, 5.5 silu(1)].
  //   x = [0, 0]: g = [0, -1], u = [0, .5], a = [0, .5 silu(-1)], y = [.5, .5 silu(-1)].
  // expert 1: gate 0 + [2, 0], up 0 + [1, 1], down identity + 0: y = [silu(2), 0] whatever x is.
  const swiglu = kind('activation', 'swiglu', { intermediate: 2, bias: true });
  const weights = weightsFrom({
    'experts.gate': [1, 0, 0, 1, /* expert 1 */ 0, 0, 0, 0],
    'experts.up': [1, 1, 0, 1, /* expert 1 */ 0, 0, 0, 0],
    'experts.down': [1, 0, 1, 1, /* expert 1 */ 1, 0, 0, 1],
    'experts.gate_bias': [0, -1, 2, 0],
    'experts.up_bias': [0, 0.5, 1, 1],
    'experts.down_bias': [0.5, 0, 0, 0],
  });
  const expert0At12 = [3 * silu(1) + 0.5, 5.5 * silu(1)];
  const expert0At00 = [0.5, 0.5 * silu(-1)];
  const expert1 = [silu(2), 0];

  test('swiglu with biases: the weighted sum over the chosen experts, empty slots skipped', () => {
    const out = interpretGraph(expertsGraph(swiglu, 2, 2, 2), {
      x: f32([3, 2], [1, 2, 1, 2, 0, 0]),
      // token 0: expert 0 at .5 and an empty slot whose weight (.9) must be ignored; token 1: experts 1, 0; token 2: both at 1.
      ids: i32([3, 2], [0, -1, 1, 0, 0, 1]),
      weights: f32([3, 2], [0.5, 0.9, 1, 0.5, 1, 1]),
    }, weights);
    expectRowsClose(rows(out['y']!), [
      [0.5 * expert0At12[0]!, 0.5 * expert0At12[1]!],
      [expert1[0]! + 0.5 * expert0At12[0]!, expert1[1]! + 0.5 * expert0At12[1]!],
      [expert0At00[0]! + expert1[0]!, expert0At00[1]! + expert1[1]!],
    ]);
  });

  test('clamped_swiglu: gate clamped above only, up on both sides, (up + 1) * gate * sigmoid(alpha gate)', () => {
    // limit 1, alpha 2; one expert, gate and up identity, gate bias [.5, -3], up bias 0, down identity + [0, 1].
    // x = [1, 2]:  g = [1.5, -1] -> [1, -1];  u = [1, 2] -> [1, 1];  a = [2 sigmoid(2), -2 sigmoid(-2)];  y = [2 sigmoid(2), 1 - 2 sigmoid(-2)].
    // x = [1, -3]: g = [1.5, -6] -> [1, -6]; u = [1, -3] -> [1, -1]; a = [2 sigmoid(2), 0];              y = [2 sigmoid(2), 1], weight .5.
    const clamped = kind('activation', 'clamped_swiglu', { intermediate: 2, limit: 1, alpha: 2 });
    const out = interpretGraph(expertsGraph(clamped, 1, 1, 2), {
      x: f32([2, 2], [1, 2, 1, -3]),
      ids: i32([2, 1], [0, 0]),
      weights: f32([2, 1], [1, 0.5]),
    }, weightsFrom({
      'experts.gate': [1, 0, 0, 1],
      'experts.up': [1, 0, 0, 1],
      'experts.down': [1, 0, 0, 1],
      'experts.gate_bias': [0.5, -3],
      'experts.up_bias': [0, 0],
      'experts.down_bias': [0, 1],
    }));
    expectRowsClose(rows(out['y']!), [[2 * sigmoid(2), 1 - 2 * sigmoid(-2)], [sigmoid(2), 0.5]]);
  });

  test('an expert id out of range is an error naming the token and slot', () => {
    const run = () => interpretGraph(expertsGraph(swiglu, 2, 2, 2), { x: f32([1, 2], [1, 2]), ids: i32([1, 2], [0, 2]), weights: f32([1, 2], [1, 1]) }, weights);
    expect(run).toThrow(/op 0 \(moe.experts -> %y\): token 0, slot 1 routes to expert 2; ids must be -1 \(empty slot\) or 0..1/);
  });
});

describe('dense ops', () => {
  function oneOp(opcode: string, inputs: { name: string; shape: (number | string)[]; dtype?: 'f32' | 'i32' }[], params: { name: string; shape: number[] }[], attrs = {}): Graph {
    const b = new GraphBuilder(`${opcode}_test`);
    const values = [...inputs.map((i) => b.input(i.name, { shape: i.shape, dtype: i.dtype ?? 'f32' })), ...params.map((p) => b.param(p.name, p.shape, 'dense'))];
    return b.finish([b.op1(opcode, values, attrs, 'y')]);
  }

  test('mlp: the dense/shared MLP uses the same activation code', () => {
    // expert 0 of the moe.experts test, unstacked: x = [1, 2] -> [3 silu(1) + .5, 5.5 silu(1)].
    const graph = oneOp('mlp', [{ name: 'x', shape: [TOKENS, 2] }], ['gate', 'up', 'down', 'gate_bias', 'up_bias', 'down_bias'].map((n) => ({ name: n, shape: n.endsWith('bias') ? [2] : [2, 2] })), { activation: kind('activation', 'swiglu', { intermediate: 2, bias: true }) });
    const out = interpretGraph(graph, { x: f32([1, 2], [1, 2]) }, weightsFrom({ gate: [1, 0, 0, 1], up: [1, 1, 0, 1], down: [1, 0, 1, 1], gate_bias: [0, -1], up_bias: [0, 0.5], down_bias: [0.5, 0] }));
    expectRowsClose(rows(out['y']!), [[3 * silu(1) + 0.5, 5.5 * silu(1)]]);
  });

  test('sigmoid_gate: y * sigmoid(x . w)', () => {
    // x . w = 1 * .5 + 2 * -1 = -1.5.
    const graph = oneOp('sigmoid_gate', [{ name: 'y', shape: [TOKENS, 3] }, { name: 'x', shape: [TOKENS, 2] }], [{ name: 'w', shape: [1, 2] }]);
    const out = interpretGraph(graph, { y: f32([1, 3], [1, -2, 4]), x: f32([1, 2], [1, 2]) }, weightsFrom({ w: [0.5, -1] }));
    const g = sigmoid(-1.5);
    expectRowsClose(rows(out['y']!), [[g, -2 * g, 4 * g]]);
  });

  test('add, linear with bias', () => {
    const add = oneOp('add', [{ name: 'a', shape: [TOKENS, 2] }, { name: 'b', shape: [TOKENS, 2] }], []);
    expect(rows(interpretGraph(add, { a: f32([2, 2], [1, 2, 3, 4]), b: f32([2, 2], [0.5, -2, 0, 1]) }, () => new Float32Array())['y']!)).toEqual([[1.5, 0], [3, 5]]);
    const linear = oneOp('linear', [{ name: 'x', shape: [TOKENS, 2] }], [{ name: 'w', shape: [3, 2] }, { name: 'b', shape: [3] }], { bias: true });
    const out = interpretGraph(linear, { x: f32([1, 2], [1, 2]) }, weightsFrom({ w: [1, 0, 0, 1, 1, 1], b: [0, 0, 0.5] }));
    expect(rows(out['y']!)).toEqual([[1, 2, 3.5]]);
  });

  test('rmsnorm and layernorm', () => {
    // rmsnorm: x = [3, 4], mean square 12.5 -> [3, 4] / sqrt(12.5 + 1e-6) * [1, 2].
    const rms = oneOp('norm', [{ name: 'x', shape: [TOKENS, 2] }], [{ name: 'w', shape: [2] }], { norm: kind('norm', 'rmsnorm', { eps: 1e-6 }) });
    const r = Math.sqrt(12.5 + 1e-6);
    expectRowsClose(rows(interpretGraph(rms, { x: f32([1, 2], [3, 4]) }, weightsFrom({ w: [1, 2] }))['y']!), [[3 / r, 8 / r]]);
    // layernorm: x = [1, 3], mean 2, variance 1 -> [-1, 1] / sqrt(1 + 1e-5) * [1, 2] + [0, 1].
    const ln = oneOp('norm', [{ name: 'x', shape: [TOKENS, 2] }], [{ name: 'w', shape: [2] }, { name: 'b', shape: [2] }], { norm: kind('norm', 'layernorm') });
    const s = Math.sqrt(1 + 1e-5);
    expectRowsClose(rows(interpretGraph(ln, { x: f32([1, 2], [1, 3]) }, weightsFrom({ w: [1, 2], b: [0, 1] }))['y']!), [[-1 / s, 2 / s + 1]]);
  });

  test('embed, and an id outside the vocabulary', () => {
    const embed = oneOp('embed', [{ name: 'ids', shape: [TOKENS], dtype: 'i32' }], [{ name: 'table', shape: [3, 2] }]);
    const table = weightsFrom({ table: [1, 2, 3, 4, 5, 6] });
    expect(rows(interpretGraph(embed, { ids: i32([2], [2, 0]) }, table)['y']!)).toEqual([[5, 6], [1, 2]]);
    expect(() => interpretGraph(embed, { ids: i32([1], [3]) }, table)).toThrow(/token 0 has id 3, the vocabulary is 0..2/);
  });

  test('attention needs its KV cache state, and names it when missing', () => {
    const b = new GraphBuilder('attention_test');
    const x = b.input('x', { shape: [TOKENS, 4], dtype: 'f32' });
    const positions = b.input('positions', { shape: [TOKENS], dtype: 'i32' });
    const attention = kind('attention', 'gqa', { heads: 2, kv_heads: 2, head_dim: 2, rope_theta: 10000 });
    const caches = ['cache_k', 'cache_v'].map((n) => b.state(n, { shape: [8, 4], dtype: 'f32' }));
    const weights = ['q', 'k', 'v', 'o'].map((n) => b.param(n, [4, 4], 'attention'));
    const attrs = { attention, rope: kind('rope', 'default', {}), norm: kind('norm', 'rmsnorm', { eps: 1e-6 }), layer: 0, window: 0 };
    const graph = b.finish([b.op1('attention', [x, positions, ...caches, ...weights], attrs, 'y')]);
    const inputs = { x: f32([1, 4], [1, 2, 3, 4]), positions: i32([1], [0]) };
    expect(() => interpretGraph(graph, inputs, () => new Float32Array(16))).toThrow('attention_test: missing state %cache_k ([8, 4] f32); pass the caches of a session (zeros for a new one)');
    const state = { cache_k: f32([8, 4], new Array(32).fill(0)), cache_v: f32([8, 4], new Array(32).fill(0)) };
    const identity = () => Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
    interpretGraph(graph, inputs, identity, undefined, state);
    // Position 0 has angle 0: the key row is x itself, the value row too, and both now sit in row 0.
    expect([...state.cache_k.data.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    expect([...state.cache_v.data.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
  });
});

describe('inputs, weights and the token count', () => {
  // A router graph: x [T, 2], router weight [4, 2].
  function routeGraph(): Graph {
    const b = new GraphBuilder('route_graph');
    const x = b.input('x', { shape: [TOKENS, 2], dtype: 'f32' });
    const w = b.param('router.weight', [4, 2], 'router');
    const [ids, weights] = b.op('moe.route', [x, w], { router: kind('router', 'softmax_topk'), experts: 4, top_k: 2 }, 'route');
    return b.finish([ids!, weights!]);
  }
  const w = () => Float32Array.from([1, 0, 0, 1, 1, 1, -1, 0]);

  test('T comes from the inputs; outputs are keyed by value name with their concrete shapes', () => {
    for (const tokens of [1, 3]) {
      const out = interpretGraph(routeGraph(), { x: f32([tokens, 2], new Array<number>(2 * tokens).fill(1)) }, w);
      expect(Object.keys(out).sort()).toEqual(['route.route_ids', 'route.routing_weights']);
      expect(out['route.route_ids']!.shape).toEqual([tokens, 2]);
      expect(out['route.route_ids']!.data).toBeInstanceOf(Int32Array);
      expect(out['route.routing_weights']!.data).toBeInstanceOf(Float32Array);
      // logits [1, 1, 2, -1]: expert 2, then experts 0 and 1 tie -> 0.
      expect(rows(out['route.route_ids']!)).toEqual(new Array(tokens).fill([2, 0]));
    }
  });

  test('a weight of the wrong length names the param, its shape and both counts', () => {
    expect(() => interpretGraph(routeGraph(), { x: f32([1, 2], [1, 2]) }, () => new Float32Array(7))).toThrow(
      'route_graph: weight %router.weight ([4, 2] f32): expected 8 f32 values for shape [4, 2], the weight loader gave 7',
    );
  });

  test('a weight that is not a Float32Array', () => {
    expect(() => interpretGraph(routeGraph(), { x: f32([1, 2], [1, 2]) }, () => new Float64Array(8) as unknown as Float32Array)).toThrow(
      /weight %router.weight \(\[4, 2\] f32\): the weight loader must return a Float32Array \(dequantized to f32\), got Float64Array/,
    );
  });

  test('missing, unknown and misshapen inputs', () => {
    const g = routeGraph();
    expect(() => interpretGraph(g, {}, w)).toThrow('route_graph: missing input %x ([T, 2] f32); the graph takes %x: [T, 2] f32');
    expect(() => interpretGraph(g, { x: f32([1, 2], [1, 2]), y: f32([1], [1]) }, w)).toThrow('route_graph: unknown input %y; the graph takes %x: [T, 2] f32');
    expect(() => interpretGraph(g, { x: f32([1, 3], [1, 2, 3]) }, w)).toThrow('route_graph: input %x has shape [1, 3], expected [1, 2] ([T, 2] f32)');
    expect(() => interpretGraph(g, { x: f32([2], [1, 2]) }, w)).toThrow('route_graph: input %x has shape [2], expected [T, 2]');
    expect(() => interpretGraph(g, { x: f32([2, 2], [1, 2, 3]) }, w)).toThrow('route_graph: input %x: shape [2, 2] has 4 elements, the data has 3');
    expect(() => interpretGraph(g, { x: i32([1, 2], [1, 2]) }, w)).toThrow('route_graph: input %x is f32 and must hold a Float32Array, got Int32Array');
  });

  test('inputs that disagree on T', () => {
    const graph = expertsGraph(kind('activation', 'swiglu', { intermediate: 2 }), 2, 2, 2);
    expect(() => interpretGraph(graph, { x: f32([2, 2], [1, 2, 3, 4]), ids: i32([1, 2], [0, 1]), weights: f32([1, 2], [1, 1]) }, () => new Float32Array(8))).toThrow(
      'experts_test: input %ids has T = 1 (shape [1, 2]), but %x has T = 2',
    );
  });

  test('a router kind without the params the spec front end fills in', () => {
    expect(() => route({ kind: 'softmax_topk', params: {} }, 2, [[1, 2, 3, 4]])).toThrow(/softmax_topk: parameter null_experts is not a number/);
  });
});
