// Placement by mixed-integer programming (in the spirit of MoETuner), layer by layer: with layer
// l-1 placed, the transitions from it that cross devices are linear in layer l's assignment, so
// each layer is a small program (E x N variables) rather than one joint model with pairwise terms.
// Per layer: replica counts from the better of EPLB and round-robin, then HiGHS minimises the
// busiest device's load, then, under that load, the crossing transitions. Every program starts
// from a known placement (the baselines, devices renamed to suit the previous layer), so no layer
// is worse on load than either baseline; the time limit is shared out over the layers.
import type { Highs } from 'highs';
import { relabelDevices, sameDeviceGain } from './device-relabel.js';
import { BALANCE_TOLERANCE, balanceLowerBound, fitsProgram, solveLayerProgram, type LayerProgram } from './ilp-layer-model.js';
import { crossDeviceMass, deviceLoads } from './placement-figures.js';
import { mapRowOf, replicaCountsOf, replicaMatrixOf, type Placement, type PlacementProblem, type ReplicaMatrix, type TraceLayer } from './placement.js';

export interface IlpOptions {
  /** For all layers together, seconds. */
  timeLimit: number;
}

export interface IlpStats {
  timeLimit: number;
  /** Layers whose programs HiGHS solved to optimality (or whose seed was already balanced within the tolerance). */
  layersOptimal: number;
  /** Layers where a program stopped at its time share (the best placement found is used). */
  layersTimeLimited: number;
  /** max over layers of (busiest device - proven bound) / busiest device. */
  loadGap: number;
  /** (crossing transitions - their proven bounds) / crossing transitions, each layer's bound given the previous layer's placement. */
  transitionsGap: number;
  /** How many programs ended with each HiGHS status (or `no time left`). */
  statuses: Record<string, number>;
}

/** Both baselines' placements, which seed every layer's programs. */
export interface Baselines {
  greedy: Placement;
  roundRobin: Placement;
}

/** The balance program's share of a layer's time; locality, harder to solve, gets the rest. */
const BALANCE_SHARE = 0.35;

/** The status of a balance program not run: the seed is already within the tolerance of the bound. */
const WITHIN_TOLERANCE = 'seed within tolerance';

const maxLoad = (counts: readonly number[], matrix: ReplicaMatrix): number => Math.max(...deviceLoads(counts, matrix));
const sameCounts = (a: readonly number[], b: readonly number[]): boolean => a.every((x, i) => x === b[i]);

/** Device 0 holds `expert`: swap device 0 with one that does. */
function withExpertOnDeviceZero(matrix: ReplicaMatrix, expert: number): ReplicaMatrix {
  const d = matrix[expert]!.findIndex((n) => n > 0);
  return matrix.map((perDevice) => perDevice.map((_, k) => perDevice[k === 0 ? d : k === d ? 0 : k]!));
}

/**
 * HiGHS, loaded on use (its Wasm would slow every other command's start). Node loads highs.mjs,
 * whose default export is the loader; the package's CommonJS-style typings say `.default.default`.
 */
async function loadHighs(): Promise<Highs> {
  const { default: load } = (await import('highs')) as unknown as { default: () => Promise<Highs> };
  return load();
}

interface LayerInput {
  layer: TraceLayer;
  /** The baselines' matrices for this layer, lower max load first. */
  seeds: ReplicaMatrix[];
  /** The previous MoE layer as already placed, and its transitions into this one. */
  previous?: { matrix: ReplicaMatrix; transitions: readonly (readonly number[])[] };
  devices: number;
  slotsPerDevice: number;
}

interface LayerResult {
  matrix: ReplicaMatrix;
  statuses: string[];
  loadBound: number;
  crossing: number;
  crossingBound: number;
}

