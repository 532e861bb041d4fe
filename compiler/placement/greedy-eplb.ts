// DeepSeek's EPLB without the node hierarchy (its "global" policy): give each spare slot to the
// expert with the most tokens per replica, then pack the replicas onto devices heaviest first,
// each onto the least loaded device that still has a free slot. Layers are placed independently.
import type { Placement, PlacementProblem } from './placement.js';

/** EPLB's replicate_experts: physical experts 0..E-1 are the experts, each further one replicates the hottest per replica. */
export function replicateExperts(counts: readonly number[], physicalExperts: number): { physicalToExpert: number[]; replicas: number[] } {
  const replicas = counts.map(() => 1);
  const physicalToExpert = counts.map((_, e) => e);
  while (physicalToExpert.length < physicalExperts) {
    let hottest = 0;
    counts.forEach((c, e) => {
      if (c / replicas[e]! > counts[hottest]! / replicas[hottest]!) hottest = e;
    });
    physicalToExpert.push(hottest);
    replicas[hottest]!++;
  }
  return { physicalToExpert, replicas };
}

/** EPLB's balanced_packing: items heaviest first (ties: lower index), each to the lightest pack with room (ties: lower pack). */
export function balancedPacking(weights: readonly number[], packs: number): { pack: number[]; rank: number[] } {
  const perPack = weights.length / packs;
  if (perPack === 1) return { pack: weights.map((_, i) => i), rank: weights.map(() => 0) };
  const order = weights.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b);
  const packWeight = new Array<number>(packs).fill(0);
  const packItems = new Array<number>(packs).fill(0);
  const pack = new Array<number>(weights.length);
  const rank = new Array<number>(weights.length);
  for (const item of order) {
    let lightest = -1;
    for (let p = 0; p < packs; p++) {
      if (packItems[p]! < perPack && (lightest < 0 || packWeight[p]! < packWeight[lightest]!)) lightest = p;
    }
    pack[item] = lightest;
    rank[item] = packItems[lightest]!++;
    packWeight[lightest]! += weights[item]!;
  }
  return { pack, rank };
}

/** One layer's map row: slot pack * S + rank holds the packed physical expert. */
export function greedyEplbRow(counts: readonly number[], devices: number, slotsPerDevice: number): number[] {
  const { physicalToExpert, replicas } = replicateExperts(counts, devices * slotsPerDevice);
  const weights = physicalToExpert.map((e) => counts[e]! / replicas[e]!);
  const { pack, rank } = balancedPacking(weights, devices);
  const row = new Array<number>(physicalToExpert.length);
  physicalToExpert.forEach((e, p) => (row[pack[p]! * slotsPerDevice + rank[p]!] = e));
  return row;
}

export function greedyEplbPlacement({ trace, devices, slotsPerDevice }: PlacementProblem): Placement {
  return { devices, slotsPerDevice, physicalToLogical: trace.layers.map((layer) => greedyEplbRow(layer.counts, devices, slotsPerDevice)) };
}
