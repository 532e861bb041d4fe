// Which storage format each routed expert gets (MC-MoE's mixed precision), as a binary program
// solved by HiGHS. x[l][e][c] = 1 when expert e of MoE layer l is stored in choice c:
//   each expert exactly one choice:   sum_c x[l][e][c] = 1
//   the bit budget:                   sum params[l][e] * bits[c] * x[l][e][c] <= bits * sum params[l][e]
//   minimise                          sum importance[l][e] * error[l][e][c] * x[l][e][c]
// `bits[c]` is the choice's nominal code width (int2: 2, int4: 4, f16: 16); scales are left out
// of the budget and reported beside it. The best uniform choice that fits is handed to HiGHS as a
// start, so a time limit still returns at least it.
import type { Highs, ModelData } from 'highs';

/** One format an expert may be stored in, as the program sees it. */
export interface FormatChoiceCost {
  /** For reports: `int4`, or `int4(group = 32)` where two choices share a format. */
  name: string;
  /** Code bits per weight counted against the budget. */
  bits: number;
  /** Scale bits per weight (scale width / group), reported beside the budget; 0 for float formats. */
  scaleBits?: number;
}

/** One MoE layer of the program. */
export interface ExpertFormatLayer {
  /** The model layer index, carried to the solution. */
  layer: number;
  /** importance[e]: the share of the layer's routed tokens that chose expert e (sums to 1). */
  importance: readonly number[];
  /** error[e][c]: expert e's relative squared weight error in choice c. */
  error: readonly (readonly number[])[];
  /** params[e]: expert e's weight count. */
  params: readonly number[];
}

export interface ExpertFormatProblem {
  choices: readonly FormatChoiceCost[];
  layers: readonly ExpertFormatLayer[];
  /** The budget: average code bits per expert weight, over all MoE layers together. */
  bits: number;
}

export interface ExpertFormatOptions {
  /** Seconds HiGHS may take; the best solution found by then is returned. */
  timeLimit: number;
  /** A loaded HiGHS to reuse (loading the Wasm takes a moment); loaded here when left out. */
  highs?: Highs;
}

/** The figures of one assignment: every expert of every layer. */
export interface AssignmentFigures {
  /** Code bits per weight, averaged over all expert weights (params-weighted). */
  averageBits: number;
  /** Scale bits per weight on top of averageBits (not in the budget). */
  scaleBits: number;
  /** The mean over MoE layers of sum_e importance[e] * error[e][choice]: the relative error a routed token meets. */
  error: number;
  /** That sum per MoE layer. */
  layerError: number[];
}

export interface UniformFigures extends AssignmentFigures {
  /** Every expert in this choice. */
  choice: number;
  fitsBudget: boolean;
}

export interface SolverFigures {
  /** HiGHS's model status (`optimal`, `timeLimit`, ...), or why the start was kept. */
  status: string;
  /** HiGHS's relative MIP gap of the returned solution; undefined when it gave none. */
  gap: number | undefined;
  seconds: number;
  timeLimit: number;
  /** The uniform choice handed to HiGHS as its start. */
  start: number;
}

export interface ExpertFormatSolution extends AssignmentFigures {
  /** Per MoE layer, in problem order: choice[e] indexes the problem's choices. */
  layers: { layer: number; choice: number[] }[];
  budgetBits: number;
  /** Every choice applied to all experts, for comparison; fitsBudget says which the program could have picked. */
  uniform: UniformFigures[];
  solver: SolverFigures;
}

/** A problem that cannot be solved: bad numbers or a budget no assignment meets. */
export class ExpertFormatError extends Error {
  override readonly name = 'ExpertFormatError';
}

/** Experts no token chose still prefer the smaller error when the budget leaves bits over. */
const TIE_BREAK = 1e-9;

const fail = (message: string): never => {
  throw new ExpertFormatError(`mixed precision: ${message}`);
};

/** Throws unless the choices have positive bits and the budget is at least the fewest of them. */
export function checkBudget(choices: readonly FormatChoiceCost[], bits: number): void {
  if (choices.length === 0) fail('no format choices');
  choices.forEach((c) => {
    if (!(c.bits > 0) || !Number.isFinite(c.bits)) fail(`choice ${c.name} has ${c.bits} bits, expected a positive number`);
  });
  if (!(bits > 0) || !Number.isFinite(bits)) fail(`the budget is ${bits} bits per weight, expected a positive number`);
  const fewest = choices.reduce((a, b) => (b.bits < a.bits ? b : a));
  if (bits < fewest.bits) {
    fail(`a budget of ${bits} bits per expert weight is below the fewest any choice takes (${fewest.name}: ${fewest.bits} bits); ` +
      `raise bits to at least ${fewest.bits} or add a smaller format to the choices`);
  }
}

