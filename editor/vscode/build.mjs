#!/usr/bin/env node
// Bundles the extension with esbuild: the client (src/extension.ts, `vscode` left external) into
// dist/extension.js and the language server (editor/server/main.ts with the compiler front end)
// into dist/server.js, both CommonJS for VS Code's Node. `--vsix` then packages moec-vscode-<version>.vsix
// with @vscode/vsce (`npx @vscode/vsce package --no-dependencies`: everything is bundled).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', sourcemap: true, logLevel: 'warning' };

export function bundleServer(outfile = join(here, 'dist', 'server.js')) {
  return build({ ...common, entryPoints: [join(here, '..', 'server', 'main.ts')], outfile });
}

export function bundleClient(outfile = join(here, 'dist', 'extension.js')) {
  return build({ ...common, entryPoints: [join(here, 'src', 'extension.ts')], outfile, external: ['vscode'] });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await Promise.all([bundleServer(), bundleClient()]);
  console.log('built dist/server.js and dist/extension.js');
  if (process.argv.includes('--vsix')) {
    const r = spawnSync('npx', ['--yes', '@vscode/vsce@3', 'package', '--no-dependencies', '--skip-license', '--allow-missing-repository'], { cwd: here, stdio: 'inherit', shell: process.platform === 'win32' });
    process.exit(r.status ?? 1);
  }
}
