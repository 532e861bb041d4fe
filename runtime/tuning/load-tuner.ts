// Times a bundle's load-time candidates on the adapter, within a wall-clock budget, on one MoE
// block with random weights and inputs. First the GEMM tiles: each candidate compiled with the
// default crossover runs once on poisoned buffers and is compared with the default plan's output
// (a different one is discarded; one the adapter refuses is skipped), then timed; the fastest is
// re-timed against the default, interleaved, and kept only if faster beyond the noise. Then the
// crossover: each set with the chosen tiles and a lower decode bound b is compared, interleaved,
// with the chosen set at b + 1 tokens (its prefill path against the decode path); the first to
// win is kept, as `moec tune` decides it.
import type { GpuRuntime } from '../device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../moe-executor.js';
import type { MoeBlockPlan } from '../plan.js';
import type { CandidateParams } from './load-candidates.js';
import { sameTiles } from './load-candidates.js';
import { randomNormals, randomWeightSource } from './random-weights.js';
import { median, relativeDifference, relativeNoise, timeBlock, type BlockTimingOptions } from './time-block.js';
import type { DiscardedCandidate, LoadTuningOutcome, TimedCandidate } from './tune-store.js';

export interface TimedSet {
  id: string;
  params: CandidateParams;
  /** The timed layer's plan in this set. */
  plan: MoeBlockPlan;
}

export interface LoadTunerOptions {
  budgetMs: number;
  prefillTokens: number;
  /** Relative difference from the default's output above which a candidate is wrong. */
  tolerance: number;
  timing?: BlockTimingOptions;
  /** Rounds of the interleaved re-timing (default 3). */
  retimeRounds?: number;
}

const firstLine = (text: string): string => text.split('\n')[0]!.slice(0, 300);

