// `load({ tune: 'first-load' })`: the choice among the bundle's load-time candidates for this
// adapter, read from the store when an earlier load made it (nothing is timed then), else measured
// now within the budget (load-tuner.ts) and stored. Never fatal: a damaged record, a store that
// cannot be written or a failed measurement is reported through `warn`, and the defaults run.
import { inflatePlan } from '../bundle-plans.js';
import type { GpuRuntime } from '../device.js';
import { adapterIdentity, adapterKey, describeAdapter, sameAdapter, type AdapterIdentity } from './adapter-identity.js';
import { indexedDbOf, indexedDbTuneStore } from './indexeddb-store.js';
import { candidatesHash, describeParams, type LoadCandidate, type LoadCandidates } from './load-candidates.js';
import { tuneLoadCandidates, type TimedSet } from './load-tuner.js';
import { LOAD_TUNING_FORMAT, storedTuningProblem, type LoadTuningOutcome, type StoredLoadTuning, type TuneStore, type Warn } from './tune-store.js';

/** What load-time tuning did, as Model.loadTuning shows it. */
export interface LoadTuningReport {
  /** measured: timed during this load; stored: an earlier load's choice, read back (nothing timed); none: no tuning (see `why`). */
  from: 'measured' | 'stored' | 'none';
  /** The chosen candidate set's id, or `default`. */
  chosen: string;
  /** Its tiles and crossover. */
  description: string;
  /** Where the choice is stored (a file, an IndexedDB key); absent without a store. */
  storedAt?: string;
  why?: string;
  /** The measurement: this load's, or the stored one's. */
  outcome?: LoadTuningOutcome;
}

export interface FirstLoadOptions {
  budgetMs: number;
  store?: TuneStore;
  warn: Warn;
  /** Set when the bundle already has plans tuned for this adapter (`moec compile --tuning`): those run, nothing is timed. */
  offlineTuned?: string;
}

export interface FirstLoadChoice {
  /** The set to run; undefined: the bundle's default plans. */
  set?: LoadCandidate;
  /** Model.tuning's text. */
  tuning: string;
  report: LoadTuningReport;
}

interface BundleParts {
  specSha256: string;
  config: { name: string; compile: { dtype: 'f32' | 'f16' } };
  plans: Record<string, unknown>;
  planTemplates: unknown[];
  kernels: Record<string, string>;
  loadCandidates?: LoadCandidates;
}

const DEFAULT_DESCRIPTION = "the bundle's default plans";

