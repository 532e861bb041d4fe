// runtime/ ships in browser bundles: its non-Node files must bundle for the browser
// and must not reach into the compiler side of the repo.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const runtimeDir = fileURLToPath(new URL('../../runtime/', import.meta.url));

/** Files a browser bundle may use: everything but runtime/node/ and files with "node" in the name. */
function browserFiles(dir = runtimeDir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (/node/i.test(entry.name)) return [];
    if (entry.isDirectory()) return browserFiles(path);
    return /\.ts$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

describe('runtime browser safety', () => {
  const files = browserFiles();

  it('finds the browser-side runtime files', () => {
    expect(files.map((f) => relative(runtimeDir, f))).toEqual(
      expect.arrayContaining(['safetensors.ts', 'device.ts', 'buffer-pool.ts']),
    );
  });

  it('bundles for the browser with no Node built-ins', async () => {
    const result = await build({
      entryPoints: files,
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      outdir: 'out',
      logLevel: 'silent',
    }).catch((error: { errors?: Array<{ text: string }> }) => error);
    expect('errors' in result ? result.errors?.map((e) => e.text) : [], 'esbuild errors').toEqual([]);
  });

  it('imports nothing from compiler/, ir/, passes/ or codegen/', () => {
    const runtimeAll = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? runtimeAll(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
      );
    for (const file of runtimeAll(runtimeDir)) {
      const source = readFileSync(file, 'utf8');
      expect(source, relative(runtimeDir, file)).not.toMatch(/from\s+['"](\.\.\/)+(compiler|ir|passes|codegen)\//);
      expect(source, relative(runtimeDir, file)).not.toMatch(/import\(\s*['"](\.\.\/)+(compiler|ir|passes|codegen)\//);
    }
  });
});

describe('GPU -> CPU reads', () => {
  it('go through readBackBytes only, so readbackCount() sees every one', () => {
    const allFiles = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const mapping = allFiles(runtimeDir).filter((f) => /\bmapAsync\s*\(/.test(readFileSync(f, 'utf8')));
    expect(mapping.map((f) => relative(runtimeDir, f))).toEqual(['buffer-pool.ts']);
    expect(readFileSync(join(runtimeDir, 'buffer-pool.ts'), 'utf8').match(/\bmapAsync\s*\(/g)).toHaveLength(1);
  });
});