function checkProblem({ choices, layers, bits }: ExpertFormatProblem): void {
  checkBudget(choices, bits);
  if (layers.length === 0) fail('no MoE layers');
  for (const l of layers) {
    const at = `MoE layer ${l.layer}`;
    const E = l.importance.length;
    if (E === 0) fail(`${at} has no experts`);
    if (l.error.length !== E || l.params.length !== E) fail(`${at} has ${E} importances, ${l.error.length} error rows and ${l.params.length} param counts; expected one each per expert`);
    l.importance.forEach((v, e) => (Number.isFinite(v) && v >= 0) || fail(`${at} expert ${e} has importance ${v}, expected a number >= 0`));
    l.params.forEach((v, e) => (Number.isFinite(v) && v > 0) || fail(`${at} expert ${e} has ${v} params, expected a positive number`));
    l.error.forEach((row, e) => {
      if (row.length !== choices.length) fail(`${at} expert ${e} has ${row.length} errors, expected ${choices.length} (one per choice)`);
      row.forEach((v, c) => (Number.isFinite(v) && v >= 0) || fail(`${at} expert ${e} has error ${v} for ${choices[c]!.name}, expected a number >= 0`));
    });
  }
}

/** Averages and errors of an assignment (choice[l][e]), computed from the problem directly. */
export function assignmentFigures(problem: ExpertFormatProblem, choice: readonly (readonly number[])[]): AssignmentFigures {
  let params = 0;
  let codeBits = 0;
  let scaleBits = 0;
  const layerError = problem.layers.map((l, i) =>
    l.importance.reduce((sum, importance, e) => {
      const c = choice[i]![e]!;
      params += l.params[e]!;
      codeBits += l.params[e]! * problem.choices[c]!.bits;
      scaleBits += l.params[e]! * (problem.choices[c]!.scaleBits ?? 0);
      return sum + importance * l.error[e]![c]!;
    }, 0));
  return { averageBits: codeBits / params, scaleBits: scaleBits / params, error: layerError.reduce((a, b) => a + b, 0) / layerError.length, layerError };
}

const uniformAssignment = (problem: ExpertFormatProblem, c: number): number[][] => problem.layers.map((l) => l.importance.map(() => c));

/**
 * HiGHS, loaded on use (its Wasm would slow every other command's start). Node loads highs.mjs,
 * whose default export is the loader; the package's CommonJS-style typings say `.default.default`.
 */
