// Devices are interchangeable within one layer: renaming them changes no load, only which experts
// share a device with the previous layer's. These helpers rename a layer's devices to keep the
// most transitions on-device (an assignment problem, solved exactly by Kuhn-Munkres).
import { deviceShares } from './placement-figures.js';
import type { ReplicaMatrix } from './placement.js';

/** assignment[row]: the column that row gets, minimising the summed cost (Kuhn-Munkres, O(n^3)). */
export function minCostAssignment(cost: readonly (readonly number[])[]): number[] {
  const n = cost.length;
  const u = new Array<number>(n + 1).fill(0);
  const v = new Array<number>(n + 1).fill(0);
  const rowOfColumn = new Array<number>(n + 1).fill(0); // 1-based; 0 = unassigned
  const way = new Array<number>(n + 1).fill(0);
  for (let row = 1; row <= n; row++) {
    rowOfColumn[0] = row;
    let column = 0;
    const slack = new Array<number>(n + 1).fill(Infinity);
    const used = new Array<boolean>(n + 1).fill(false);
    do {
      used[column] = true;
      const r = rowOfColumn[column]!;
      let delta = Infinity;
      let next = 0;
      for (let c = 1; c <= n; c++) {
        if (used[c]) continue;
        const reduced = cost[r - 1]![c - 1]! - u[r]! - v[c]!;
        if (reduced < slack[c]!) [slack[c], way[c]] = [reduced, column];
        if (slack[c]! < delta) [delta, next] = [slack[c]!, c];
      }
      for (let c = 0; c <= n; c++) {
        if (used[c]) [u[rowOfColumn[c]!], v[c]] = [u[rowOfColumn[c]!]! + delta, v[c]! - delta];
        else slack[c]! -= delta;
      }
      column = next;
    } while (rowOfColumn[column] !== 0);
    do {
      const previous = way[column]!;
      rowOfColumn[column] = rowOfColumn[previous]!;
      column = previous;
    } while (column !== 0);
  }
  const assignment = new Array<number>(n);
  for (let c = 1; c <= n; c++) assignment[rowOfColumn[c]! - 1] = c - 1;
  return assignment;
}

/**
 * sameDevice[j][d]: transitions into expert j (from the previous layer) that start on device d, per
 * replica of j; a layer's on-device transitions are the sum of sameDevice[j][d] * replicas[j][d].
 */
export function sameDeviceGain(transitionsIn: readonly (readonly number[])[], previous: ReplicaMatrix, replicas: readonly number[]): number[][] {
  const shares = deviceShares(previous);
  const devices = previous[0]!.length;
  const gain = replicas.map(() => new Array<number>(devices).fill(0));
  transitionsIn.forEach((row, i) => row.forEach((count, j) => {
    if (count !== 0) shares[i]!.forEach((share, d) => (gain[j]![d]! += (count * share) / replicas[j]!));
  }));
  return gain;
}

/** The same layer with its devices renamed so that the most transitions stay on-device. */
export function relabelDevices(matrix: ReplicaMatrix, gain: readonly (readonly number[])[]): ReplicaMatrix {
  const devices = matrix[0]!.length;
  const cost = Array.from({ length: devices }, (_, from) => Array.from({ length: devices }, (_, to) => -matrix.reduce((sum, perDevice, e) => sum + perDevice[from]! * gain[e]![to]!, 0)));
  const target = minCostAssignment(cost);
  return matrix.map((perDevice) => {
    const renamed = new Array<number>(devices).fill(0);
    perDevice.forEach((n, from) => (renamed[target[from]!] = n));
    return renamed;
  });
}
