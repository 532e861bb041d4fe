// One MoE layer's placement as a mixed-integer program for HiGHS. Variables x_e_d: replicas of
// expert e on device d (0..min(r_e, S)); every expert gets its r_e replicas, every device exactly
// S of them. Two objectives, solved one after the other:
//   balance:  minimise L subject to load_d = sum_e (c_e / r_e) x_e_d <= L on every device
//   locality: minimise sum_e,d cost_e_d x_e_d (transitions from the previous layer that cross
//             devices) subject to load_d <= cap
// A start (a known feasible placement) is handed to HiGHS, so a time limit still returns at least it.
import type { Highs, ModelData } from 'highs';
import { deviceLoads } from './placement-figures.js';
import type { ReplicaMatrix } from './placement.js';

export interface LayerProgram {
  counts: readonly number[];
  /** r_e, fixed before the program (as EPLB chooses them). */
  replicas: readonly number[];
  devices: number;
  slotsPerDevice: number;
}

export type LayerObjective =
  | { kind: 'balance'; /** An expert pinned to device 0: devices are interchangeable, so one solution of each symmetric family is enough. */ pinned: number }
  | { kind: 'locality'; /** cost[e][d]: crossing transitions per replica of e on d. */ cost: readonly (readonly number[])[]; loadCap: number };

export interface LayerSolution {
  matrix: ReplicaMatrix;
  /** HiGHS's model status, e.g. `optimal`, `timeLimit`, or why the start was kept (`no time left`). */
  status: string;
  /** HiGHS's relative MIP gap of the solution returned; undefined when HiGHS gave none. */
  gap: number | undefined;
  /** HiGHS's proven lower bound on the objective; undefined when it gave none. */
  bound: number | undefined;
}

/** Loads within this fraction of the proven bound count as balanced: a trace's counts are noisier than that. */
export const BALANCE_TOLERANCE = 1e-3;

/** Column e * N + d is x_e_d; the balance program's last column is L. */
const column = (e: number, d: number, devices: number): number => e * devices + d;

/** The program as HiGHS's sparse model (rows in CSR): replica rows, slot rows, load rows. */
export function layerModelData(highs: Highs, program: LayerProgram, objective: LayerObjective): ModelData {
  const { counts, replicas, devices, slotsPerDevice } = program;
  const E = counts.length;
  const balance = objective.kind === 'balance';
  const numCols = E * devices + (balance ? 1 : 0);
  const starts = [0];
  const indices: number[] = [];
  const values: number[] = [];
  const rowLower: number[] = [];
  const rowUpper: number[] = [];
  const addRow = (entries: [number, number][], lower: number, upper: number): void => {
    for (const [c, v] of entries) indices.push(c), values.push(v);
    starts.push(indices.length), rowLower.push(lower), rowUpper.push(upper);
  };
  const experts = Array.from({ length: E }, (_, e) => e);
  const deviceList = Array.from({ length: devices }, (_, d) => d);
  for (const e of experts) addRow(deviceList.map((d) => [column(e, d, devices), 1]), replicas[e]!, replicas[e]!);
  for (const d of deviceList) addRow(experts.map((e) => [column(e, d, devices), 1]), slotsPerDevice, slotsPerDevice);
  for (const d of deviceList) {
    const load = experts.map((e): [number, number] => [column(e, d, devices), counts[e]! / replicas[e]!]);
    if (balance) addRow([...load, [E * devices, -1]], -highs.infinity, 0);
    else addRow(load, -highs.infinity, objective.loadCap);
  }
  const colCost = new Array<number>(numCols).fill(0);
  const colLower = new Array<number>(numCols).fill(0);
  const colUpper = new Array<number>(numCols).fill(0);
  for (const e of experts) {
    for (const d of deviceList) {
      colUpper[column(e, d, devices)] = Math.min(replicas[e]!, slotsPerDevice);
      if (!balance) colCost[column(e, d, devices)] = objective.cost[e]![d]!;
    }
  }
  if (balance) {
    colCost[E * devices] = 1;
    colLower[E * devices] = balanceLowerBound(program);
    colUpper[E * devices] = highs.infinity;
    colLower[column(objective.pinned, 0, devices)] = 1;
  }
  const integrality = colCost.map((_, c) => (balance && c === E * devices ? highs.constants.variableType.continuous : highs.constants.variableType.integer));
  return {
    numCols, numRows: rowLower.length, sense: highs.constants.objectiveSense.minimize, colCost, colLower, colUpper, rowLower, rowUpper,
    matrix: { format: 'csr', numRows: rowLower.length, numCols, starts, indices, values }, integrality,
  };
}

