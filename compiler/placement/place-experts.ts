// Runs the placement methods a caller asks for and measures each on the trace. The ILP is seeded
// with both baselines and must come out no worse than either on load and on crossing transitions;
// if it somehow does not, the baseline that is no worse than the other on both replaces it.
import { greedyEplbPlacement } from './greedy-eplb.js';
import { ilpPlacement, type IlpStats } from './ilp-placement.js';
import { placementFigures, type PlacementFigures } from './placement-figures.js';
import { checkPlacement, type Placement, type PlacementMethod, type PlacementProblem } from './placement.js';
import { roundRobinPlacement } from './round-robin.js';

export interface MethodResult {
  method: PlacementMethod;
  placement: Placement;
  figures: PlacementFigures;
  seconds: number;
  ilp?: IlpStats & { fellBackTo?: PlacementMethod };
}

/** a is no worse than b on the busiest device (every layer) and on crossing transitions. */
export function noWorse(a: PlacementFigures, b: PlacementFigures): boolean {
  const slack = (x: number): number => x * 1e-9 + 1e-9; // float sums in a different order
  return a.perLayer.every((f, l) => f.maxLoad <= b.perLayer[l]!.maxLoad + slack(f.maxLoad)) && a.crossDeviceTransitions <= b.crossDeviceTransitions + slack(b.crossDeviceTransitions);
}

function timed(method: PlacementMethod, problem: PlacementProblem, place: () => Placement): MethodResult {
  const started = performance.now();
  const placement = place();
  const seconds = (performance.now() - started) / 1000;
  return { method, placement, seconds, figures: placementFigures(problem.trace, placement) };
}

/** Results in the order round-robin, greedy, ilp, for the methods asked for (the ILP needs both others). */
export async function placeExperts(problem: PlacementProblem, methods: readonly PlacementMethod[], options: { timeLimit: number }): Promise<MethodResult[]> {
  const results: MethodResult[] = [];
  const wants = (m: PlacementMethod): boolean => methods.includes(m) || methods.includes('ilp');
  const roundRobin = wants('round-robin') ? timed('round-robin', problem, () => roundRobinPlacement(problem)) : undefined;
  const greedy = wants('greedy') ? timed('greedy', problem, () => greedyEplbPlacement(problem)) : undefined;
  if (roundRobin) results.push(roundRobin);
  if (greedy) results.push(greedy);
  if (methods.includes('ilp') && roundRobin && greedy) {
    const started = performance.now();
    const { placement, stats } = await ilpPlacement(problem, { greedy: greedy.placement, roundRobin: roundRobin.placement }, options);
    const seconds = (performance.now() - started) / 1000;
    let ilp: MethodResult = { method: 'ilp', placement, seconds, figures: placementFigures(problem.trace, placement), ilp: stats };
    if (!noWorse(ilp.figures, greedy.figures) || !noWorse(ilp.figures, roundRobin.figures)) {
      const fallback = [greedy, roundRobin].find((b) => [greedy, roundRobin].every((other) => noWorse(b.figures, other.figures)));
      if (fallback) ilp = { ...fallback, method: 'ilp', seconds, ilp: { ...stats, fellBackTo: fallback.method } };
    }
    results.push(ilp);
  }
  for (const r of results) checkPlacement(r.placement, problem.experts, problem.trace.layers.length);
  return results;
}
