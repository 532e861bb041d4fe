// The mixed-precision part of `moec compile`'s report: which format each routed expert got, the
// bits spent against the budget, and the predicted error against every uniform choice.
import { alignColumns } from '../placement/compare-table.js';
import type { ExpertFormatProblem, ExpertFormatSolution } from './choose-expert-formats.js';

const bitsText = (bits: number): string => bits.toFixed(2);
const errorText = (error: number): string => error.toExponential(2);
const percent = (x: number): string => `${(100 * x).toFixed(2)}%`;

/** Choices by bits, most first (the order the compact lines list them in). */
const byBitsDescending = (problem: ExpertFormatProblem): number[] =>
  problem.choices.map((_, c) => c).sort((a, b) => problem.choices[b]!.bits - problem.choices[a]!.bits || a - b);

/**
 * One layer in a line, the choices by bits, most first: `L3: int8 ×2 [3, 5], int4 ×4, int2 ×2 [0, 7]`.
 * Every choice names its experts but the most common one, which holds the rest.
 */
export function compactLayerLine(problem: ExpertFormatProblem, layer: number, choice: readonly number[]): string {
  const experts = problem.choices.map((_, c) => choice.flatMap((chosen, e) => (chosen === c ? [e] : [])));
  const rest = experts.reduce((most, list, c) => (list.length > experts[most]!.length ? c : most), 0);
  const parts = byBitsDescending(problem)
    .filter((c) => experts[c]!.length > 0)
    .map((c) => `${problem.choices[c]!.name} ×${experts[c]!.length}${c === rest ? '' : ` [${experts[c]!.join(', ')}]`}`);
  return `L${layer}: ${parts.join(', ')}`;
}

function solverLine({ solver }: ExpertFormatSolution): string {
  const gap = solver.gap === undefined ? 'no gap reported' : `gap ${percent(solver.gap)}`;
  return `HiGHS: ${solver.status} in ${solver.seconds.toFixed(2)} s (time limit ${solver.timeLimit} s, ${gap})`;
}

/** Per MoE layer: experts per choice, bits and the importance-weighted error; then the whole model. */
function layerTable(problem: ExpertFormatProblem, solution: ExpertFormatSolution): string {
  const order = byBitsDescending(problem);
  const rows = [['layer', ...order.map((c) => problem.choices[c]!.name), 'code bits', '+ scales', 'weighted error']];
  const total = order.map(() => 0);
  solution.layers.forEach(({ layer, choice }, i) => {
    const counts = order.map((c) => choice.filter((chosen) => chosen === c).length);
    counts.forEach((n, k) => (total[k]! += n));
    const params = problem.layers[i]!.params;
    const weighted = (of: (c: number) => number): number => choice.reduce((s, c, e) => s + params[e]! * of(c), 0) / params.reduce((a, b) => a + b, 0);
    rows.push([`L${layer}`, ...counts.map(String), bitsText(weighted((c) => problem.choices[c]!.bits)), bitsText(weighted((c) => problem.choices[c]!.scaleBits ?? 0)), errorText(solution.layerError[i]!)]);
  });
  rows.push(['all', ...total.map(String), bitsText(solution.averageBits), bitsText(solution.scaleBits), errorText(solution.error)]);
  return alignColumns(rows);
}

/** The mixed assignment beside every uniform one. */
function comparisonTable(problem: ExpertFormatProblem, solution: ExpertFormatSolution): string {
  const rows = [['assignment', 'code bits', '+ scales', 'weighted error', 'error vs mixed']];
  rows.push(['mixed', bitsText(solution.averageBits), bitsText(solution.scaleBits), errorText(solution.error), '']);
  for (const c of byBitsDescending(problem)) {
    const u = solution.uniform[c]!;
    const versus = !u.fitsBudget ? 'over budget' : solution.error > 0 ? `${(u.error / solution.error).toFixed(2)}x` : '';
    rows.push([`uniform ${problem.choices[c]!.name}`, bitsText(u.averageBits), bitsText(u.scaleBits), errorText(u.error), versus]);
  }
  return alignColumns(rows);
}

/** The report text: a heading, the per-layer table, a line per layer naming each expert's format, the comparison. */
export function mixedPrecisionReport(problem: ExpertFormatProblem, solution: ExpertFormatSolution): string {
  const experts = problem.layers.reduce((n, l) => n + l.importance.length, 0);
  const heading = `mixed precision for routed experts: ${experts} experts in ${problem.layers.length} MoE layers, ` +
    `budget ${solution.budgetBits} code bits per weight (scales not counted), used ${bitsText(solution.averageBits)}\n` +
    'weighted error: sum over a layer\'s experts of (share of its tokens) x (relative squared weight error), mean over layers\n';
  const lines = solution.layers.map(({ layer, choice }) => compactLayerLine(problem, layer, choice)).join('\n');
  const text = `${heading}${solverLine(solution)}\n\n${layerTable(problem, solution)}\n${lines}\n\n${comparisonTable(problem, solution)}`;
  return text.replace(/ +$/gm, ''); // an empty last cell leaves padding
}