/**
 * A bound on the busiest device the LP relaxation does not see: the mean load, and the device
 * holding the heaviest replica, which also holds S - 1 others, at least the lightest ones.
 */
export function balanceLowerBound({ counts, replicas, devices, slotsPerDevice }: LayerProgram): number {
  const perReplica = counts.flatMap((c, e) => new Array<number>(replicas[e]!).fill(c / replicas[e]!)).sort((a, b) => a - b);
  const heaviestDevice = perReplica.at(-1)! + perReplica.slice(0, slotsPerDevice - 1).reduce((a, b) => a + b, 0);
  return Math.max(counts.reduce((a, b) => a + b, 0) / devices, heaviestDevice);
}

/** Every expert has its replicas, every device its slots, and (for locality) no load above the cap. */
export function fitsProgram(matrix: ReplicaMatrix, program: LayerProgram, loadCap = Infinity): boolean {
  const { replicas, devices, slotsPerDevice, counts } = program;
  if (matrix.some((perDevice, e) => perDevice.some((n) => !Number.isInteger(n) || n < 0) || perDevice.reduce((a, b) => a + b, 0) !== replicas[e])) return false;
  for (let d = 0; d < devices; d++) if (matrix.reduce((sum, perDevice) => sum + perDevice[d]!, 0) !== slotsPerDevice) return false;
  return Math.max(...deviceLoads(counts, matrix)) <= loadCap * (1 + 1e-9) + 1e-9;
}

/** The busiest device's load (balance) or the crossing transitions (locality). */
function objectiveOf(matrix: ReplicaMatrix, program: LayerProgram, objective: LayerObjective): number {
  if (objective.kind === 'balance') return Math.max(...deviceLoads(program.counts, matrix));
  return matrix.reduce((sum, perDevice, e) => sum + perDevice.reduce((s, n, d) => s + n * objective.cost[e]![d]!, 0), 0);
}

const statusNames = (highs: Highs): Map<number, string> => new Map(Object.entries(highs.constants.modelStatus).map(([name, code]) => [code as number, name]));

/** Solves within timeLimit seconds from `start` (which must fit); returns the start when HiGHS finds nothing that fits. */
export function solveLayerProgram(highs: Highs, program: LayerProgram, objective: LayerObjective, start: ReplicaMatrix, timeLimit: number): LayerSolution {
  const keepStart = (status: string): LayerSolution => ({ matrix: start, status, gap: undefined, bound: undefined });
  if (timeLimit < 0.02) return keepStart('no time left');
  const model = highs.createModel(layerModelData(highs, program, objective));
  try {
    const relativeGap = objective.kind === 'balance' ? BALANCE_TOLERANCE : 1e-4;
    model.options.set({ output_flag: false, time_limit: timeLimit, mip_rel_gap: relativeGap, random_seed: 1 });
    const { devices } = program;
    const startValues = new Float64Array(model.getDimensions().numCols);
    start.forEach((perDevice, e) => perDevice.forEach((n, d) => (startValues[column(e, d, devices)] = n)));
    if (objective.kind === 'balance') startValues[start.length * devices] = Math.max(...deviceLoads(program.counts, start));
    model.setSolution({ colValue: startValues });
    const status = statusNames(highs).get(model.run().modelStatus) ?? 'unknown';
    if (Number(model.info.get('primal_solution_status')) !== 2) return keepStart(status); // 2: a feasible solution exists
    const values = model.getSolution().colValue;
    const matrix = start.map((perDevice, e) => perDevice.map((_, d) => Math.round(values[column(e, d, devices)]!)));
    const cap = objective.kind === 'locality' ? objective.loadCap : Infinity;
    if (!fitsProgram(matrix, program, cap)) return keepStart(`${status}, solution did not fit`);
    if (objectiveOf(matrix, program, objective) > objectiveOf(start, program, objective)) return keepStart(`${status}, worse than the start`);
    const finite = (name: string): number | undefined => (Number.isFinite(Number(model.info.get(name))) ? Number(model.info.get(name)) : undefined);
    return { matrix, status, gap: finite('mip_gap'), bound: finite('mip_dual_bound') };
  } catch (e) {
    return keepStart(`error: ${(e as Error).message}`);
  } finally {
    model.dispose();
  }
}
