// The arrows of ../shared/style.md hold: codegen/ and runtime/ import nothing of compiler/, runtime/
// nothing of codegen/, ir/ or passes/, ir/ nothing of passes/, codegen/ or compiler/, passes/
// nothing of codegen/ or compiler/. Read off the import statements of every source file.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const FORBIDDEN: Record<string, string[]> = {
  runtime: ['compiler', 'codegen', 'ir', 'passes', 'editor'],
  codegen: ['compiler', 'editor'],
  ir: ['compiler', 'codegen', 'passes', 'editor'],
  passes: ['compiler', 'codegen', 'editor'],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

it.each(Object.entries(FORBIDDEN))('%s/ imports nothing of %s', (folder, forbidden) => {
  const offending: string[] = [];
  for (const file of sources(join(root, folder))) {
    for (const [, target] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      if (!target!.startsWith('.')) continue;
      const top = relative(root, join(file, '..', target!)).split(/[\\/]/)[0]!;
      if (forbidden.includes(top)) offending.push(`${relative(root, file)} -> ${target}`);
    }
  }
  expect(offending).toEqual([]);
});
