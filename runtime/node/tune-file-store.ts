// Node-only: the load-time tuning store as files, one JSON file per adapter and bundle candidates
// in <cache dir>/load-tuning/ (a folder of its own: `moec tune` reads every *.json at the top).
// Written atomically (a temporary file, then a rename); a file that is not JSON (truncated,
// corrupted) is reported with its path and ignored, so the next load tunes again and rewrites it.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredLoadTuning, TuneStore, Warn } from '../tuning/tune-store.js';
import { moecCacheDir } from './cache-dir.js';

export interface NodeTuneStoreOptions {
  /** The cache directory (default $MOEC_CACHE_DIR, $XDG_CACHE_HOME/moec, ~/.cache/moec); records go in its load-tuning/. */
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
}

export const LOAD_TUNING_DIR = 'load-tuning';

export function nodeTuneStore(options: NodeTuneStoreOptions = {}): TuneStore {
  const dir = join(moecCacheDir(options.cacheDir, options.env), LOAD_TUNING_DIR);
  // Keys are `<adapter key>-<hash>`: file-name safe already; anything else is replaced all the same.
  const pathOf = (key: string): string => join(dir, `${key.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
  return {
    location: dir,
    where: pathOf,
    async get(key: string, warn: Warn) {
      const path = pathOf(key);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        warn(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ignored, tuning again`);
        return undefined;
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        warn(`${path}: not valid JSON (${(e as Error).message}); truncated or corrupted? ignored, tuning again`);
        return undefined;
      }
    },
    async put(key: string, record: StoredLoadTuning) {
      const path = pathOf(key);
      await mkdir(dir, { recursive: true });
      const temporary = `${path}.tmp-${process.pid}`;
      try {
        await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`);
        await rename(temporary, path);
      } catch (e) {
        await rm(temporary, { force: true });
        throw e;
      }
    },
  };
}
