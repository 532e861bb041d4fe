// Whole MoE blocks from .moe specs through the interpreter, against an independent naive dense
// formulation written here: every expert runs on every token, and a dense [T, E] gate matrix
// (zero where a token does not use an expert) mixes them. Selection here is by rank ("fewer than
// k candidates beat it") instead of sorting, so it shares no code with ir/interpret/.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildMoeBlockGraph } from '../../ir/build-model.js';
import type { Graph } from '../../ir/graph.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import { moeLayerIndices, type KindRef, type ModelConfig } from '../../ir/model-config.js';
import { randomFloats, seededRandom } from './interpret-helpers.js';
import { relativeError } from '../../ir/interpret/relative-error.js';

const HIDDEN = 16;

function configOf(source: string, file: string): ModelConfig {
  const result = checkSpec(source, file);
  if (!result.config) throw new Error(result.diagnostics.map((d) => d.message).join('\n'));
  return result.config;
}

function specConfig(moeBody: string): ModelConfig {
  return configOf(`model "tiny" {
  hidden = ${HIDDEN}
  vocab = 32
  layers = 1
  norm = rmsnorm
  attention = gqa(heads = 2)
  moe {
${moeBody}
  }
}
`, 'tiny.moe');
}

/** Random weights for every param: matrices ~ U(-1, 1) / sqrt(fan in), biases ~ U(-.3, .3). */
function randomWeights(graph: Graph, seed: number, routerScale: number): Map<string, Float32Array> {
  const random = seededRandom(seed);
  const weights = new Map<string, Float32Array>();
  for (const p of graph.params) {
    const shape = p.type.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape[shape.length - 1]!;
    const scale = p.name.endsWith('correction_bias') ? 0.2 : p.name.endsWith('bias') ? 0.3 : (p.role === 'router' ? routerScale : 1) / Math.sqrt(fanIn);
    weights.set(p.name, randomFloats(random, n, scale));
  }
  return weights;
}

// ---- the naive dense formulation ----

type Matrix = number[][];

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** X [T, K] times W^T with W [N, K] stored flat from `offset`, plus an optional bias [N] from `biasOffset`. */
function timesTransposed(x: Matrix, w: Float32Array, n: number, offset = 0, bias?: Float32Array, biasOffset = 0): Matrix {
  const k = x[0]!.length;
  return x.map((row) => Array.from({ length: n }, (_, j) => row.reduce((acc, v, i) => acc + v * w[offset + j * k + i]!, 0) + (bias ? bias[biasOffset + j]! : 0)));
}

function activate(act: KindRef, g: number, u: number): number {
  if (act.kind === 'swiglu') return (g / (1 + Math.exp(-g))) * u;
  const limit = act.params['limit'] as number;
  const alpha = act.params['alpha'] as number;
  const gc = g > limit ? limit : g;
  const uc = u > limit ? limit : u < -limit ? -limit : u;
  return gc * sigmoid(alpha * gc) * (uc + 1);
}

/** One MLP (expert e of stacked weights, or an unstacked one) on every row of x. */
function runMlpDense(x: Matrix, act: KindRef, w: Map<string, Float32Array>, prefix: string, e = 0): Matrix {
  const inter = act.params['intermediate'] as number;
  const hidden = x[0]!.length;
  const bias = act.params['bias'] === true;
  const g = timesTransposed(x, w.get(`${prefix}.gate`)!, inter, e * inter * hidden, bias ? w.get(`${prefix}.gate_bias`) : undefined, e * inter);
  const u = timesTransposed(x, w.get(`${prefix}.up`)!, inter, e * inter * hidden, bias ? w.get(`${prefix}.up_bias`) : undefined, e * inter);
  const a = g.map((row, t) => row.map((gv, i) => activate(act, gv, u[t]![i]!)));
  return timesTransposed(a, w.get(`${prefix}.down`)!, hidden, e * hidden * inter, bias ? w.get(`${prefix}.down_bias`) : undefined, e * hidden);
}

/** chosen[i] iff i is allowed and fewer than k allowed entries beat it (a higher score, or an equal one at a lower index). */
function chosenByRank(scores: number[], k: number, allowed: boolean[] = scores.map(() => true)): boolean[] {
  return scores.map((s, i) => allowed[i]! && scores.filter((o, j) => allowed[j] && (o > s || (o === s && j < i))).length < k);
}

function keptGroupMask(scores: number[], groups: number, keep: number, groupScore: (members: number[]) => number): boolean[] {
  const size = scores.length / groups;
  const kept = chosenByRank(Array.from({ length: groups }, (_, g) => groupScore(scores.slice(g * size, (g + 1) * size))), keep);
  return scores.map((_, e) => kept[Math.floor(e / size)]!);
}

