// The tuning file (`moec tune -o`, and one per adapter in the cache directory): human-readable,
// diffable JSON. Per adapter, per kernel family, fixed params (`shape`) and token bucket, the
// parameters kept, the default's and the winner's times, and every candidate measured or refused
// (so a rerun resumes). An entry whose template hash differs from the current templates' is stale.
import { adapterKey, sameAdapter, type AdapterIdentity } from './adapter-identity.js';

export const TUNING_FORMAT = 'moec-tuning/1';

export type TunedParams = Record<string, number>;

export interface MeasuredCandidate {
  config: TunedParams;
  /** Median milliseconds of the timed unit (see TuningEntry.unit). */
  ms: number;
}

export interface RefusedCandidate {
  config: TunedParams;
  /** `skipped: ...` (did not render, compile or validate on the adapter) or `wrong: ...` (differs from the CPU interpreter). */
  reason: string;
}

export interface TuningEntry {
  /** `grouped_gemm.gate_up`, `grouped_gemm.down`, `decode_max_tokens`. */
  family: string;
  /** The kernel's fixed parameters, readable (kernel name, experts, top-k). */
  shape: string;
  /** The token bucket measured. */
  tokens: number;
  /** Hash of the family's templates and `shape`: entries whose hash differs from the current one are stale. */
  templateHash: string;
  /** What the times measure, e.g. `MoE block with the family's dispatches run 4x`. */
  unit: string;
  default: TunedParams;
  /** The parameters to use: the winner's, or the default's when it did not win beyond noise. */
  config: TunedParams;
  kept: 'tuned' | 'default';
  /** Re-timed in the same run, interleaved: the default, the winner, and the relative noise allowed. */
  defaultMs?: number;
  tunedMs?: number;
  noise?: number;
  /** false while the search is under way (a rerun continues it). */
  done: boolean;
  measured: MeasuredCandidate[];
  refused: RefusedCandidate[];
  /** ISO time of the last update. */
  updated: string;
}

export interface AdapterTuning {
  key: string;
  adapter: AdapterIdentity;
  entries: TuningEntry[];
}

export interface TuningFile {
  format: typeof TUNING_FORMAT;
  adapters: AdapterTuning[];
}

export class TuningFileError extends Error {
  override readonly name = 'TuningFileError';
}

export const emptyTuningFile = (): TuningFile => ({ format: TUNING_FORMAT, adapters: [] });

export const entryKey = (e: Pick<TuningEntry, 'family' | 'shape' | 'tokens'>): string => `${e.family}|${e.shape}|${e.tokens}`;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isParams = (v: unknown): v is TunedParams => isObject(v) && Object.values(v).every((x) => typeof x === 'number' && Number.isFinite(x));

function checkEntry(e: unknown, where: string): TuningEntry {
  if (!isObject(e)) throw new TuningFileError(`${where}: not an object`);
  for (const f of ['family', 'shape', 'templateHash', 'unit']) if (typeof e[f] !== 'string') throw new TuningFileError(`${where}: \`${f}\` must be a string`);
  if (typeof e['tokens'] !== 'number' || !Number.isInteger(e['tokens']) || e['tokens'] < 1) throw new TuningFileError(`${where}: \`tokens\` must be a positive whole number`);
  if (!isParams(e['default']) || !isParams(e['config'])) throw new TuningFileError(`${where}: \`default\` and \`config\` must map parameter names to numbers`);
  if (e['kept'] !== 'tuned' && e['kept'] !== 'default') throw new TuningFileError(`${where}: \`kept\` must be "tuned" or "default"`);
  if (typeof e['done'] !== 'boolean') throw new TuningFileError(`${where}: \`done\` must be true or false`);
  if (!Array.isArray(e['measured']) || !e['measured'].every((m) => isObject(m) && isParams(m['config']) && typeof m['ms'] === 'number')) throw new TuningFileError(`${where}: \`measured\` must be a list of { config, ms }`);
  if (!Array.isArray(e['refused']) || !e['refused'].every((m) => isObject(m) && isParams(m['config']) && typeof m['reason'] === 'string')) throw new TuningFileError(`${where}: \`refused\` must be a list of { config, reason }`);
  return e as unknown as TuningEntry;
}

function checkAdapter(a: unknown, where: string): AdapterTuning {
  if (!isObject(a) || !isObject(a['adapter']) || !Array.isArray(a['entries'])) throw new TuningFileError(`${where}: needs \`adapter\` and \`entries\``);
  const id = a['adapter'];
  for (const f of ['vendor', 'architecture', 'device', 'description']) if (typeof id[f] !== 'string') throw new TuningFileError(`${where}.adapter: \`${f}\` must be a string`);
  if (!isParams(id['limits']) || !Array.isArray(id['features'])) throw new TuningFileError(`${where}.adapter: needs \`limits\` (numbers) and \`features\``);
  const adapter = id as unknown as AdapterIdentity;
  // The key is derived, so a hand-edited identity cannot keep a stale key.
  return { key: adapterKey(adapter), adapter, entries: a['entries'].map((e, i) => checkEntry(e, `${where}.entries[${i}]`)) };
}

/** Parses and checks a tuning file; `origin` (its path) starts every error message. */
export function parseTuningFile(text: string, origin: string): TuningFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TuningFileError(`${origin}: not valid JSON (${(e as Error).message}); truncated or corrupted?`);
  }
  if (!isObject(json) || json['format'] !== TUNING_FORMAT) throw new TuningFileError(`${origin}: not a ${TUNING_FORMAT} tuning file (format ${isObject(json) ? JSON.stringify(json['format']) : 'missing'})`);
  if (!Array.isArray(json['adapters'])) throw new TuningFileError(`${origin}: \`adapters\` must be a list`);
  return { format: TUNING_FORMAT, adapters: json['adapters'].map((a, i) => checkAdapter(a, `${origin}: adapters[${i}]`)) };
}

export const tuningFileText = (file: TuningFile): string => `${JSON.stringify(file, null, 2)}\n`;

/** The adapter's section of `file` (created empty if absent). */
export function adapterSection(file: TuningFile, adapter: AdapterIdentity): AdapterTuning {
  let section = file.adapters.find((a) => sameAdapter(a.adapter, adapter));
  if (!section) file.adapters.push((section = { key: adapterKey(adapter), adapter, entries: [] }));
  return section;
}

/** Replaces (or adds) the entry with the same family, shape and tokens. */
export function putEntry(section: AdapterTuning, entry: TuningEntry): void {
  const i = section.entries.findIndex((e) => entryKey(e) === entryKey(entry));
  if (i < 0) section.entries.push(entry);
  else section.entries[i] = entry;
}

/**
 * Several runs (several GPUs) in one file: adapters by identity; for the same entry a finished
 * one beats an unfinished one, then the later file wins.
 */
export function mergeTuningFiles(files: readonly TuningFile[]): TuningFile {
  const out = emptyTuningFile();
  for (const file of files) {
    for (const a of file.adapters) {
      const section = adapterSection(out, a.adapter);
      for (const e of a.entries) {
        const existing = section.entries.find((x) => entryKey(x) === entryKey(e));
        if (existing && existing.done && !e.done) continue;
        putEntry(section, e);
      }
    }
  }
  for (const a of out.adapters) a.entries.sort((x, y) => `${x.family}|${x.shape}`.localeCompare(`${y.family}|${y.shape}`) || x.tokens - y.tokens);
  return out;
}
