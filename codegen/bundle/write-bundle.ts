// `moec compile`: spec -> bundle directory (model.js, model.d.ts, manifest.json, README.md).
// Everything is built in memory, written into a temporary directory next to the target, then
// renamed into place: an error at any point leaves the target as it was and no debris.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../../ir/model-config.js';
import type { CompiledBundle } from './bundle-data.js';
import { buildManifest, type BundleManifest } from './manifest.js';
import { emitModelDts } from './model-dts.js';
import { emitModelJs } from './model-js.js';
import { bundleReadme } from './readme.js';

export class BundleWriteError extends Error {}

/** Writes a compiled bundle (compiler/compile-bundle.ts) as directory `outDir`. */
export async function writeBundle(compiled: CompiledBundle, config: ModelConfig, specFile: string, outDir: string): Promise<BundleManifest> {
  const files: Record<string, string> = {
    'model.js': await emitModelJs(compiled.data, compiled.formatModules?.map((m) => m.runtime)),
    'model.d.ts': emitModelDts(compiled.data),
    // So Node and TypeScript (NodeNext) read model.js as an ES module, and the directory imports as a package.
    'package.json': JSON.stringify({ name: packageName(config.name), private: true, type: 'module', main: './model.js', types: './model.d.ts' }, null, 2) + '\n',
  };
  const manifest0 = buildManifest(compiled, basename(specFile), files);
  files['README.md'] = bundleReadme(compiled.data, manifest0.hfModelTypes, compiled.wholeModel);
  const manifest = buildManifest(compiled, basename(specFile), files);
  writeDirectoryAtomic(outDir, { ...files, 'manifest.json': JSON.stringify(manifest, null, 2) + '\n' });
  return manifest;
}

/** npm's rules: lower case, URL-safe. */
const packageName = (model: string): string => model.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+/, '') || 'moec-model';

/** Whether `dir` may be replaced: it is empty or holds a previous bundle (manifest.json). */
function replaceable(dir: string): boolean {
  if (!statSync(dir).isDirectory()) return false;
  const entries = readdirSync(dir);
  return entries.length === 0 || entries.includes('manifest.json');
}

/** Throws unless `target` is absent, empty or a previous bundle: call it before the work, not after. */
export function refuseToReplace(target: string): void {
  if (existsSync(target) && !replaceable(target)) {
    throw new BundleWriteError(`${target}: exists and is not a moec bundle (no manifest.json); refusing to replace it`);
  }
}

/** Writes `files` (flat names) as directory `target`, replacing a previous bundle there, or nothing on error. */
export function writeDirectoryAtomic(target: string, files: Record<string, string | Uint8Array>): void {
  const dir = resolve(target);
  refuseToReplace(dir);
  mkdirSync(dirname(dir), { recursive: true });
  const temporary = mkdtempSync(join(dirname(dir), `.${basename(dir)}.tmp-`));
  let previous: string | undefined;
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(temporary, name), content);
    if (existsSync(dir)) {
      previous = `${temporary}.old`;
      renameSync(dir, previous);
    }
    renameSync(temporary, dir);
  } catch (e) {
    if (previous && !existsSync(dir)) renameSync(previous, dir); // put the old bundle back
    rmSync(temporary, { recursive: true, force: true });
    throw e;
  }
  if (previous) rmSync(previous, { recursive: true, force: true });
}
