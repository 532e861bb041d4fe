// Where `load({ tune: 'first-load' })` keeps what it chose, for the next load: an interface with a
// browser implementation (indexeddb-store.ts) and a Node one (runtime/node/tune-file-store.ts). A
// record is keyed by the adapter and the bundle's candidates; what a store returns is checked here
// before use, so a damaged or foreign record is reported and ignored, never fatal.
import type { AdapterIdentity } from './adapter-identity.js';
import type { CandidateParams } from './load-candidates.js';

export const LOAD_TUNING_FORMAT: StoredLoadTuning['format'] = 'moec-load-tuning/1';

export type Warn = (message: string) => void;

export interface TuneStore {
  /** For messages: `IndexedDB moec-tuning`, a directory. */
  readonly location: string;
  /** Where the record for `key` lives, for messages (a file path, a database key). */
  where(key: string): string;
  /** The record stored for `key`, undefined when there is none; one that cannot be read is reported through `warn` and treated as none. */
  get(key: string, warn: Warn): Promise<unknown>;
  put(key: string, record: StoredLoadTuning): Promise<void>;
}

export interface TimedCandidate {
  id: string;
  params: CandidateParams;
  /** Median milliseconds of one run of the timed MoE block at `tokens`. */
  ms: number;
  tokens: number;
}

export interface DiscardedCandidate {
  id: string;
  params: CandidateParams;
  /** `skipped: ...` (the adapter refuses it) or `wrong: ...` (its output differs from the default plan's). */
  reason: string;
}

/** What one load-time tuning measured and chose (stored as is, and shown as Model.loadTuning). */
export interface LoadTuningOutcome {
  /** The chosen set's id, or `default`. */
  chosen: string;
  params: CandidateParams;
  measured: TimedCandidate[];
  discarded: DiscardedCandidate[];
  /** Candidates the budget left no time for. */
  unmeasured: string[];
  /** The default's and the chosen set's times at the decisive re-timing (interleaved), and the noise allowed. */
  defaultMs?: number;
  chosenMs?: number;
  noise?: number;
  budgetMs: number;
  elapsedMs: number;
  outOfBudget: boolean;
}

export interface StoredLoadTuning extends LoadTuningOutcome {
  format: 'moec-load-tuning/1';
  adapter: AdapterIdentity;
  /** candidatesHash of the bundle it was measured for. */
  candidates: string;
  model: string;
  /** ISO time it was measured. */
  measuredAt: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumbers = (v: unknown): boolean => isObject(v) && Object.values(v).every((x) => typeof x === 'number' && Number.isFinite(x));
const isParams = (v: unknown): v is CandidateParams => isObject(v) && isNumbers(v['gateUp']) && isNumbers(v['down']) && typeof v['decodeMaxTokens'] === 'number';

/** Why `record` is not a usable stored choice for `candidates` (a candidatesHash) among `ids`; undefined when it is. */
export function storedTuningProblem(record: unknown, candidates: string, ids: readonly string[]): string | undefined {
  if (!isObject(record)) return 'not an object';
  if (record['format'] !== LOAD_TUNING_FORMAT) return `not a ${LOAD_TUNING_FORMAT} record (format ${JSON.stringify(record['format'] ?? null)})`;
  if (record['candidates'] !== candidates) return `measured for other candidates (${String(record['candidates'])}, this bundle's are ${candidates})`;
  if (typeof record['chosen'] !== 'string' || !['default', ...ids].includes(record['chosen'])) return `chooses ${JSON.stringify(record['chosen'])}, which this bundle lacks`;
  if (!isParams(record['params'])) return '`params` must hold gateUp, down and decodeMaxTokens';
  for (const list of ['measured', 'discarded', 'unmeasured']) if (!Array.isArray(record[list])) return `\`${list}\` must be a list`;
  const adapter = record['adapter'];
  if (!isObject(adapter) || !['vendor', 'architecture', 'device', 'description'].every((f) => typeof adapter[f] === 'string') ||
    !isNumbers(adapter['limits']) || !Array.isArray(adapter['features'])) return '`adapter` must be an adapter identity';
  return undefined;
}
