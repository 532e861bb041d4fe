// Node-only: moec's cache directory, shared by `moec tune` (compiler/tune/tuning-cache.ts) and the
// load-time tuning store (tune-file-store.ts): the flag or option first, then $MOEC_CACHE_DIR, then
// $XDG_CACHE_HOME/moec, then ~/.cache/moec.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function moecCacheDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env['MOEC_CACHE_DIR']) return env['MOEC_CACHE_DIR'];
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'moec');
}
