// Derived figures for hovers, read off the same IR and stats as `moec stats`: the model's
// parameters, FLOPs and bytes; one MoE block's share of them; weight bytes per weight group.
import { compileModelGraph, compileMoeBlockGraph } from '../../compiler/pipeline.js';
import type { KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { attentionScoreFlops, computeStats, type ModelStats } from '../../compiler/stats.js';
import { roleOfQuantTarget, type Graph, type WeightRole } from '../../ir/graph.js';
import { moeLayerIndices, type ModelConfig } from '../../ir/model-config.js';
import { bitsPerElement, dtypeName, elementCount } from '../../ir/types.js';

/** Building the IR walks every layer; past this a hover would stall the editor. */
export const maxLayersForFigures = 10_000;

export const placementNote = 'placement: single device (no placement in spec)';

/** The weight group each `quantize <target>` covers. */
export const roleOfTarget = roleOfQuantTarget;

const roleLabels: Record<WeightRole, string> = {
  embedding: 'embeddings', lm_head: 'lm_head', attention: 'attention', norm: 'norms', router: 'router', expert: 'experts', shared: 'shared', dense: 'dense', rope: 'rope table',
};

export interface WeightGroup {
  role: WeightRole;
  label: string;
  params: number;
  bytes: number;
  /** Storage formats as the IR prints them, e.g. ['int4<g32>', 'f32'] when biases stay f32. */
  formats: string[];
}

export interface ModelFigures {
  stats: ModelStats;
  groups: WeightGroup[];
}

export interface MoeBlockFigures {
  moeLayers: number[];
  perExpert: number;
  routedTotal: number;
  routedActive: number;
  router: number;
  shared: number;
  /** One block: the stats of its graph, FLOPs without the attention term computeStats adds. */
  stats: ModelStats;
}

export function figuresUnavailable(config: ModelConfig): string | undefined {
  return config.layers > maxLayersForFigures ? `figures are computed for up to ${maxLayersForFigures} layers (this model has ${config.layers})` : undefined;
}

/** `kinds`: the registry the spec was checked with, so a plugin's quantization kind has its storage cost. */
export function modelFigures(config: ModelConfig, kinds?: KindRegistry): ModelFigures {
  const graph = compileModelGraph(config, { kinds });
  return { stats: computeStats(graph, config), groups: weightGroups(graph) };
}

export function moeBlockFigures(config: ModelConfig, kinds?: KindRegistry): MoeBlockFigures | undefined {
  const moeLayers = moeLayerIndices(config);
  const moe = config.moe;
  if (!moe || moeLayers.length === 0) return undefined;
  const graph = compileMoeBlockGraph(config, moeLayers[0]!, { kinds });
  const stats = computeStats(graph, config);
  stats.flopsPerToken -= attentionScoreFlops(config, stats.context);
  const groups = weightGroups(graph);
  const params = (role: WeightRole) => groups.find((g) => g.role === role)?.params ?? 0;
  const routedTotal = params('expert');
  const perExpert = routedTotal / moe.experts;
  return { moeLayers, perExpert, routedTotal, routedActive: perExpert * moe.topK, router: params('router'), shared: params('shared'), stats };
}

/** Parameters and bytes of each weight role, in the order the graph declares them. */
export function weightGroups(graph: Graph): WeightGroup[] {
  const groups = new Map<WeightRole, WeightGroup>();
  for (const p of graph.params) {
    if (!p.role) continue;
    const group = groups.get(p.role) ?? { role: p.role, label: roleLabels[p.role], params: 0, bytes: 0, formats: [] };
    const n = elementCount(p.type.shape);
    group.params += n;
    group.bytes += (n * bitsPerElement(p.type.dtype)) / 8;
    const format = dtypeName(p.type.dtype);
    if (!group.formats.includes(format)) group.formats.push(format);
    groups.set(p.role, group);
  }
  return [...groups.values()];
}

export { formatBytes, formatCount } from '../../compiler/stats.js';

/** Layer indices as runs: `0..31`, `1, 3, 5, … 23`. */
export function formatLayers(layers: readonly number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < layers.length; ) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j]! + 1) j++;
    runs.push(j > i ? `${layers[i]}..${layers[j]}` : String(layers[i]));
    i = j + 1;
  }
  return runs.length > 8 ? `${runs.slice(0, 6).join(', ')}, … ${runs[runs.length - 1]}` : runs.join(', ');
}
