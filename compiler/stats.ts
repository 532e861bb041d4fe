// What a model costs: parameters (total and active per token), FLOPs per token and weight
// bytes, read off the IR after quantization so the bytes reflect the spec's formats.
import { isWeightMatrix, type Graph, type Value } from '../ir/graph.js';
import { numParam, type KindRef, type ModelConfig } from '../ir/model-config.js';
import { bitsPerElement, elementCount } from '../ir/types.js';

export interface ModelStats {
  totalParams: number;
  /** Per token, counting the embedding table and the LM head (Mistral's convention for Mixtral's 12.9B). */
  activeParams: number;
  /** Per token, counting the LM head but not the input embedding table (OpenAI's convention for gpt-oss). */
  activeParamsNonEmbedding: number;
  /** Forward FLOPs of one token attending `context` keys. */
  flopsPerToken: number;
  context: number;
  /** Bytes of all weights in their storage formats (quantization scales included). */
  weightBytes: number;
  /** Bytes of the weights one token reads (what bounds decode speed); an embedding lookup reads one row. */
  activeWeightBytes: number;
}

/** Share of a weight one token touches: routed experts top_k / experts, everything else all. */
function activeShare(p: Value, config: ModelConfig): number {
  return p.role === 'expert' && config.moe ? config.moe.topK / config.moe.experts : 1;
}

/** Share of a weight's bytes one token reads: as above, but an embedding lookup reads one row. */
function readShare(p: Value, config: ModelConfig): number {
  return p.role === 'embedding' && !config.tieEmbeddings ? 1 / config.vocab : activeShare(p, config);
}

export function computeStats(graph: Graph, config: ModelConfig, context = config.compile.context): ModelStats {
  let total = 0;
  let active = 0;
  let embedding = 0;
  let matmulActive = 0;
  let bytes = 0;
  let activeBytes = 0;
  for (const p of graph.params) {
    const n = elementCount(p.type.shape);
    const share = activeShare(p, config);
    const b = (n * bitsPerElement(p.type.dtype)) / 8;
    total += n;
    active += n * share;
    bytes += b;
    activeBytes += b * readShare(p, config);
    if (p.role === 'embedding' && !config.tieEmbeddings) embedding += n;
    // The embedding table is a lookup, not a matmul, unless it doubles as the LM head.
    const isMatmul = isWeightMatrix(p) && (p.role !== 'embedding' || config.tieEmbeddings);
    if (isMatmul) matmulActive += n * share;
  }
  return {
    totalParams: total,
    activeParams: active,
    activeParamsNonEmbedding: active - embedding,
    flopsPerToken: 2 * matmulActive + attentionScoreFlops(config, context),
    context,
    weightBytes: bytes,
    activeWeightBytes: activeBytes,
  };
}

/** QK^T and AV for one query over its visible keys, summed over layers (sliding layers see a window). */
export function attentionScoreFlops(config: ModelConfig, context: number): number {
  const a = config.attention;
  const heads = numParam(a, 'heads');
  const [qk, v] = a.kind === 'mla'
    ? [numParam(a, 'qk_nope_head_dim') + numParam(a, 'qk_rope_head_dim'), numParam(a, 'v_head_dim')]
    : [numParam(a, 'head_dim'), numParam(a, 'head_dim')];
  let flops = 0;
  for (let layer = 0; layer < config.layers; layer++) flops += 2 * heads * (qk + v) * visibleKeys(a, layer, context);
  return flops;
}

function visibleKeys(a: KindRef, layer: number, context: number): number {
  const window = a.kind === 'gqa' ? numParam(a, 'sliding_window') : 0;
  if (window === 0) return context;
  const fullEvery = numParam(a, 'full_every');
  const isFull = fullEvery > 0 && (layer + 1) % fullEvery === 0;
  return isFull ? context : Math.min(window, context);
}

/** Counts as `moec stats` prints them: 46.70 B, 352.32 M. */
export function formatCount(n: number, unit = ''): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, suffix] of units) if (Math.abs(n) >= size) return `${(n / size).toFixed(2)} ${suffix}${unit}`;
  return `${Math.round(n * 100) / 100} ${unit}`.trim();
}

export function formatBytes(n: number): string {
  const units: [number, string][] = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];
  for (const [size, suffix] of units) if (n >= size) return `${(n / size).toFixed(2)} ${suffix}`;
  return `${n} B`;
}

export function formatStats(name: string, s: ModelStats): string {
  const rows: [string, string, string][] = [
    ['total parameters', formatCount(s.totalParams), 'every weight: embedding table, layers, LM head (a tied head counted once)'],
    ['active parameters / token', formatCount(s.activeParams), 'top_k of the routed experts plus all other weights, embedding table and LM head included (Mistral\'s count)'],
    ['active, without embedding', formatCount(s.activeParamsNonEmbedding), 'as above without the input embedding table; the LM head stays (OpenAI\'s count)'],
    [`FLOPs / token @ ${s.context} ctx`, formatCount(s.flopsPerToken, 'FLOP'), `forward: 2 x active matmul weights + QK^T and AV over ${s.context} keys (sliding layers: their window)`],
    ['weight bytes', formatBytes(s.weightBytes), 'all weights in the spec\'s storage formats, scales included'],
    ['weight bytes read / token', formatBytes(s.activeWeightBytes), 'the weights one token touches (decode is bound by this)'],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return [name, ...rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`)].join('\n') + '\n';
}