async function loadHighs(): Promise<Highs> {
  const { default: load } = (await import('highs')) as unknown as { default: () => Promise<Highs> };
  return load();
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * The budget row in whole numbers where the params allow: params divided by their common
 * divisor, the right-hand side rounded down, so HiGHS's feasibility tolerance cannot let a
 * solution exceed the budget.
 */
function budgetRow(problem: ExpertFormatProblem): { weight: (l: number, e: number, c: number) => number; limit: number } {
  const all = problem.layers.flatMap((l) => l.params);
  const whole = all.every(Number.isSafeInteger) && problem.choices.every((c) => Number.isInteger(c.bits));
  const unit = whole ? all.reduce(gcd) : all.reduce((a, b) => a + b, 0) / all.length;
  const limit = (problem.bits * all.reduce((a, b) => a + b, 0)) / unit;
  return {
    weight: (l, e, c) => (problem.layers[l]!.params[e]! / unit) * problem.choices[c]!.bits,
    limit: whole ? Math.floor(limit * (1 + 1e-12)) : limit,
  };
}

function modelData(highs: Highs, problem: ExpertFormatProblem, scale: number): { data: ModelData; column: (l: number, e: number, c: number) => number } {
  const C = problem.choices.length;
  const offsets = problem.layers.reduce<number[]>((o, l, i) => [...o, o[i]! + l.importance.length * C], [0]);
  const column = (l: number, e: number, c: number): number => offsets[l]! + e * C + c;
  const numCols = offsets.at(-1)!;
  const colCost = new Array<number>(numCols);
  const budget = budgetRow(problem);
  const starts = [0];
  const indices: number[] = [];
  const values: number[] = [];
  const rowLower: number[] = [];
  const rowUpper: number[] = [];
  const budgetEntries: [number, number][] = [];
  problem.layers.forEach((layer, l) => {
    layer.importance.forEach((importance, e) => {
      for (let c = 0; c < C; c++) {
        indices.push(column(l, e, c)), values.push(1);
        colCost[column(l, e, c)] = ((importance + TIE_BREAK) * layer.error[e]![c]!) / scale;
        budgetEntries.push([column(l, e, c), budget.weight(l, e, c)]);
      }
      starts.push(indices.length), rowLower.push(1), rowUpper.push(1);
    });
  });
  for (const [c, v] of budgetEntries) indices.push(c), values.push(v);
  starts.push(indices.length), rowLower.push(-highs.infinity), rowUpper.push(budget.limit);
  const data: ModelData = {
    numCols, numRows: rowLower.length, sense: highs.constants.objectiveSense.minimize, colCost,
    colLower: new Array<number>(numCols).fill(0), colUpper: new Array<number>(numCols).fill(1), rowLower, rowUpper,
    matrix: { format: 'csr', numRows: rowLower.length, numCols, starts, indices, values },
    integrality: new Array(numCols).fill(highs.constants.variableType.integer),
  };
  return { data, column };
}

const statusNames = (highs: Highs): Map<number, string> => new Map(Object.entries(highs.constants.modelStatus).map(([name, code]) => [code as number, name]));

/** Chooses each expert's format within the budget; throws ExpertFormatError for a bad problem or a budget below every choice. */
export async function chooseExpertFormats(problem: ExpertFormatProblem, options: ExpertFormatOptions): Promise<ExpertFormatSolution> {
  checkProblem(problem);
  const began = performance.now();
  const uniform = problem.choices.map((c, i): UniformFigures => ({ choice: i, fitsBudget: c.bits <= problem.bits, ...assignmentFigures(problem, uniformAssignment(problem, i)) }));
  const start = uniform.filter((u) => u.fitsBudget).reduce((best, u) => (u.error < best.error || (u.error === best.error && u.averageBits < best.averageBits) ? u : best));
  const startChoice = uniformAssignment(problem, start.choice);
  const finish = (choice: number[][], status: string, gap: number | undefined): ExpertFormatSolution => ({
    layers: problem.layers.map((l, i) => ({ layer: l.layer, choice: choice[i]! })),
    budgetBits: problem.bits,
    uniform,
    solver: { status, gap, seconds: (performance.now() - began) / 1000, timeLimit: options.timeLimit, start: start.choice },
    ...assignmentFigures(problem, choice),
  });
  if (start.error === 0) return finish(startChoice, 'the start has no error', 0);

  const highs = options.highs ?? (await loadHighs());
  const { data, column } = modelData(highs, problem, start.error * problem.layers.length);
  const model = highs.createModel(data);
  try {
    model.options.set({ output_flag: false, time_limit: Math.max(0.01, options.timeLimit - (performance.now() - began) / 1000), mip_rel_gap: 1e-6, mip_abs_gap: 1e-9, random_seed: 1 });
    const startValues = new Float64Array(data.numCols);
    problem.layers.forEach((l, i) => l.importance.forEach((_, e) => (startValues[column(i, e, start.choice)] = 1)));
    model.setSolution({ colValue: startValues });
    const status = statusNames(highs).get(model.run().modelStatus) ?? 'unknown';
    if (Number(model.info.get('primal_solution_status')) !== 2) return finish(startChoice, `${status}, no solution: kept the start`, undefined); // 2: feasible
    const x = model.getSolution().colValue;
    const choice = problem.layers.map((l, i) => l.importance.map((_, e) => {
      const values = problem.choices.map((_, c) => x[column(i, e, c)]!);
      return values.indexOf(Math.max(...values));
    }));
    const found = assignmentFigures(problem, choice);
    if (found.averageBits > problem.bits * (1 + 1e-12)) return finish(startChoice, `${status}, solution over the budget: kept the start`, undefined);
    if (found.error > start.error) return finish(startChoice, `${status}, solution worse than the start: kept the start`, undefined);
    const gap = Number(model.info.get('mip_gap'));
    return finish(choice, status, Number.isFinite(gap) ? gap : undefined);
  } catch (e) {
    return finish(startChoice, `HiGHS failed (${(e as Error).message}): kept the start`, undefined);
  } finally {
    model.dispose();
  }
}
