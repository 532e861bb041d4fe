// What expert placement works on and produces: a routing trace, the problem (experts, devices,
// slots) and a placement in SGLang's physical-to-logical form, plus the per-device view of one
// layer (replicas of each expert on each device) that the methods and the report compute with.

/** One MoE layer of a routing trace: tokens per expert and where those tokens went next. */
export interface TraceLayer {
  /** The model layer index of this MoE layer. */
  layer: number;
  /** counts[e]: tokens that chose expert e here. */
  counts: number[];
  /** transitions[i][j]: (token, i, j) with i chosen here and j at the next MoE layer; empty on the last. */
  transitions: number[][];
}

/** A routing trace, format version 1 (README: "Routing traces and expert placement"). */
export interface RoutingTrace {
  version: 1;
  model: string;
  tokens: number;
  layers: TraceLayer[];
}

export const placementMethods = ['ilp', 'greedy', 'round-robin'] as const;
export type PlacementMethod = (typeof placementMethods)[number];

export interface PlacementProblem {
  trace: RoutingTrace;
  experts: number;
  devices: number;
  slotsPerDevice: number;
}

/** physicalToLogical[l][p]: the expert in physical slot p of MoE layer l; slot p is on device floor(p / slotsPerDevice). */
export interface Placement {
  devices: number;
  slotsPerDevice: number;
  physicalToLogical: number[][];
}

/** replicas[e][d]: how many replicas of expert e one layer puts on device d. */
export type ReplicaMatrix = number[][];

export function replicaMatrixOf(row: readonly number[], experts: number, devices: number, slotsPerDevice: number): ReplicaMatrix {
  const replicas = Array.from({ length: experts }, () => new Array<number>(devices).fill(0));
  row.forEach((expert, slot) => replicas[expert]![Math.floor(slot / slotsPerDevice)]!++);
  return replicas;
}

/** The map row of a replica matrix: each device's slots hold its experts in ascending order. */
export function mapRowOf(replicas: ReplicaMatrix, devices: number): number[] {
  const row: number[] = [];
  for (let d = 0; d < devices; d++) {
    replicas.forEach((perDevice, expert) => {
      for (let n = 0; n < perDevice[d]!; n++) row.push(expert);
    });
  }
  return row;
}

export const replicaCountsOf = (replicas: ReplicaMatrix): number[] => replicas.map((perDevice) => perDevice.reduce((a, b) => a + b, 0));

/** Throws unless every layer's row has devices x slots entries naming valid experts, each at least once. */
export function checkPlacement(placement: Placement, experts: number, layers: number): void {
  const slots = placement.devices * placement.slotsPerDevice;
  if (placement.physicalToLogical.length !== layers) throw new Error(`placement has ${placement.physicalToLogical.length} layers, expected ${layers}`);
  placement.physicalToLogical.forEach((row, l) => {
    if (row.length !== slots) throw new Error(`placement layer ${l} has ${row.length} slots, expected ${slots}`);
    const seen = new Array<boolean>(experts).fill(false);
    for (const e of row) {
      if (!Number.isInteger(e) || e < 0 || e >= experts) throw new Error(`placement layer ${l} names expert ${e} of ${experts}`);
      seen[e] = true;
    }
    const missing = seen.indexOf(false);
    if (missing >= 0) throw new Error(`placement layer ${l} leaves expert ${missing} out`);
  });
}
