// placement.json: the chosen method's physical-to-logical map (SGLang's `--init-expert-location`
// form, one row per MoE layer) and a report of every method computed, measured on the trace.
import type { MethodResult } from './place-experts.js';
import type { Placement, PlacementProblem } from './placement.js';

export interface ReportContext {
  problem: PlacementProblem;
  traceFile: string;
}

const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function methodReport({ figures, seconds, ilp }: MethodResult): Record<string, unknown> {
  return {
    max_load: round(figures.maxLoad),
    mean_load: round(figures.meanLoad),
    max_over_mean: round(figures.maxOverMean, 4),
    worst_layer_max_over_mean: round(figures.worstLayerMaxOverMean, 4),
    cross_device_transitions: round(figures.crossDeviceTransitions),
    transitions: figures.transitions,
    cross_device_fraction: figures.transitions > 0 ? round(figures.crossDeviceTransitions / figures.transitions, 4) : 0,
    solve_seconds: round(seconds),
    ...(ilp && {
      time_limit_seconds: ilp.timeLimit,
      load_gap: round(ilp.loadGap, 5),
      transitions_gap: round(ilp.transitionsGap, 5),
      layers_optimal: ilp.layersOptimal,
      layers_time_limited: ilp.layersTimeLimited,
      solver_statuses: ilp.statuses,
      ...(ilp.fellBackTo && { fell_back_to: ilp.fellBackTo }),
    }),
    max_load_per_layer: figures.perLayer.map((f) => round(f.maxLoad)),
    cross_device_transitions_per_layer: figures.perLayer.map((f) => round(f.crossDeviceTransitions)),
  };
}

export function placementDocument(chosen: MethodResult, results: readonly MethodResult[], { problem, traceFile }: ReportContext): Record<string, unknown> {
  return {
    version: 1,
    devices: problem.devices,
    slots_per_device: problem.slotsPerDevice,
    method: chosen.method,
    physical_to_logical_map: chosen.placement.physicalToLogical,
    report: {
      trace: traceFile,
      model: problem.trace.model,
      tokens: problem.trace.tokens,
      experts: problem.experts,
      moe_layers: problem.trace.layers.map((l) => l.layer),
      methods: Object.fromEntries(results.map((r) => [r.method, methodReport(r)])),
    },
  };
}

/**
 * SGLang reads `--init-expert-location` by passing every key as a keyword argument, and wants one
 * row per hidden layer (dense ones too): this is that file, dense layers on the trivial map.
 */
export function sglangExpertLocation(placement: Placement, moeLayers: readonly number[], modelLayers: number, experts: number): Record<string, unknown> {
  const trivial = Array.from({ length: placement.devices * placement.slotsPerDevice }, (_, p) => p % experts);
  return { physical_to_logical_map: Array.from({ length: modelLayers }, (_, layer) => placement.physicalToLogical[moeLayers.indexOf(layer)] ?? trivial) };
}

/** JSON with two-space indentation, but arrays of numbers on one line each (a map row, a per-layer figure). */
export function compactJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\s*((?:-?[\d.e+-]+,\s*)*-?[\d.e+-]+)\s*\]/g, (_, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`) + '\n';
}
