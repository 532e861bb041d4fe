// The build's copy of the runtime's public types (written by scripts/build-dts.mjs with ts-morph,
// see runtime-api-emit.ts), read by `moec compile` for model.d.ts. Found from the package root, so
// the same file serves the bundled CLI (dist/cli/), tsc's output (dist/codegen/) and vitest (codegen/).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from './package-info.js';

export interface RuntimeApi {
  /** Package-relative path of each runtime source it was copied from -> that file's sha256. */
  inputs: Record<string, string>;
  /** The names it declares. */
  declared: string[];
  /** load() and the runtime's declarations, formatted: the end of every model.d.ts. */
  text: string;
}

/** Where the build writes it, relative to the package root. */
export const RUNTIME_API_FILE = join('dist', 'codegen', 'bundle', 'runtime-api.d.ts.json');

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

export function hashInputs(paths: readonly string[], root = packageRoot()): Record<string, string> {
  return Object.fromEntries(paths.map((p) => [relative(root, p).split('\\').join('/'), sha256(p)]));
}

/** Inputs that changed since `api` was built; one that is absent (a package without sources) is not checked. */
export function changedInputs(api: RuntimeApi, root = packageRoot()): string[] {
  return Object.entries(api.inputs).filter(([path, hash]) => existsSync(join(root, path)) && sha256(join(root, path)) !== hash)
    .map(([path]) => path);
}

export const readRuntimeApiFile = (file: string): RuntimeApi => JSON.parse(readFileSync(file, 'utf8')) as RuntimeApi;

/** The build's copy, checked against the runtime sources it came from. */
export function readRuntimeApi(root = packageRoot()): RuntimeApi {
  const file = join(root, RUNTIME_API_FILE);
  if (!existsSync(file)) throw new Error(`model.d.ts: ${file} is missing: run \`npm run build\``);
  const api = readRuntimeApiFile(file);
  const changed = changedInputs(api, root);
  if (changed.length) throw new Error(`model.d.ts: ${file} is stale (${changed.join(', ')} changed since): run \`npm run build\``);
  return api;
}
