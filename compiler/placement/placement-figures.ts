// How good a placement is on a trace: device loads (a replicated expert's tokens split evenly
// among its replicas) and the token transitions between consecutive MoE layers that cross devices.
import { replicaCountsOf, replicaMatrixOf, type Placement, type ReplicaMatrix, type RoutingTrace } from './placement.js';

export interface LayerFigures {
  layer: number;
  /** Tokens (token-expert choices) on the busiest device. */
  maxLoad: number;
  meanLoad: number;
  /** Transitions from this MoE layer to the next whose two experts sit on different devices. */
  crossDeviceTransitions: number;
  transitions: number;
}

export interface PlacementFigures {
  /** The busiest device's load, averaged over MoE layers. */
  maxLoad: number;
  meanLoad: number;
  /** maxLoad / meanLoad: 1 is perfect balance. */
  maxOverMean: number;
  worstLayerMaxOverMean: number;
  crossDeviceTransitions: number;
  transitions: number;
  perLayer: LayerFigures[];
}

export function deviceLoads(counts: readonly number[], replicas: ReplicaMatrix): number[] {
  const perReplica = replicaCountsOf(replicas).map((r, e) => counts[e]! / r);
  const loads = new Array<number>(replicas[0]!.length).fill(0);
  replicas.forEach((perDevice, e) => perDevice.forEach((n, d) => (loads[d]! += n * perReplica[e]!)));
  return loads;
}

/** fractions[e][d]: the share of expert e's tokens that device d serves. */
export function deviceShares(replicas: ReplicaMatrix): number[][] {
  const totals = replicaCountsOf(replicas);
  return replicas.map((perDevice, e) => perDevice.map((n) => n / totals[e]!));
}

/** Sum over (i, j) of transitions[i][j] times the fraction of replica pairs of i (from) and j (to) on different devices. */
export function crossDeviceMass(transitions: readonly (readonly number[])[], from: ReplicaMatrix, to: ReplicaMatrix): number {
  const a = deviceShares(from);
  const b = deviceShares(to);
  let cross = 0;
  transitions.forEach((row, i) => row.forEach((count, j) => {
    if (count === 0) return;
    let same = 0;
    a[i]!.forEach((share, d) => (same += share * b[j]![d]!));
    cross += count * (1 - same);
  }));
  return cross;
}

export function placementFigures(trace: RoutingTrace, placement: Placement): PlacementFigures {
  const { devices, slotsPerDevice } = placement;
  const experts = trace.layers[0]!.counts.length;
  const matrices = placement.physicalToLogical.map((row) => replicaMatrixOf(row, experts, devices, slotsPerDevice));
  const perLayer = trace.layers.map((layer, l): LayerFigures => {
    const loads = deviceLoads(layer.counts, matrices[l]!);
    const last = l === trace.layers.length - 1;
    return {
      layer: layer.layer,
      maxLoad: Math.max(...loads),
      meanLoad: loads.reduce((a, b) => a + b, 0) / devices,
      crossDeviceTransitions: last ? 0 : crossDeviceMass(layer.transitions, matrices[l]!, matrices[l + 1]!),
      transitions: layer.transitions.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0),
    };
  });
  const mean = (pick: (f: LayerFigures) => number): number => perLayer.reduce((sum, f) => sum + pick(f), 0) / perLayer.length;
  const maxLoad = mean((f) => f.maxLoad);
  const meanLoad = mean((f) => f.meanLoad);
  return {
    maxLoad,
    meanLoad,
    maxOverMean: meanLoad > 0 ? maxLoad / meanLoad : 1,
    worstLayerMaxOverMean: Math.max(...perLayer.map((f) => (f.meanLoad > 0 ? f.maxLoad / f.meanLoad : 1))),
    crossDeviceTransitions: perLayer.reduce((sum, f) => sum + f.crossDeviceTransitions, 0),
    transitions: perLayer.reduce((sum, f) => sum + f.transitions, 0),
    perLayer,
  };
}
