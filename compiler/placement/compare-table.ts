// `moec place --compare` and bench/placement.ts: the methods side by side, and what the ILP gains
// over each of the others.
import type { MethodResult } from './place-experts.js';

/** Rows right-aligned in columns, the first row the header. */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n') + '\n';
}

const percent = (x: number): string => `${(100 * x).toFixed(1)}%`;
const change = (ilp: number, other: number): string => (other === 0 ? 'n/a' : `${ilp <= other ? '-' : '+'}${percent(Math.abs(ilp - other) / other)}`);

export function comparisonTable(results: readonly MethodResult[]): string {
  const rows = [['method', 'max load', 'mean load', 'max/mean', 'worst layer', 'cross-device transitions', 'solve time']];
  for (const { method, figures: f, seconds } of results) {
    const fraction = f.transitions > 0 ? ` (${percent(f.crossDeviceTransitions / f.transitions)})` : '';
    rows.push([method, f.maxLoad.toFixed(1), f.meanLoad.toFixed(1), f.maxOverMean.toFixed(4), f.worstLayerMaxOverMean.toFixed(4), `${f.crossDeviceTransitions.toFixed(0)}${fraction}`, `${seconds.toFixed(2)} s`]);
  }
  let text = alignColumns(rows);
  const ilp = results.find((r) => r.method === 'ilp');
  if (!ilp) return text;
  for (const other of results.filter((r) => r !== ilp)) {
    text += `ilp vs ${other.method}: max load ${change(ilp.figures.maxLoad, other.figures.maxLoad)} (max/mean ${other.figures.maxOverMean.toFixed(4)} -> ${ilp.figures.maxOverMean.toFixed(4)}), ` +
      `cross-device transitions ${change(ilp.figures.crossDeviceTransitions, other.figures.crossDeviceTransitions)}\n`;
  }
  const stats = ilp.ilp;
  if (stats) {
    text += `ilp: HiGHS within ${stats.timeLimit} s: ${stats.layersOptimal} of ${ilp.figures.perLayer.length} layers optimal, ${stats.layersTimeLimited} stopped at their time share; ` +
      `gap to the proven bounds: load ${percent(stats.loadGap)} (worst layer), cross-device transitions ${percent(stats.transitionsGap)} (each layer given the one before)\n`;
    if (stats.fellBackTo) text += `ilp: the programs' placement was worse than a baseline on one figure; using ${stats.fellBackTo}'s\n`;
  }
  return text;
}