function placeLayer(highs: Highs, input: LayerInput, secondsUntilEnd: () => number): LayerResult {
  const { layer, previous, devices, slotsPerDevice } = input;
  const replicas = replicaCountsOf(input.seeds[0]!);
  const program: LayerProgram = { counts: layer.counts, replicas, devices, slotsPerDevice };
  const seeds = input.seeds.filter((m) => sameCounts(replicaCountsOf(m), replicas));
  const heaviest = layer.counts.indexOf(Math.max(...layer.counts));
  const balanceSeconds = previous ? secondsUntilEnd() * BALANCE_SHARE : secondsUntilEnd();
  const balanced = maxLoad(layer.counts, seeds[0]!) <= balanceLowerBound(program) * (1 + BALANCE_TOLERANCE);
  const balance = balanced
    ? { matrix: seeds[0]!, status: WITHIN_TOLERANCE, bound: undefined }
    : solveLayerProgram(highs, program, { kind: 'balance', pinned: heaviest }, withExpertOnDeviceZero(seeds[0]!, heaviest), balanceSeconds);
  const loadBound = Math.max(balance.bound ?? 0, balanceLowerBound(program));
  if (!previous) return { matrix: balance.matrix, statuses: [balance.status], loadBound, crossing: 0, crossingBound: 0 };

  // Locality may load a device up to the balance tolerance over the proven bound, never above the baselines.
  const loadCap = Math.min(maxLoad(layer.counts, seeds[0]!), Math.max(maxLoad(layer.counts, balance.matrix), loadBound * (1 + BALANCE_TOLERANCE)));
  const gain = sameDeviceGain(previous.transitions, previous.matrix, replicas);
  const incoming = replicas.map((_, j) => previous.transitions.reduce((sum, row) => sum + row[j]!, 0));
  const cost = gain.map((perDevice, j) => perDevice.map((g) => incoming[j]! / replicas[j]! - g));
  const crossOf = (m: ReplicaMatrix): number => crossDeviceMass(previous.transitions, previous.matrix, m);
  const starts = [balance.matrix, ...seeds].map((m) => relabelDevices(m, gain)).filter((m) => fitsProgram(m, program, loadCap));
  const start = starts.reduce((best, m) => (crossOf(m) < crossOf(best) ? m : best));
  const locality = solveLayerProgram(highs, program, { kind: 'locality', cost, loadCap }, start, secondsUntilEnd());
  const matrix = crossOf(locality.matrix) <= crossOf(start) ? locality.matrix : start;
  // Without HiGHS's bound: each replica at its cheapest device, slots and loads ignored.
  const relaxed = cost.reduce((sum, perDevice, j) => sum + replicas[j]! * Math.min(...perDevice), 0);
  return { matrix, statuses: [balance.status, locality.status], loadBound, crossing: crossOf(matrix), crossingBound: Math.max(locality.bound ?? 0, relaxed, 0) };
}

export async function ilpPlacement(problem: PlacementProblem, baselines: Baselines, options: IlpOptions): Promise<{ placement: Placement; stats: IlpStats }> {
  const deadline = performance.now() + options.timeLimit * 1000;
  const highs = await loadHighs();
  const { trace, experts, devices, slotsPerDevice } = problem;
  const stats: IlpStats = { timeLimit: options.timeLimit, layersOptimal: 0, layersTimeLimited: 0, loadGap: 0, transitionsGap: 0, statuses: {} };
  const matrices: ReplicaMatrix[] = [];
  let crossing = 0;
  let crossingBound = 0;
  trace.layers.forEach((layer, l) => {
    const layerEnd = performance.now() + (deadline - performance.now()) / (trace.layers.length - l);
    const seeds = [baselines.greedy, baselines.roundRobin].map((p) => replicaMatrixOf(p.physicalToLogical[l]!, experts, devices, slotsPerDevice));
    seeds.sort((a, b) => maxLoad(layer.counts, a) - maxLoad(layer.counts, b)); // stable: greedy first on a tie
    const previous = l > 0 ? { matrix: matrices[l - 1]!, transitions: trace.layers[l - 1]!.transitions } : undefined;
    const result = placeLayer(highs, { layer, seeds, previous, devices, slotsPerDevice }, () => Math.max(0, (layerEnd - performance.now()) / 1000));
    matrices.push(result.matrix);
    for (const s of result.statuses) stats.statuses[s] = (stats.statuses[s] ?? 0) + 1;
    if (result.statuses.every((s) => s === 'optimal' || s === WITHIN_TOLERANCE)) stats.layersOptimal++;
    if (result.statuses.includes('timeLimit')) stats.layersTimeLimited++;
    const busiest = maxLoad(layer.counts, result.matrix);
    if (busiest > 0) stats.loadGap = Math.max(stats.loadGap, Math.max(0, busiest - result.loadBound) / busiest);
    crossing += result.crossing;
    crossingBound += Math.min(result.crossing, result.crossingBound);
  });
  stats.transitionsGap = crossing > 0 ? (crossing - crossingBound) / crossing : 0;
  return { placement: { devices, slotsPerDevice, physicalToLogical: matrices.map((m) => mapRowOf(m, devices)) }, stats };
}
