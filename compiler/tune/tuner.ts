// `moec tune`'s search: for each family of one MoE block and each token bucket (the grouped GEMM
// tiles above 8 tokens, the fused decode kernels' rows per workgroup at 8 and below, then the
// decode/prefill crossover), the candidates are compiled into the block's plan, checked on seeded random data against the CPU interpreter (a
// wrong one is reported and never kept; one the adapter refuses is skipped with the reason), and
// timed; the fastest is re-timed against the default, interleaved, and kept only if it wins beyond
// the noise. Every result goes into the tuning file as it comes (a rerun resumes); the budget is
// shared out among the tasks left, and a task cut short keeps its best so far (done: false).
import type { GemmTile } from '../../ir/ops-lowered.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import type { TargetDescription } from '../../ir/target.js';
import type { GpuRuntime } from '../../runtime/device.js';
import type { MoeBlockExecutor } from '../../runtime/moe-executor.js';
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { adapterIdentity, type AdapterIdentity } from '../../runtime/tuning/adapter-identity.js';
import { adapterSection, putEntry, type MeasuredCandidate, type RefusedCandidate, type TunedParams, type TuningEntry, type TuningFile } from '../../runtime/tuning/tuning-file.js';
import { planTarget, type PlanOptions } from '../moe-block-plan.js';
import { BlockBench, FAMILY_KERNELS, familyPath, median, relativeNoise, withRepeatedSteps, type TimingOptions } from './block-bench.js';
import { blockDims, familyShapes, type FamilyShape } from './family-shapes.js';
import { crossoverBuckets, decodeRowsCandidates, gemmTileCandidates, gemmTileOfParams, gemmTileParams, GEMV_MAX_ROWS, type DecodeRowsProblem } from './search-space.js';
import type { TunedFamily } from './template-hash.js';

export interface TuneOptions {
  /** Token buckets (default 1, 8, 64, 512). */
  tokens?: readonly number[];
  budgetMs: number;
  /** The MoE layer whose block is tuned (default the first). */
  layer?: number;
  plan?: PlanOptions;
  /** The tuning file to resume from and to update; `save` is called after every candidate. */
  file: TuningFile;
  save(file: TuningFile): void;
  /** Instead of the search space's candidates (tests): GEMM tiles, or the decode kernels' rows per workgroup. */
  candidates?: { 'grouped_gemm.gate_up'?: GemmTile[]; 'grouped_gemm.down'?: GemmTile[]; 'decode.rows'?: number[] };
  /** Most candidates per task (default 24). */
  maxCandidates?: number;
  /** How many extra times the family's dispatches run in a timed block (default 3). */
  repeat?: number;
  timing?: TimingOptions;
  /** Rounds of the interleaved re-timing of winner and default (default 3). */
  retimeRounds?: number;
  onEvent?(event: TuneEvent): void;
  /** Relative error above which a candidate is wrong (default 1e-4; 1e-2 with f16 activations). */
  tolerance?: number;
  /** Rewrites each candidate's compiled plan before it is checked and timed (hand-edited WGSL, instrumentation); `target` says which candidate. */
  rewritePlan?(plan: MoeBlockPlan, target: Partial<TargetDescription>): MoeBlockPlan;
}

export type TuneEvent =
  | { kind: 'start'; tasks: string[]; candidates: number; adapter: AdapterIdentity; clock: string }
  | { kind: 'candidate'; task: string; config: TunedParams; outcome: 'measured' | 'skipped' | 'wrong' | 'resumed'; ms?: number; reason?: string }
  | { kind: 'task'; task: string; entry: TuningEntry; cached: boolean }
  | { kind: 'budget'; task: string };

export interface TuneResult {
  adapter: AdapterIdentity;
  entries: TuningEntry[];
  /** Candidates refused this run or before: `family T=n tile: reason`. */
  refused: string[];
  /** Whether the budget cut a task short. */
  outOfBudget: boolean;
}

export const DEFAULT_TOKEN_BUCKETS = [1, 8, 64, 512];

const tileParams = gemmTileParams;
const paramsTile = gemmTileOfParams;
const sameParams = (a: TunedParams, b: TunedParams): boolean => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
export const paramsText = (p: TunedParams): string => Object.entries(p).map(([k, v]) => `${k}=${v}`).join(' ');

