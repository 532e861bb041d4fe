// Shared by the MoE block GPU tests: one small inline spec per router family, seeded random
// weights and inputs, the CPU reference (ir/interpret) and the error measure.
import { dequantizeParam } from '../../ir/storage-format.js';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { seededRandom } from '../support/seeded-random.js';
import { relativeError as relativeErrorOf } from '../../ir/interpret/relative-error.js';

export { seededRandom };

export interface Family {
  name: string;
  /** The `moe { }` block body. */
  moe: string;
  /** Model width; HIDDEN unless given. */
  hidden?: number;
}

/**
 * Hidden 72 (70 for one family) and intermediates that are not multiples of any tile, some not
 * even of 4 (the kernels' scalar-load paths); 8..16 experts, top_k 2..4.
 */
export const HIDDEN = 72;
export const hiddenOf = (family: Family): number => family.hidden ?? HIDDEN;

export const families: Family[] = [
  { name: 'mixtral', moe: 'experts = 8\n top_k = 2\n router = softmax_topk(renormalize = true)\n expert = swiglu(intermediate = 40)' },
  {
    name: 'qwen2-moe',
    moe: 'experts = 12\n top_k = 4\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 56)\n shared = swiglu(intermediate = 100)\n shared_gate = sigmoid',
  },
  { name: 'olmoe', moe: 'experts = 16\n top_k = 3\n router = softmax_topk(renormalize = false)\n expert = swiglu(intermediate = 50)' },
  {
    name: 'deepseek-v2',
    moe: 'experts = 16\n top_k = 3\n router = softmax_topk(renormalize = false, groups = 4, topk_groups = 2, scale = 2.5)\n expert = swiglu(intermediate = 45)\n shared = swiglu(intermediate = 90)',
  },
  {
    name: 'deepseek-v3',
    moe: 'experts = 16\n top_k = 4\n router = sigmoid_topk(renormalize = true, groups = 4, topk_groups = 2, scale = 2.5)\n expert = swiglu(intermediate = 52)\n shared = swiglu(intermediate = 104)',
  },
  { name: 'gpt-oss', moe: 'experts = 8\n top_k = 4\n router = topk_softmax(bias = true)\n expert = clamped_swiglu(intermediate = 60, limit = 7, alpha = 1.702, bias = true)' },
  { name: 'phimoe', moe: 'experts = 16\n top_k = 2\n router = sparsemixer(jitter_eps = 0.01)\n expert = swiglu(intermediate = 120)' },
  { name: 'relu-gate', hidden: 70, moe: 'experts = 8\n top_k = 4\n router = relu_gate\n expert = swiglu(intermediate = 42)' },
  { name: 'adamoe-null-experts', moe: 'experts = 8\n top_k = 3\n router = softmax_topk(renormalize = true, null_experts = 4)\n expert = swiglu(intermediate = 36)' },
];

export function specOf(family: Family, compile = 'target = webgpu\n dtype = f32'): string {
  return `model "${family.name}" {
  hidden = ${hiddenOf(family)}
  vocab = 64
  layers = 1
  norm = rmsnorm(eps = 1e-6)
  attention = gqa(heads = 2)
  moe {
    ${family.moe}
  }
}
compile {
  ${compile}
}
`;
}

export function configOf(family: Family, compile?: string): ModelConfig {
  const checked = checkSpec(specOf(family, compile), `${family.name}.moe`);
  if (!checked.config) throw new Error(`${family.name}: ${checked.diagnostics.map((d) => d.message).join('; ')}`);
  return checked.config;
}

export function blockGraphOf(family: Family, compile?: string): { config: ModelConfig; graph: Graph } {
  const config = configOf(family, compile);
  return { config, graph: compileMoeBlockGraph(config, 0) };
}

