// Shared by the mixed-precision tests: a tiny spec's model graph with random weights behind a
// WeightSource that records its reads, and routing traces where a few experts take most tokens.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Graph } from '../../ir/graph.js';
import type { ModelConfig } from '../../ir/model-config.js';
import type { RowRange, WeightSource } from '../../runtime/plan.js';
import { randomDecoderWeights } from '../support/decoder-weights.js';
import { seededRandom } from '../support/seeded-random.js';

/** tiny-phimoe: 2 MoE layers of 8 experts, hidden 64, intermediate 96 (both multiples of 32, so group 32 fits). */
export const TINY_SPEC = 'examples/tiny-phimoe.moe';

export interface TinyModel {
  config: ModelConfig;
  graph: Graph;
  weights: Map<string, Float32Array>;
}

export function tinyModel(seed: number, file = TINY_SPEC): TinyModel {
  const { config, diagnostics } = checkSpec(readFileSync(file, 'utf8'), file);
  if (!config) throw new Error(`${file}: ${diagnostics.map((d) => d.message).join('; ')}`);
  const graph = buildModelGraph(config);
  return { config, graph, weights: randomDecoderWeights(graph, seededRandom(seed)) };
}

/** A WeightSource over `weights` that serves row ranges and records each read (name and rows). */
export function recordingSource(weights: ReadonlyMap<string, Float32Array>, options: { ignoreRows?: boolean } = {}): WeightSource & { reads: { name: string; rows?: RowRange }[] } {
  const reads: { name: string; rows?: RowRange }[] = [];
  return {
    reads,
    readF32(name, shape, rows) {
      reads.push({ name, rows });
      const values = weights.get(name);
      if (!values) throw new Error(`no weight ${name}`);
      if (!rows || options.ignoreRows) return values;
      const perRow = shape.slice(1).reduce((n, d) => n * d, 1);
      return values.subarray(rows.begin * perRow, rows.end * perRow);
    },
  };
}

/**
 * Token counts where a few experts take most tokens: the expert of popularity rank r gets
 * tokens / (r + 1)^exponent (normalised), ranks dealt out by a seeded permutation.
 */
export function zipfCounts(experts: number, tokens: number, exponent: number, seed: number): number[] {
  const random = seededRandom(seed);
  const rank = Array.from({ length: experts }, (_, i) => i);
  for (let i = experts - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [rank[i], rank[j]] = [rank[j]!, rank[i]!];
  }
  const weight = rank.map((r) => 1 / (r + 1) ** exponent);
  const total = weight.reduce((a, b) => a + b, 0);
  return weight.map((w) => Math.max(1, Math.round((tokens * w) / total)));
}

/** Writes a version 1 trace of `layers` (model layer index and counts) to dir/name; transitions are zero. */
export function writeTrace(dir: string, layers: readonly { layer: number; counts: readonly number[] }[], name = 'trace.json'): string {
  const experts = layers[0]!.counts.length;
  const entries = layers.map(({ layer, counts }, i) => ({
    layer, counts, ...(i + 1 < layers.length ? { transitions: Array.from({ length: experts }, () => new Array<number>(experts).fill(0)) } : {}),
  }));
  const path = join(dir, name);
  const tokens = layers[0]!.counts.reduce((a, b) => a + b, 0);
  writeFileSync(path, JSON.stringify({ version: 1, model: 'tiny', tokens, layers: entries }));
  return path;
}

/** Experts of one layer sorted by count, most first. */
export const byCountDescending = (counts: readonly number[]): number[] => counts.map((_, e) => e).sort((a, b) => counts[b]! - counts[a]! || a - b);
