// The program on explicit problems (no weights): HiGHS's assignment is checked against every
// assignment enumerated here, the budget is never exceeded, and a budget below every choice is refused.
import { describe, expect, it } from 'vitest';
import { assignmentFigures, chooseExpertFormats, ExpertFormatError, type ExpertFormatProblem } from '../../compiler/mixed-precision/choose-expert-formats.js';
import { seededRandom } from '../support/seeded-random.js';

const CHOICES = [{ name: 'int2', bits: 2, scaleBits: 0.5 }, { name: 'int4', bits: 4, scaleBits: 0.5 }, { name: 'int8', bits: 8, scaleBits: 1 }];

/** Random importances (summing to 1 per layer), errors falling with bits, params from `params`. */
function randomProblem(seed: number, layers: number, experts: number, bits: number, params: (random: () => number) => number): ExpertFormatProblem {
  const random = seededRandom(seed);
  return {
    choices: CHOICES,
    bits,
    layers: Array.from({ length: layers }, (_, l) => {
      const raw = Array.from({ length: experts }, () => random() ** 3);
      const total = raw.reduce((a, b) => a + b, 0);
      return {
        layer: 2 * l + 1,
        importance: raw.map((r) => r / total),
        error: raw.map(() => [0.1 + 0.1 * random(), 0.005 + 0.01 * random(), 1e-5 + 5e-5 * random()]),
        params: raw.map(() => params(random)),
      };
    }),
  };
}

/** The least importance-weighted error over every assignment within the budget, by enumeration. */
function bestByEnumeration(problem: ExpertFormatProblem): { error: number; averageBits: number } {
  const experts = problem.layers.flatMap((l, i) => l.importance.map((_, e) => [i, e] as const));
  const C = problem.choices.length;
  let best = { error: Infinity, averageBits: 0 };
  for (let code = 0; code < C ** experts.length; code++) {
    const choice = problem.layers.map((l) => l.importance.map(() => 0));
    let rest = code;
    for (const [i, e] of experts) choice[i]![e] = rest % C, rest = Math.floor(rest / C);
    const figures = assignmentFigures(problem, choice);
    if (figures.averageBits <= problem.bits + 1e-12 && figures.error < best.error) best = figures;
  }
  return best;
}

describe('chooseExpertFormats', () => {
  it.each([
    [1, 3.0, 'equal'], [2, 3.5, 'equal'], [3, 4.0, 'equal'], [4, 5.0, 'equal'],
    [5, 3.0, 'uneven'], [6, 4.0, 'uneven'], [7, 6.5, 'uneven'],
  ] as const)('finds the best assignment within the budget (seed %i, %f bits, %s params)', async (seed, bits, sizes) => {
    const problem = randomProblem(seed, 2, 4, bits, sizes === 'equal' ? () => 4096 : (random) => 1024 * (1 + Math.floor(4 * random())));
    const solution = await chooseExpertFormats(problem, { timeLimit: 10 });
    const best = bestByEnumeration(problem);
    expect(solution.solver.status).toBe('optimal');
    expect(solution.averageBits).toBeLessThanOrEqual(bits);
    expect(Math.abs(solution.error - best.error) / best.error).toBeLessThan(1e-6);
    // The figures are the problem's own numbers for the returned assignment.
    const recomputed = assignmentFigures(problem, solution.layers.map((l) => l.choice));
    expect(recomputed).toEqual({ averageBits: solution.averageBits, scaleBits: solution.scaleBits, error: solution.error, layerError: solution.layerError });
    expect(solution.layers.map((l) => l.layer)).toEqual([1, 3]);
  });

  it('reports every uniform choice, flags those over the budget, and is never worse than the best that fits', async () => {
    const problem = randomProblem(8, 3, 16, 4, () => 8192);
    const solution = await chooseExpertFormats(problem, { timeLimit: 10 });
    expect(solution.uniform.map((u) => [u.choice, u.averageBits, u.fitsBudget])).toEqual([[0, 2, true], [1, 4, true], [2, 8, false]]);
    solution.uniform.forEach((u) => {
      const direct = problem.layers.reduce((s, l) => s + l.importance.reduce((t, w, e) => t + w * l.error[e]![u.choice]!, 0), 0) / problem.layers.length;
      expect(u.error).toBeCloseTo(direct, 15);
      expect(u.scaleBits).toBe(CHOICES[u.choice]!.scaleBits);
    });
    expect(solution.solver.start).toBe(1); // uniform int4: the least error that fits
    expect(solution.error).toBeLessThan(solution.uniform[1]!.error);
    expect(solution.averageBits).toBeLessThanOrEqual(4);
  });

  it('spends a budget exactly met by whole swaps without going over (one int8 pays for two int2)', async () => {
    // Two layers of 3 experts, one hot each: int8 + 2 x int2 = 12 bits = 3 x 4.
    const layer = (l: number) => ({ layer: l, importance: [0.96, 0.02, 0.02], error: [[0.15, 0.01, 1e-4], [0.15, 0.01, 1e-4], [0.15, 0.01, 1e-4]], params: [100, 100, 100] });
    const solution = await chooseExpertFormats({ choices: CHOICES, bits: 4, layers: [layer(0), layer(1)] }, { timeLimit: 10 });
    expect(solution.layers.map((l) => l.choice)).toEqual([[2, 0, 0], [2, 0, 0]]);
    expect(solution.averageBits).toBe(4);
  });

  it('refuses a budget below the fewest bits any choice takes, and malformed layers', async () => {
    const problem = randomProblem(9, 1, 4, 1.5, () => 64);
    await expect(chooseExpertFormats(problem, { timeLimit: 1 })).rejects.toThrow(ExpertFormatError);
    await expect(chooseExpertFormats(problem, { timeLimit: 1 })).rejects.toThrow(
      'mixed precision: a budget of 1.5 bits per expert weight is below the fewest any choice takes (int2: 2 bits); raise bits to at least 2 or add a smaller format to the choices');
    const short = { ...problem, bits: 4, layers: [{ ...problem.layers[0]!, error: problem.layers[0]!.error.slice(1) }] };
    await expect(chooseExpertFormats(short, { timeLimit: 1 })).rejects.toThrow('mixed precision: MoE layer 1 has 4 importances, 3 error rows and 4 param counts');
  });

  it('solves a model-sized problem (24 layers x 64 experts x 3 choices) within its time limit', async () => {
    const problem = randomProblem(10, 24, 64, 3.5, () => 3 * 2048 * 768);
    const began = performance.now();
    const solution = await chooseExpertFormats(problem, { timeLimit: 5 });
    expect((performance.now() - began) / 1000).toBeLessThan(5 + 2); // the limit, plus loading HiGHS and building the model
    expect(solution.averageBits).toBeLessThanOrEqual(3.5);
    expect(solution.error).toBeLessThan(Math.min(...solution.uniform.filter((u) => u.fitsBudget).map((u) => u.error)));
    expect(solution.solver.gap ?? 0).toBeLessThan(0.01);
  });
});
