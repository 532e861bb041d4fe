// Where tuning results live in Node: one JSON file per adapter in the user's cache directory
// ($MOEC_CACHE_DIR, else $XDG_CACHE_HOME/moec, else ~/.cache/moec; `--cache-dir` first), written
// atomically. A file that cannot be read as a tuning file is reported with its path and ignored.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { moecCacheDir } from '../../runtime/node/cache-dir.js';
import { adapterKey, type AdapterIdentity } from '../../runtime/tuning/adapter-identity.js';
import { emptyTuningFile, mergeTuningFiles, parseTuningFile, tuningFileText, TuningFileError, type TuningFile } from '../../runtime/tuning/tuning-file.js';

export type Warn = (message: string) => void;

/** The same directory the load-time tuning store uses (its records in a load-tuning/ folder of it). */
export const tuningCacheDir = moecCacheDir;

export const cacheFileOf = (dir: string, adapter: AdapterIdentity): string => join(dir, `${adapterKey(adapter)}.json`);

/** The tuning file at `path`; undefined when there is none, or (reported through `warn`) when it is damaged. */
export function readTuningFile(path: string, warn: Warn): TuningFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    warn(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ignored`);
    return undefined;
  }
  try {
    return parseTuningFile(text, path);
  } catch (e) {
    if (!(e instanceof TuningFileError)) throw e;
    warn(`${e.message}; ignored`);
    return undefined;
  }
}

/** Every tuning file in the cache directory, merged (damaged ones reported and left out). */
export function readTuningCache(dir: string, warn: Warn): TuningFile {
  if (!existsSync(dir)) return emptyTuningFile();
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => readTuningFile(join(dir, f), warn));
  return mergeTuningFiles(files.filter((f): f is TuningFile => f !== undefined));
}

/** Writes `file` via a temporary file and a rename (the folder is created): a crash never leaves half a file. */
export function writeTuningFile(path: string, file: TuningFile): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(temporary, tuningFileText(file));
    renameSync(temporary, path);
  } catch (e) {
    rmSync(temporary, { force: true });
    throw e;
  }
}