export async function tuneLoadCandidates(rt: GpuRuntime, base: TimedSet, sets: readonly TimedSet[], options: LoadTunerOptions): Promise<LoadTuningOutcome> {
  const start = performance.now();
  const deadline = start + options.budgetMs;
  const crossovers = sets.filter((s) => s.params.decodeMaxTokens !== base.params.decodeMaxTokens);
  const tileSets = sets.filter((s) => s.params.decodeMaxTokens === base.params.decodeMaxTokens);
  // The tiles get most of the budget; what they leave goes to the crossover.
  const tileDeadline = start + options.budgetMs * (crossovers.length ? 0.6 : 1);
  const weights = randomWeightSource(7);
  const inputs = new Map<number, Float32Array>();
  const input = (tokens: number): Float32Array => {
    let x = inputs.get(tokens);
    if (!x) inputs.set(tokens, (x = randomNormals(tokens * base.plan.hidden, 1000 + tokens)));
    return x;
  };
  const measured: TimedCandidate[] = [];
  const discarded: DiscardedCandidate[] = [];
  const unmeasured: string[] = [];
  const live = new Set<MoeBlockExecutor>();
  const outcome = (chosen: TimedSet, extra: Partial<LoadTuningOutcome> = {}): LoadTuningOutcome => ({
    chosen: chosen.id, params: chosen.params, measured, discarded, unmeasured, budgetMs: options.budgetMs,
    elapsedMs: Math.round(performance.now() - start), outOfBudget: unmeasured.length > 0, ...extra,
  });

  /** An executor for `set` whose output at `tokens` matches `reference`, or undefined after discarding it with the reason. */
  const checked = async (set: TimedSet, tokens: number, reference: Float32Array): Promise<MoeBlockExecutor | undefined> => {
    let executor: MoeBlockExecutor;
    try {
      executor = await createMoeBlockExecutor(rt, set.plan, weights);
    } catch (e) {
      discarded.push({ id: set.id, params: set.params, reason: `skipped: the adapter refuses it: ${firstLine((e as Error).message)}` });
      return undefined;
    }
    live.add(executor);
    try {
      executor.poisonScratch(tokens);
      const error = relativeDifference(await executor.run(input(tokens), tokens), reference);
      if (error <= options.tolerance) return executor;
      const by = Number.isNaN(error) ? 'in elements that are NaN or were left unwritten' : `by ${error.toExponential(2)} (relative; tolerance ${options.tolerance})`;
      discarded.push({ id: set.id, params: set.params, reason: `wrong: its output differs from the default plan's ${by} at ${tokens} tokens` });
    } catch (e) {
      discarded.push({ id: set.id, params: set.params, reason: `skipped: failed on the adapter: ${firstLine((e as Error).message)}` });
    }
    release(executor);
    return undefined;
  };
  const release = (executor: MoeBlockExecutor | undefined): void => {
    if (executor && live.delete(executor)) executor.destroy();
  };
  /** Rounds of a then b; b wins if its median is below a's by more than the noise (at least 3%). */
  const retime = async (a: MoeBlockExecutor, b: MoeBlockExecutor, tokens: number) => {
    const as: number[] = [];
    const bs: number[] = [];
    for (let i = 0; i < (options.retimeRounds ?? 3); i++) {
      as.push(...(await timeBlock(rt, a, input(tokens), tokens, { samples: 3, ...options.timing })));
      bs.push(...(await timeBlock(rt, b, input(tokens), tokens, { samples: 3, ...options.timing })));
    }
    const noise = Math.max(0.03, relativeNoise(as), relativeNoise(bs));
    return { aMs: median(as), bMs: median(bs), noise, bWins: median(bs) < median(as) * (1 - noise) };
  };

  try {
    const tokens = Math.min(options.prefillTokens, base.plan.maxTokens);
    // The default is the reference every candidate is checked against; it runs whatever the budget.
    const baseExecutor = await createMoeBlockExecutor(rt, base.plan, weights);
    live.add(baseExecutor);
    const reference = await baseExecutor.run(input(tokens), tokens);
    const baseMs = median(await timeBlock(rt, baseExecutor, input(tokens), tokens, options.timing));
    measured.push({ id: base.id, params: base.params, ms: baseMs, tokens });
    // What one candidate costs (pipelines, weights, a check, timing): the longest seen, first the default's.
    let cost = performance.now() - start;
    const fits = (by: number): boolean => performance.now() + cost <= by;
    const costed = async <T>(work: () => Promise<T>): Promise<T> => {
      const began = performance.now();
      try {
        return await work();
      } finally {
        cost = Math.max(cost, performance.now() - began);
      }
    };

    let best: { set: TimedSet; executor: MoeBlockExecutor; ms: number } | undefined;
    for (const set of tileSets) {
      if (!fits(tileDeadline)) {
        unmeasured.push(set.id);
        continue;
      }
      const timed = await costed(async () => {
        const executor = await checked(set, tokens, reference);
        return executor && { executor, ms: median(await timeBlock(rt, executor, input(tokens), tokens, options.timing)) };
      });
      if (!timed) continue;
      const { executor, ms } = timed;
      measured.push({ id: set.id, params: set.params, ms, tokens });
      if (ms < (best?.ms ?? baseMs)) {
        release(best?.executor);
        best = { set, executor, ms };
      } else release(executor);
    }
    let chosen = base;
    let chosenExecutor = baseExecutor;
    const extra: Partial<LoadTuningOutcome> = { defaultMs: baseMs, chosenMs: baseMs };
    if (best) {
      const r = await retime(baseExecutor, best.executor, tokens);
      Object.assign(extra, { defaultMs: r.aMs, chosenMs: r.bWins ? r.bMs : r.aMs, noise: r.noise });
      if (r.bWins) [chosen, chosenExecutor] = [best.set, best.executor];
    }

    // The crossover, with the chosen tiles: lowest bound first.
    const bounds = crossovers.filter((s) => sameTiles(s.params, chosen.params) && s.params.decodeMaxTokens < chosen.params.decodeMaxTokens)
      .sort((a, b) => a.params.decodeMaxTokens - b.params.decodeMaxTokens);
    for (const [i, set] of bounds.entries()) {
      if (!fits(deadline)) {
        unmeasured.push(...bounds.slice(i).map((s) => s.id));
        break;
      }
      const at = set.params.decodeMaxTokens + 1;
      const executor = await checked(set, at, await chosenExecutor.run(input(at), at));
      if (!executor) continue;
      const r = await retime(chosenExecutor, executor, at);
      measured.push({ id: chosen.id, params: chosen.params, ms: r.aMs, tokens: at }, { id: set.id, params: set.params, ms: r.bMs, tokens: at });
      if (r.bWins) {
        chosen = set;
        break;
      }
      release(executor);
    }
    // Sets with other tiles and another bound were never in the running: not "unmeasured".
    return outcome(chosen, extra);
  } finally {
    for (const executor of live) executor.destroy();
  }
}
