// Writes dist/codegen/bundle/runtime-api.d.ts.json: the part of every bundle's model.d.ts that
// does not depend on the spec (the runtime's public types, copied with ts-morph by
// dist/codegen/bundle/runtime-api-emit.js, from `tsc -b`). Why: ts-morph takes ~1 s to load, which
// `moec compile` should not pay. Plain Node: scripts/setup.mjs, `npm run build` and the CLI tests
// run it. Skipped when up to date.
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Returns false when the file is newer than the emitter and this script and its runtime sources are unchanged. */
export async function buildRuntimeApiDts(root) {
  const bundleDist = join(root, 'dist', 'codegen', 'bundle');
  const emitter = join(bundleDist, 'runtime-api-emit.js');
  if (!existsSync(emitter)) throw new Error(`${emitter} missing: run \`tsc -b\` first`);
  const { RUNTIME_API_FILE, changedInputs, readRuntimeApiFile } = await import(pathToFileURL(join(bundleDist, 'runtime-api.js')).href);
  const out = join(root, RUNTIME_API_FILE);
  const tools = [emitter, join(root, 'package.json'), fileURLToPath(import.meta.url)];
  if (existsSync(out) && tools.every((f) => statSync(out).mtimeMs >= statSync(f).mtimeMs) &&
      changedInputs(readRuntimeApiFile(out), root).length === 0) return false;
  const { emitRuntimeApi } = await import(pathToFileURL(emitter).href);
  const staging = `${out}.tmp-${process.pid}`;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(staging, JSON.stringify(emitRuntimeApi(), null, 1) + '\n');
  renameSync(staging, out);
  return true;
}

// `node scripts/build-dts.mjs`: what `npm run build` and the CLI tests run after `tsc -b`.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildRuntimeApiDts(resolve(dirname(fileURLToPath(import.meta.url)), '..'));
}
