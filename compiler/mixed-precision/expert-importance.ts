// How much each routed expert matters to the model, from a routing trace: the fraction of a MoE
// layer's routed tokens that chose it (MC-MoE's activation frequency). Each layer's importances
// sum to 1, so every MoE layer weighs the same in the mixed-precision program.
import { readRoutingTrace } from '../placement/routing-trace.js';
import type { RoutingTrace } from '../placement/placement.js';

/** One MoE layer's importances: importance[e] is the share of the layer's routed tokens that chose expert e. */
export interface LayerImportance {
  /** The model layer index of this MoE layer. */
  layer: number;
  importance: number[];
}

export class ExpertImportanceError extends Error {
  override readonly name = 'ExpertImportanceError';
}

/** counts[e] / sum(counts); a layer no token reached (all counts 0) gives every expert 1 / E. */
export function activationFrequency(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return total > 0 ? counts.map((c) => c / total) : counts.map(() => 1 / counts.length);
}

/**
 * Each of the model's MoE layers' importances, in `moeLayers` order. The trace must cover exactly
 * those layers: one it lacks (or one the model does not have) is an error naming `file` and the layer.
 */
export function importanceFromTrace(trace: RoutingTrace, moeLayers: readonly number[], file: string): LayerImportance[] {
  const byLayer = new Map(trace.layers.map((l) => [l.layer, l]));
  const listed = `the model's MoE layers are ${moeLayers.join(', ')}`;
  const extra = trace.layers.find((l) => !moeLayers.includes(l.layer));
  if (extra) throw new ExpertImportanceError(`${file}: has layer ${extra.layer}, which is not an MoE layer of the model (${listed}); was the trace recorded from another model?`);
  return moeLayers.map((layer) => {
    const entry = byLayer.get(layer);
    if (!entry) throw new ExpertImportanceError(`${file}: no entry for MoE layer ${layer} (${listed}); record the trace again with every MoE layer`);
    return { layer, importance: activationFrequency(entry.counts) };
  });
}

/** Reads `path` (routing trace format v1, checked field by field) and gives each MoE layer's importances. */
export function readExpertImportance(path: string, model: { experts: number; moeLayers: readonly number[] }): LayerImportance[] {
  // The layer list is checked here rather than by the reader, so a missing layer is named.
  const trace = readRoutingTrace(path, { experts: model.experts });
  return importanceFromTrace(trace, model.moeLayers, path);
}
