// Bundles the built CLI (dist/compiler/cli/main.js, from `tsc -b`) into dist/cli/moec.js with esbuild.
// Why: chevrotain's lodash-es is hundreds of ES modules, and resolving them made every `moec`
// start take ~0.6 s; one bundled file starts in ~0.15 s. Code splitting keeps the dynamic imports
// (the bundle writer with esbuild, Dawn) loaded only by the commands that use them.
// Plain Node + esbuild: scripts/setup.mjs and the CLI tests call it. Skipped when up to date.
import { existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundled CLI, relative to the package root (package.json's `bin`). */
export const CLI_BUNDLE = join('dist', 'cli', 'moec.js');

/** Returns false when dist/cli/ is newer than tsc's last build, package.json and this script (nothing done). */
export async function buildCli(root) {
  const entry = join(root, 'dist', 'compiler', 'cli', 'main.js');
  const buildInfo = join(root, 'dist', '.tsbuildinfo');
  const out = join(root, CLI_BUNDLE);
  if (!existsSync(entry)) throw new Error(`${entry} missing: run \`tsc -b\` first`);
  const inputs = [buildInfo, join(root, 'package.json'), fileURLToPath(import.meta.url)];
  if (existsSync(out) && inputs.every((f) => existsSync(f) && statSync(out).mtimeMs >= statSync(f).mtimeMs)) return false;
  const { dependencies } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const { build } = await import('esbuild');
  const staging = join(root, 'dist', `cli.tmp-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  await build({
    // moec pack's worker thread runs a script of its own, found beside the chunk that starts it.
    entryPoints: { moec: entry, 'pack-worker': join(root, 'dist', 'compiler', 'pack', 'pack-worker.js') },
    outdir: staging,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Only chevrotain is bundled; the other dependencies load from node_modules as before.
    external: Object.keys(dependencies).filter((name) => name !== 'chevrotain'),
    logLevel: 'error',
  });
  rmSync(join(root, 'dist', 'cli'), { recursive: true, force: true });
  renameSync(staging, join(root, 'dist', 'cli'));
  return true;
}

// `node scripts/build-cli.mjs`: what the CLI tests run after `tsc -b`.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildCli(resolve(dirname(fileURLToPath(import.meta.url)), '..'));
}