export async function chooseAtFirstLoad(data: BundleParts, rt: GpuRuntime, options: FirstLoadOptions): Promise<FirstLoadChoice> {
  const name = data.config.name;
  const none = (why: string, tuning = 'defaults'): FirstLoadChoice => ({ tuning, report: { from: 'none', chosen: 'default', description: DEFAULT_DESCRIPTION, why } });
  if (options.offlineTuned) return none(`the bundle has plans tuned for this adapter (moec compile --tuning), which run instead`, options.offlineTuned);
  const candidates = data.loadCandidates;
  if (!candidates?.sets.length) {
    const why = `${name}: this bundle has no load-time candidates (compiled with \`moec compile --load-candidates 0\`, or by a moec without them): nothing to tune, the default plans run`;
    options.warn(`load: tune: 'first-load': ${why}`);
    return none(why);
  }
  const identity = adapterIdentity(rt.info, rt.adapter);
  const hash = candidatesHash(data.specSha256, candidates);
  const key = `${adapterKey(identity)}-${hash}`;
  const store = options.store ?? defaultStore(options.warn);
  const setOf = (id: string): LoadCandidate | undefined => candidates.sets.find((s) => s.id === id);
  const describe = (id: string): string => (id === 'default' ? `${DEFAULT_DESCRIPTION} (${describeParams(candidates.default)})` : `${describeParams(setOf(id)!.params)} [${id}]`);

  const stored = store ? await readStored(store, key, hash, identity, candidates, options.warn) : undefined;
  if (stored) {
    const report: LoadTuningReport = { from: 'stored', chosen: stored.chosen, description: describe(stored.chosen), storedAt: store!.where(key), outcome: stored };
    return { set: setOf(stored.chosen), tuning: `load-time tuning on ${describeAdapter(identity)}, stored at ${report.storedAt} (measured ${stored.measuredAt}): ${report.description}`, report };
  }

  let outcome: LoadTuningOutcome;
  try {
    const layer = candidates.layer;
    const timed = (id: string, set: { plans: Record<string, unknown>; planTemplates: unknown[] }, params: LoadCandidate['params']): TimedSet =>
      ({ id, params, plan: inflatePlan(set.plans[String(layer)], layer, set.planTemplates, data.kernels) });
    outcome = await tuneLoadCandidates(rt, timed('default', data, candidates.default), candidates.sets.map((s) => timed(s.id, s, s.params)), {
      budgetMs: options.budgetMs, prefillTokens: candidates.prefillTokens, tolerance: data.config.compile.dtype === 'f16' ? 1e-2 : 1e-4,
    });
  } catch (e) {
    const why = `${name}: load-time tuning failed (${(e as Error).message.split('\n')[0]}); the default plans run`;
    options.warn(`load: tune: 'first-load': ${why}`);
    return none(why);
  }
  let storedAt: string | undefined;
  if (store) {
    const record: StoredLoadTuning = { format: LOAD_TUNING_FORMAT, adapter: identity, candidates: hash, model: name, measuredAt: new Date().toISOString(), ...outcome };
    try {
      await store.put(key, record);
      storedAt = store.where(key);
    } catch (e) {
      options.warn(`${store.where(key)}: cannot store the load-time tuning (${(e as Error).message}); the next load tunes again`);
    }
  }
  const report: LoadTuningReport = { from: 'measured', chosen: outcome.chosen, description: describe(outcome.chosen), ...(storedAt ? { storedAt } : {}), outcome };
  const vs = outcome.chosen === 'default' ? 'no candidate beat it beyond noise' : `${outcome.chosenMs?.toFixed(3)} ms vs the default's ${outcome.defaultMs?.toFixed(3)} ms`;
  const budget = outcome.outOfBudget ? `, budget of ${outcome.budgetMs} ms ran out before ${outcome.unmeasured.length} candidate(s)` : '';
  return { set: setOf(outcome.chosen), tuning: `load-time tuning on ${describeAdapter(identity)}, measured now in ${outcome.elapsedMs} ms${budget}: ${report.description} (${vs})`, report };
}

/** IndexedDB where there is one; else no store, with a warning saying what that costs. */
function defaultStore(warn: Warn): TuneStore | undefined {
  if (indexedDbOf()) return indexedDbTuneStore();
  warn("load: tune: 'first-load': no IndexedDB here and no load({ tuneStore }), so the choice is not kept and every load tunes again " +
    '(in Node pass tuneStore: nodeTuneStore() from moec/node-tune-store)');
  return undefined;
}

/** The stored record for `key` if it fits this bundle and adapter; a damaged or foreign one is reported and ignored. */
async function readStored(store: TuneStore, key: string, hash: string, identity: AdapterIdentity, candidates: LoadCandidates, warn: Warn): Promise<StoredLoadTuning | undefined> {
  const record = await store.get(key, warn);
  if (record === undefined) return undefined;
  const stored = record as StoredLoadTuning;
  const paramsOf = (id: string) => (id === 'default' ? candidates.default : candidates.sets.find((s) => s.id === id)?.params);
  const problem = storedTuningProblem(record, hash, candidates.sets.map((s) => s.id)) ??
    (sameAdapter(stored.adapter, identity) ? undefined : `measured on another adapter (${describeAdapter(stored.adapter)})`) ??
    (JSON.stringify(stored.params) === JSON.stringify(paramsOf(stored.chosen)) ? undefined : `its params for ${stored.chosen} are not this bundle's`);
  if (problem) {
    warn(`${store.where(key)}: ${problem}; ignored, tuning again`);
    return undefined;
  }
  return stored;
}