function expNormalized(scores: number[], include: boolean[]): number[] {
  const max = Math.max(...scores.filter((_, i) => include[i]));
  const e = scores.map((s, i) => (include[i] ? Math.exp(s - max) : 0));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** The routing of one token as a dense row over the real experts: weight where used, 0 elsewhere. */
function denseGates(router: KindRef, topK: number, logits: number[], correctionBias?: Float32Array): number[] {
  const p = router.params;
  const experts = logits.length;
  const all = logits.map(() => true);
  switch (router.kind) {
    case 'softmax_topk': {
      const scores = [...logits, ...new Array<number>(p['null_experts'] as number).fill(0)];
      const probs = expNormalized(scores, scores.map(() => true));
      const allowed = (p['groups'] as number) > 1 ? keptGroupMask(probs, p['groups'] as number, p['topk_groups'] as number, (m) => Math.max(...m)) : probs.map(() => true);
      const chosen = chosenByRank(probs, topK, allowed);
      const denominator = p['renormalize'] ? probs.reduce((acc, v, i) => acc + (chosen[i] ? v : 0), 0) : 1;
      return logits.map((_, e) => (chosen[e] ? (probs[e]! / denominator) * (p['scale'] as number) : 0));
    }
    case 'sigmoid_topk': {
      const s = logits.map(sigmoid);
      const biased = s.map((v, e) => v + (correctionBias ? correctionBias[e]! : 0));
      const topTwoSum = (m: number[]) => [...m].sort((a, b) => b - a).slice(0, 2).reduce((a, b) => a + b, 0);
      const allowed = (p['groups'] as number) > 1 ? keptGroupMask(biased, p['groups'] as number, p['topk_groups'] as number, topTwoSum) : all;
      const chosen = chosenByRank(biased, topK, allowed);
      const denominator = p['renormalize'] ? s.reduce((acc, v, i) => acc + (chosen[i] ? v : 0), 0) + 1e-20 : 1;
      return s.map((v, e) => (chosen[e] ? (v / denominator) * (p['scale'] as number) : 0));
    }
    case 'topk_softmax':
      return expNormalized(logits, chosenByRank(logits, topK));
    case 'relu_gate': {
      const relu = logits.map((l) => Math.max(l, 0));
      const chosen = chosenByRank(relu, topK, relu.map((v) => v > 0));
      return relu.map((v, e) => (chosen[e] ? v : 0));
    }
    case 'sparsemixer': {
      const window = 2 * (p['jitter_eps'] as number);
      const gates = new Array<number>(experts).fill(0);
      const first = chosenByRank(logits, 1).indexOf(true);
      const m1 = logits[first]!;
      gates[first] = expNormalized(logits, logits.map((s) => !((m1 - s) / Math.max(Math.abs(s), m1) > window)))[first]!;
      const second = chosenByRank(logits, 1, logits.map((_, e) => e !== first)).indexOf(true);
      const m2 = logits[second]!;
      gates[second] = expNormalized(logits, logits.map((s, e) => e !== first && !((m2 - s) / Math.max(Math.abs(s), m2) > window)))[second]!;
      return gates;
    }
  }
  throw new Error(`no dense reference for router ${router.kind}`);
}

/** The MoE block, densely: gates [T, E] from the logits, every expert on every token, plus the (gated) shared expert. */
function denseMoeBlock(config: ModelConfig, layer: number, w: Map<string, Float32Array>, x: Matrix): { y: Matrix; gates: Matrix } {
  const moe = config.moe!;
  const p = `layers.${layer}.moe`;
  const logits = timesTransposed(x, w.get(`${p}.router.weight`)!, moe.experts, 0, w.get(`${p}.router.bias`));
  const gates = logits.map((l) => denseGates(moe.router, moe.topK, l, w.get(`${p}.router.correction_bias`)));
  const expertOutputs = Array.from({ length: moe.experts }, (_, e) => runMlpDense(x, moe.expert, w, `${p}.experts`, e));
  const y = x.map((_, t) => Array.from({ length: config.hidden }, (_, h) => expertOutputs.reduce((acc, out, e) => acc + gates[t]![e]! * out[t]![h]!, 0)));
  if (moe.shared) {
    const shared = runMlpDense(x, moe.shared, w, `${p}.shared`);
    const scale = moe.sharedGate === 'sigmoid' ? timesTransposed(x, w.get(`${p}.shared_gate.weight`)!, 1).map((r) => sigmoid(r[0]!)) : x.map(() => 1);
    y.forEach((row, t) => row.forEach((_, h) => (row[h]! += scale[t]! * shared[t]![h]!)));
  }
  return { y, gates };
}

// ---- the cases ----

interface Case {
  name: string;
  moe: string;
  routerScale?: number;
  /** What the case must exercise, checked on the dense gates so a lucky draw cannot skip it. */
  expectGates?: (gates: Matrix) => void;
}

const activeCounts = (gates: Matrix) => new Set(gates.map((row) => row.filter((g) => g !== 0).length));

const cases: Case[] = [
  { name: 'Mixtral: softmax top-2, renormalized', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 12)' },
  {
    name: 'Qwen2-MoE: softmax top-4 without renormalization, shared expert with a sigmoid gate',
    moe: 'experts = 8\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 8)\n shared = swiglu(intermediate = 20)\n shared_gate = sigmoid',
  },
  {
    name: 'DeepSeek-V2: group-limited softmax, scaled, ungated shared expert',
    moe: 'experts = 16\n top_k = 3\n router = softmax_topk(renormalize = false, groups = 4, topk_groups = 2, scale = 1.5)\n expert = swiglu(intermediate = 8)\n shared = swiglu(intermediate = 16)',
  },
  {
    name: 'DeepSeek-V3: sigmoid with correction bias, groups, scale, shared expert',
    moe: 'experts = 16\n top_k = 4\n router = sigmoid_topk(groups = 4, topk_groups = 2, scale = 2.5)\n expert = swiglu(intermediate = 8)\n shared = swiglu(intermediate = 16)',
  },
  {
    name: 'gpt-oss: top-k then softmax with a router bias, clamped SwiGLU with biases (clamps active)',
    moe: 'experts = 8\n top_k = 4\n router = topk_softmax\n expert = clamped_swiglu(intermediate = 12, limit = 0.5)',
  },
  {
    name: 'PhiMoE: sparsemixer',
    moe: 'experts = 8\n top_k = 2\n router = sparsemixer(jitter_eps = 0.1)\n expert = swiglu(intermediate = 12)',
    routerScale: 0.5,
    expectGates: (gates) => expect(gates.flat().some((g) => g > 0 && g < 1)).toBe(true),
  },
  {
    name: 'ReMoE: relu gate, a variable number of experts',
    moe: 'experts = 8\n top_k = 3\n router = relu_gate\n expert = swiglu(intermediate = 12)',
    expectGates: (gates) => expect(activeCounts(gates).size).toBeGreaterThan(1),
  },
  {
    name: 'AdaMoE: softmax top-3 with 4 null experts',
    moe: 'experts = 8\n top_k = 3\n router = softmax_topk(null_experts = 4)\n expert = swiglu(intermediate = 12)',
    routerScale: 3,
    expectGates: (gates) => expect(activeCounts(gates).size).toBeGreaterThan(1),
  },
];

/** Runs the first MoE layer's block on T = 7 and T = 1 tokens and compares it with the dense formulation; returns the dense gates. */
function compareWithDense(config: ModelConfig, routerScale: number): Matrix {
  const layer = moeLayerIndices(config)[0]!;
  const hidden = config.hidden;
  const graph = buildMoeBlockGraph(config, layer);
  const weights = randomWeights(graph, 1234, routerScale);
  let gates: Matrix = [];
  for (const [tokens, seed] of [[7, 99], [1, 7]] as const) {
    const x = randomFloats(seededRandom(seed), tokens * hidden, 2);
    const out = interpretGraph(graph, { hidden_states: { shape: [tokens, hidden], data: x } }, (p) => weights.get(p.name)!);
    const y = out[graph.outputs[0]!.name]!;
    expect(y.shape).toEqual([tokens, hidden]);
    const reference = denseMoeBlock(config, layer, weights, Array.from({ length: tokens }, (_, t) => Array.from(x.subarray(t * hidden, (t + 1) * hidden))));
    expect(relativeError(y.data, reference.y.flat())).toBeLessThan(1e-6);
    if (tokens > 1) gates = reference.gates;
  }
  return gates;
}

describe('an MoE block from a spec equals the naive dense formulation', () => {
  test.each(cases)('$name', ({ moe, routerScale, expectGates }) => {
    expectGates?.(compareWithDense(specConfig(moe), routerScale ?? 2));
  });
});

const examples = new URL('../../examples/', import.meta.url);
const tinyExamples = readdirSync(examples).filter((f) => /^tiny-.*\.moe$/.test(f));

describe.skipIf(tinyExamples.length === 0)('the tiny example specs', () => {
  test.each(tinyExamples)('%s', (file) => {
    compareWithDense(configOf(readFileSync(new URL(file, examples), 'utf8'), file), 2);
  });
});