export function normals(random: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - random();
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/**
 * Random weights by param name. Router logits get a standard deviation of about 2 so most
 * routing decisions are well separated; gpt-oss's gate/up are 4x larger so the clamp at 7 bites.
 */
export function randomWeights(graph: Graph, random: () => number): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  const hidden = graph.inputs[0]!.type.shape[1] as number;
  for (const p of graph.params) {
    const shape = p.type.shape as number[];
    const n = shape.reduce((a, d) => a * d, 1);
    const name = p.name;
    const clamped = graph.ops.some((op) => op.opcode === 'moe.experts' && (op.attrs['activation'] as { kind: string }).kind === 'clamped_swiglu');
    let std: number;
    if (name.endsWith('router.weight')) std = 2 / Math.sqrt(hidden);
    else if (name.endsWith('router.bias')) std = 0.5;
    else if (name.endsWith('correction_bias')) std = 0.1;
    else if (name.endsWith('_bias')) std = 0.1;
    else if (name.endsWith('.down')) std = 1 / Math.sqrt(shape[shape.length - 1]!);
    else if (name.endsWith('.gate') || name.endsWith('.up')) std = (clamped ? 4 : 1) / Math.sqrt(hidden);
    else std = 1 / Math.sqrt(hidden);
    weights.set(name, normals(random, n, std));
  }
  return weights;
}

/** The values the GPU computes with: each weight through its IR dtype's storage format and back. */
export function dequantizedWeights(graph: Graph, weights: Map<string, Float32Array>): Map<string, Float32Array> {
  return new Map(graph.params.map((p) => [p.name, dequantizeParam(p, weights.get(p.name)!)]));
}

const hiddenOfGraph = (graph: Graph): number => graph.inputs[0]!.type.shape[1] as number;

export function reference(graph: Graph, x: Float32Array, tokens: number, weights: Map<string, Float32Array>): Float32Array {
  const out = interpretGraph(graph, { hidden_states: { shape: [tokens, hiddenOfGraph(graph)], data: x } }, (p: Value) => weights.get(p.name)!);
  return out[graph.outputs[0]!.name]!.data as Float32Array;
}

/** The CPU router alone: the graph cut after moe.route. */
export function referenceRoute(graph: Graph, x: Float32Array, tokens: number, weights: Map<string, Float32Array>): { ids: Int32Array; weights: Float32Array } {
  const route = graph.ops.find((op) => op.opcode === 'moe.route')!;
  const routeGraph: Graph = { ...graph, ops: [route], outputs: route.outputs };
  const out = interpretGraph(routeGraph, { hidden_states: { shape: [tokens, hiddenOfGraph(graph)], data: x } }, (p: Value) => weights.get(p.name)!);
  return { ids: out[route.outputs[0]!.name]!.data as Int32Array, weights: out[route.outputs[1]!.name]!.data as Float32Array };
}

/** The relative error over every row of width `width`, or over `rows` only (near-tie tokens left out). */
export function relativeError(out: Float32Array, ref: Float32Array, width: number, rows?: number[]): number {
  return relativeErrorOf(out, ref, rows && { width, indices: rows });
}

/** The reference block after moe.route, fed fixed ids and routing weights (the GPU router's). */
export function referenceWithRoutes(graph: Graph, x: Float32Array, tokens: number, ids: Int32Array, routing: Float32Array, weights: Map<string, Float32Array>): Float32Array {
  const route = graph.ops.find((op) => op.opcode === 'moe.route')!;
  const [idsValue, weightsValue] = route.outputs as [Value, Value];
  const K = ids.length / tokens;
  const cut: Graph = { ...graph, inputs: [...graph.inputs, idsValue, weightsValue], ops: graph.ops.filter((op) => op !== route) };
  const H = graph.inputs[0]!.type.shape[1] as number;
  const out = interpretGraph(cut, {
    [graph.inputs[0]!.name]: { shape: [tokens, H], data: x },
    [idsValue.name]: { shape: [tokens, K], data: ids },
    [weightsValue.name]: { shape: [tokens, K], data: routing },
  }, (p) => weights.get(p.name)!);
  return out[graph.outputs[0]!.name]!.data as Float32Array;
}