interface Task {
  name: string;
  family: TunedFamily;
  tokens: number;
  shape: FamilyShape;
  /** Candidates to measure (a GEMM task's list is made when it starts: down depends on gate/up's bm). */
  count: number;
}

export async function tuneMoeBlock(rt: GpuRuntime, config: ModelConfig, options: TuneOptions): Promise<TuneResult> {
  const start = performance.now();
  const layer = options.layer ?? moeLayerIndices(config)[0];
  if (layer === undefined) throw new Error(`${config.name}: no MoE layer to tune`);
  const planOptions = options.plan ?? {};
  const base = planTarget(planOptions);
  const bench = new BlockBench(rt, config, layer, planOptions);
  const defaultPlan = bench.plan({});
  const dims = blockDims(defaultPlan);
  const identity = adapterIdentity(rt.info, rt.adapter);
  const section = adapterSection(options.file, identity);
  const tolerance = options.tolerance ?? (config.compile.dtype === 'f16' ? 1e-2 : 1e-4);
  const repeat = options.repeat ?? 3;
  const tokens = [...new Set(options.tokens ?? DEFAULT_TOKEN_BUCKETS)].sort((a, b) => a - b);
  const shapes = new Map(familyShapes(defaultPlan).map((s) => [s.family, s]));
  const maxCandidates = options.maxCandidates ?? 24;
  const limits = identity.limits;
  const sonic = config.compile.tokenRounding.kind === 'sonic';
  // Sonic rounding pads experts to its own tile: the GEMMs' bm stays the default's.
  const fixedBm = sonic ? base.gemmTile.bm : undefined;

  const tasks: Task[] = [];
  for (const t of tokens.filter((n) => n > GEMV_MAX_ROWS)) {
    for (const family of ['grouped_gemm.gate_up', 'grouped_gemm.down'] as const) {
      const shape = shapes.get(family);
      if (!shape) continue;
      const count = options.candidates?.[family]?.length ?? gemmTileCandidates({ kdim: family === 'grouped_gemm.down' ? dims.intermediate : dims.hidden, ndim: family === 'grouped_gemm.down' ? dims.hidden : dims.intermediate, gateup: family === 'grouped_gemm.gate_up', rowsPerExpert: (t * dims.topK) / dims.experts, limits, ...(fixedBm ? { bm: fixedBm } : {}) }, base.gemmTile, maxCandidates).length;
      tasks.push({ name: `${family} T=${t}`, family, tokens: t, shape, count });
    }
  }
  // The fused decode kernels' rows at the buckets the decode path serves (one plan has one value: see apply-tuning.ts).
  const decodeShape = shapes.get('decode.rows');
  const decodeRowsProblem: DecodeRowsProblem = { widest: Math.max(dims.hidden, dims.intermediate, dims.sharedIntermediate), sharedGate: dims.sharedGate, limits };
  const decodeRowsList = options.candidates?.['decode.rows'] ?? decodeRowsCandidates(decodeRowsProblem, base.decodeRows).slice(0, Math.max(1, maxCandidates));
  for (const t of tokens.filter((n) => n <= Math.min(GEMV_MAX_ROWS, base.decodeMaxTokens))) {
    if (decodeShape) tasks.push({ name: `decode.rows T=${t}`, family: 'decode.rows', tokens: t, shape: decodeShape, count: decodeRowsList.length });
  }
  const crossover = crossoverBuckets(tokens);
  const crossShape = shapes.get('decode_max_tokens');
  if (crossover.length && crossShape) tasks.push({ name: `decode_max_tokens T<=${crossover.at(-1)}`, family: 'decode_max_tokens', tokens: crossover.at(-1)!, shape: crossShape, count: 2 * crossover.length });

  const existing = (task: Task): TuningEntry | undefined => section.entries.find((e) => e.family === task.family && e.shape === task.shape.shape && e.tokens === task.tokens && e.templateHash === task.shape.templateHash);
  const emit = (e: TuneEvent): void => options.onEvent?.(e);
  emit({ kind: 'start', tasks: tasks.map((t) => t.name), candidates: tasks.reduce((n, t) => n + t.count, 0), adapter: identity, clock: rt.features.has('timestamp-query') ? 'gpu timestamps' : 'wall clock' });

  const results: TuningEntry[] = [];
  const refused: string[] = [];
  let outOfBudget = false;
  const chosenGateUp = new Map<number, GemmTile>();

  const save = (entry: TuningEntry): void => {
    entry.updated = new Date().toISOString();
    putEntry(section, entry);
    options.save(options.file);
  };

  /** One candidate's executor (`family`'s dispatches repeated), or why it cannot run / is wrong (checked at `tokens` against the interpreter). */
  const prepare = async (target: Partial<TargetDescription>, tokensAt: number, family?: TunedFamily): Promise<{ executor: MoeBlockExecutor } | { refusal: string }> => {
    let plan;
    try {
      plan = bench.plan(target);
      if (options.rewritePlan) plan = options.rewritePlan(plan, target);
      if (family) plan = withRepeatedSteps(plan, FAMILY_KERNELS[family]!, repeat, familyPath(family));
    } catch (e) {
      return { refusal: `skipped: does not compile: ${(e as Error).message}` };
    }
    let executor: MoeBlockExecutor;
    try {
      executor = await bench.executor(plan);
    } catch (e) {
      return { refusal: `skipped: the adapter refuses it: ${firstLine((e as Error).message)}` };
    }
    try {
      const error = await bench.check(executor, tokensAt, target);
      if (!(error <= tolerance)) {
        executor.destroy();
        return { refusal: `wrong: relative error ${error.toExponential(2)} against the CPU interpreter (tolerance ${tolerance})` };
      }
    } catch (e) {
      executor.destroy();
      return { refusal: `skipped: failed on the adapter: ${firstLine((e as Error).message)}` };
    }
    return { executor };
  };

  /** Interleaved re-timing: rounds of default then winner; the winner is kept only if faster beyond the noise. */
  const retime = async (a: MoeBlockExecutor, b: MoeBlockExecutor, tokensAt: number): Promise<{ aMs: number; bMs: number; noise: number; bWins: boolean }> => {
    const as: number[] = [];
    const bs: number[] = [];
    for (let i = 0; i < (options.retimeRounds ?? 3); i++) {
      as.push(...(await bench.time(a, tokensAt, { samples: 3, ...options.timing })).samples);
      bs.push(...(await bench.time(b, tokensAt, { samples: 3, ...options.timing })).samples);
    }
    const noise = Math.max(0.03, relativeNoise(as), relativeNoise(bs));
    const aMs = median(as);
    const bMs = median(bs);
    return { aMs, bMs, noise, bWins: bMs < aMs * (1 - noise) };
  };

  for (const [index, task] of tasks.entries()) {
    const cached = existing(task);
    // A finished down entry holds only if gate/up still pads experts to its bm (a resumed gate/up task may pick another).
    const downBm = fixedBm ?? (chosenGateUp.get(task.tokens) ?? base.gemmTile).bm;
    const stale = task.family === 'grouped_gemm.down' && cached?.config['bm'] !== downBm;
    if (cached?.done && !stale) {
      if (task.family === 'grouped_gemm.gate_up') chosenGateUp.set(task.tokens, paramsTile(cached.config));
      for (const r of cached.refused) refused.push(`${task.name} ${paramsText(r.config)}: ${r.reason}`);
      results.push(cached);
      emit({ kind: 'task', task: task.name, entry: cached, cached: true });
      continue;
    }
    const left = options.budgetMs - (performance.now() - start);
    const deadline = performance.now() + Math.max(0, left) / (tasks.length - index);
    const entry = task.family === 'decode_max_tokens'
      ? await tuneCrossover(task, cached, deadline)
      : task.family === 'decode.rows'
        ? await searchFamily(task, cached, deadline, decodeRowsList.map((rows) => ({ rows })), { rows: base.decodeRows }, (p) => ({ decodeRows: p['rows']! }))
        : await tuneGemm(task, cached, deadline);
    results.push(entry);
    emit({ kind: 'task', task: task.name, entry, cached: false });
  }
  return { adapter: identity, entries: results, refused, outOfBudget };

  async function tuneGemm(task: Task, cached: TuningEntry | undefined, deadline: number): Promise<TuningEntry> {
    const gateUp = task.family === 'grouped_gemm.gate_up';
    const bm = fixedBm ?? (gateUp ? undefined : (chosenGateUp.get(task.tokens) ?? base.gemmTile).bm);
    const baseTile = { ...base.gemmTile, ...(bm ? { bm } : {}) };
    const candidates = options.candidates?.[task.family as 'grouped_gemm.gate_up' | 'grouped_gemm.down'] ?? gemmTileCandidates({
      kdim: gateUp ? dims.hidden : dims.intermediate, ndim: gateUp ? dims.intermediate : dims.hidden, gateup: gateUp,
      rowsPerExpert: (task.tokens * dims.topK) / dims.experts, limits, ...(bm ? { bm } : {}),
    }, baseTile, maxCandidates);
    const targetOf = (params: TunedParams): Partial<TargetDescription> => {
      const tile = paramsTile(params);
      return { expertGemmTiles: gateUp ? { gateUp: tile, down: { ...base.gemmTile, bm: tile.bm } } : { gateUp: chosenGateUp.get(task.tokens) ?? { ...base.gemmTile, bm: tile.bm }, down: tile } };
    };
    const entry = await searchFamily(task, cached, deadline, candidates.map(tileParams), tileParams(baseTile), targetOf);
    if (gateUp) chosenGateUp.set(task.tokens, paramsTile(entry.config));
    return entry;
  }

  /**
   * One family at one bucket: each candidate (`list`, the default `baseParams` first if absent)
   * compiled with `targetOf`, checked and timed with the family's dispatches repeated; the fastest
   * re-timed against the default and kept only beyond the noise.
   */
  async function searchFamily(task: Task, cached: TuningEntry | undefined, deadline: number, candidates: TunedParams[], baseParams: TunedParams,
    targetOf: (params: TunedParams) => Partial<TargetDescription>): Promise<TuningEntry> {
    const list = candidates.some((c) => sameParams(c, baseParams)) ? candidates : [baseParams, ...candidates];
    const entry: TuningEntry = {
      family: task.family, shape: task.shape.shape, tokens: task.tokens, templateHash: task.shape.templateHash,
      unit: `ms per MoE block at T=${task.tokens} with the family's dispatches run ${repeat + 1}x`,
      default: baseParams, config: baseParams, kept: 'default', done: false,
      measured: (cached?.measured ?? []).filter((m) => list.some((c) => sameParams(c, m.config))),
      refused: (cached?.refused ?? []).filter((m) => list.some((c) => sameParams(c, m.config))),
      updated: '',
    };
    let stopped = false;
    for (const params of list) {
      const isDefault = sameParams(params, entry.default);
      const known = entry.measured.find((m) => sameParams(m.config, params)) ?? entry.refused.find((m) => sameParams(m.config, params));
      if (known) {
        emit({ kind: 'candidate', task: task.name, config: params, outcome: 'resumed', ...('ms' in known ? { ms: known.ms } : { reason: known.reason }) });
        continue;
      }
      if (!isDefault && performance.now() > deadline) {
        stopped = true;
        break;
      }
      const ready = await prepare(targetOf(params), task.tokens, task.family);
      if ('refusal' in ready) {
        entry.refused.push({ config: params, reason: ready.refusal });
        refused.push(`${task.name} ${paramsText(params)}: ${ready.refusal}`);
        emit({ kind: 'candidate', task: task.name, config: params, outcome: ready.refusal.startsWith('wrong') ? 'wrong' : 'skipped', reason: ready.refusal });
      } else {
        try {
          const t = await bench.time(ready.executor, task.tokens, options.timing);
          entry.measured.push({ config: params, ms: t.ms });
          emit({ kind: 'candidate', task: task.name, config: params, outcome: 'measured', ms: t.ms });
        } finally {
          ready.executor.destroy();
        }
      }
      save(entry);
    }
    if (stopped) {
      outOfBudget = true;
      emit({ kind: 'budget', task: task.name });
    }
    entry.done = !stopped;
    const best = [...entry.measured].sort((a, b) => a.ms - b.ms)[0];
    if (best && !sameParams(best.config, entry.default)) {
      const [d, w] = [await prepare(targetOf(entry.default), task.tokens, task.family), await prepare(targetOf(best.config), task.tokens, task.family)];
      if ('executor' in d && 'executor' in w) {
        const r = await retime(d.executor, w.executor, task.tokens);
        Object.assign(entry, { defaultMs: r.aMs, tunedMs: r.bMs, noise: r.noise, kept: r.bWins ? 'tuned' : 'default', config: r.bWins ? best.config : entry.default });
      }
      for (const x of [d, w]) if ('executor' in x) x.executor.destroy();
    } else if (best) {
      Object.assign(entry, { defaultMs: best.ms, tunedMs: best.ms });
    }
    save(entry);
    return entry;
  }

  async function tuneCrossover(task: Task, cached: TuningEntry | undefined, deadline: number): Promise<TuningEntry> {
    const defaultBound = base.decodeMaxTokens;
    const entry: TuningEntry = {
      family: task.family, shape: task.shape.shape, tokens: task.tokens, templateHash: task.shape.templateHash,
      unit: 'ms per MoE block at `tokens` on the decode path (decodeMaxTokens >= tokens) or the prefill path (decodeMaxTokens = tokens - 1)',
      default: { decodeMaxTokens: defaultBound }, config: { decodeMaxTokens: defaultBound }, kept: 'default', done: false,
      measured: cached?.measured ?? [], refused: cached?.refused ?? [], updated: '',
    };
    // Prefill at a small bucket runs with the tiles tuned for the smallest prefill bucket.
    const smallest = [...chosenGateUp.keys()].sort((a, b) => a - b)[0];
    const tiles = smallest === undefined ? {} : { expertGemmTiles: { gateUp: chosenGateUp.get(smallest)!, down: paramsTile(results.find((e) => e.family === 'grouped_gemm.down' && e.tokens === smallest)?.config ?? tileParams({ ...base.gemmTile, bm: chosenGateUp.get(smallest)!.bm })) } };
    // Decode runs with the rows a compiled plan takes: those of the smallest decode bucket.
    const rowsEntry = results.filter((e) => e.family === 'decode.rows').sort((a, b) => a.tokens - b.tokens)[0];
    const decodeRows = rowsEntry ? { decodeRows: rowsEntry.config['rows']! } : {};
    let bound = GEMV_MAX_ROWS;
    let noise = 0.03;
    for (const t of crossoverBuckets(tokens)) {
      if (performance.now() > deadline && entry.measured.length) {
        outOfBudget = true;
        emit({ kind: 'budget', task: task.name });
        return finish(false);
      }
      const decodeTarget = { ...tiles, ...decodeRows, decodeMaxTokens: GEMV_MAX_ROWS };
      const prefillTarget = { ...tiles, decodeMaxTokens: t - 1 };
      const [d, p] = [await prepare(decodeTarget, t), await prepare(prefillTarget, t)];
      try {
        if ('refusal' in d || 'refusal' in p) {
          const reason = 'refusal' in d ? d.refusal : (p as { refusal: string }).refusal;
          entry.refused.push({ config: { tokens: t }, reason });
          refused.push(`${task.name} T=${t}: ${reason}`);
          emit({ kind: 'candidate', task: task.name, config: { tokens: t }, outcome: reason.startsWith('wrong') ? 'wrong' : 'skipped', reason });
          break;
        }
        const r = await retime(d.executor, p.executor, t);
        noise = Math.max(noise, r.noise);
        for (const [path, ms] of [[GEMV_MAX_ROWS, r.aMs], [t - 1, r.bMs]] as const) {
          entry.measured = entry.measured.filter((m) => !(m.config['tokens'] === t && m.config['decodeMaxTokens'] === path));
          entry.measured.push({ config: { tokens: t, decodeMaxTokens: path }, ms });
          emit({ kind: 'candidate', task: task.name, config: { tokens: t, decodeMaxTokens: path }, outcome: 'measured', ms });
        }
        save(entry);
        if (r.bWins) {
          // Prefill wins at t beyond noise: decode serves the buckets below only.
          bound = Math.max(1, t - 1);
          break;
        }
      } finally {
        for (const x of [d, p]) if ('executor' in x) x.executor.destroy();
      }
    }
    entry.noise = noise;
    if (bound !== defaultBound) Object.assign(entry, { kept: 'tuned', config: { decodeMaxTokens: bound } });
    return finish(true);

    function finish(done: boolean): TuningEntry {
      entry.done = done;
      save(entry);
      return entry;
    }
  }
}

const firstLine = (text: string): string => text.split('\n')[0]!.slice(0, 300);

export type { MeasuredCandidate, RefusedCandidate };
