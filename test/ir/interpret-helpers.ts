// Shared by the interpreter tests: kinds with the registry's defaults, a one-op routing graph
// whose logits the test writes down directly, and a seeded PRNG.
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import type { KindCategory } from '../../compiler/spec/kinds/registry.js';
import { GraphBuilder } from '../../ir/graph-builder.js';
import { builtinSemantics, interpretGraph, type HostTensor, type Semantics } from '../../ir/interpret/interpret.js';
import type { KindRef, ParamValue } from '../../ir/model-config.js';
import { TOKENS } from '../../ir/types.js';
import { seededRandom } from '../support/seeded-random.js';

export { seededRandom };

/** A kind with the registry's defaults, overridden by `params` (as the spec front end resolves it). */
export function kind(category: KindCategory, name: string, params: Record<string, ParamValue> = {}): KindRef {
  const definition = defaultRegistry.get(category, name);
  if (!definition) throw new Error(`no ${category} kind ${name}`);
  const resolved: Record<string, ParamValue> = {};
  for (const p of definition.params) if (p.default !== undefined) resolved[p.name] = p.default;
  Object.assign(resolved, params);
  if (resolved['topk_groups'] === 0) resolved['topk_groups'] = resolved['groups']!;
  return { kind: name, params: resolved };
}

export function rows(t: HostTensor): number[][] {
  const width = t.shape[1]!;
  return Array.from({ length: t.shape[0]! }, (_, i) => Array.from(t.data.subarray(i * width, (i + 1) * width)));
}

export interface Routed {
  ids: number[][];
  weights: number[][];
}

/**
 * Routes tokens whose logits the test gives directly: token t is the t-th unit vector (hidden
 * = number of tokens) and column t of the router weight is logits[t], so x W^T = logits[t] exactly
 * (up to f32 storage). `bias` / `correctionBias` are the router's bias inputs when the kind has them.
 */
export function route(router: KindRef, topK: number, logits: number[][], extra: { bias?: number[]; correctionBias?: number[] } = {}, semantics: Semantics = builtinSemantics): Routed {
  const tokens = logits.length;
  const experts = logits[0]!.length;
  const b = new GraphBuilder('route_test');
  const x = b.input('x', { shape: [TOKENS, tokens], dtype: 'f32' });
  const weights = [b.param('router.weight', [experts, tokens], 'router')];
  if (router.params['bias'] === true) weights.push(b.param('router.bias', [experts], 'router'));
  if (router.params['correction_bias'] === true) weights.push(b.param('router.correction_bias', [experts], 'router'));
  const [ids, w] = b.op('moe.route', [x, ...weights], { router, experts, top_k: topK }, 'route');
  const graph = b.finish([ids!, w!]);
  const identity = new Float32Array(tokens * tokens).map((_, i) => (i % (tokens + 1) === 0 ? 1 : 0));
  const params: Record<string, Float32Array> = {
    'router.weight': Float32Array.from({ length: experts * tokens }, (_, i) => logits[i % tokens]![Math.floor(i / tokens)]!),
    'router.bias': Float32Array.from(extra.bias ?? new Array<number>(experts).fill(0)),
    'router.correction_bias': Float32Array.from(extra.correctionBias ?? new Array<number>(experts).fill(0)),
  };
  const out = interpretGraph(graph, { x: { shape: [tokens, tokens], data: identity } }, (p) => params[p.name]!, semantics);
  return { ids: rows(out['route.route_ids']!), weights: rows(out['route.routing_weights']!) };
}

/** n values uniform in [-scale, scale). */
export function randomFloats(random: () => number, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (2 * random() - 1) * scale);
}

export function expectRowsClose(actual: number[][], expected: number[][], digits = 6): void {
  if (actual.length !== expected.length) throw new Error(`expected ${expected.length} rows, got ${actual.length}`);
  actual.forEach((row, i) => {
    if (row.length !== expected[i]!.length) throw new Error(`row ${i}: expected ${expected[i]!.length} values, got ${row.length}`);
    row.forEach((v, j) => {
      if (!(Math.abs(v - expected[i]![j]!) < 0.5 * 10 ** -digits)) throw new Error(`row ${i}, column ${j}: got ${v}, expected ${expected[i]![j]} (to ${digits} digits)\n  actual:   ${JSON.stringify(actual)}\n  expected: ${JSON.stringify(expected)}`);
    });
  });
}
