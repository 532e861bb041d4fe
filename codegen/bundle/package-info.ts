// Where moec is installed and its version: the bundle records the version and bundles the
// runtime's sources from the same tree the compiler runs from (dist/ or the TypeScript sources).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding moec's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

export function moecVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * runtime/<name> from the same tree the compiler runs from: dist/runtime/<name>.js when this module
 * is under dist/ (tsc's output, or the bundled CLI in dist/cli/), else the .ts source.
 */
export function runtimeFile(name: string): string {
  const root = packageRoot();
  const fromDist = !relative(join(root, 'dist'), fileURLToPath(import.meta.url)).startsWith('..');
  return fromDist ? join(root, 'dist', 'runtime', `${name}.js`) : join(root, 'runtime', `${name}.ts`);
}

/** The TypeScript source of runtime/<name> (for ts-morph, which reads declarations). */
export function runtimeSource(name: string): string {
  return join(packageRoot(), 'runtime', `${name}.ts`);
}
