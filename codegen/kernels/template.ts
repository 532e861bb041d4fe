// Loads and renders the kernels' Handlebars WGSL templates at compile time. Templates stay
// `.wgsl.hbs` files in the source tree (tsc copies no .hbs into dist/), so they are found from
// the repo root: the nearest folder above this module with a package.json, which is the same
// folder whether this runs from codegen/ (vitest, tsx) or dist/codegen/ (the built CLI).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';

let root: string | undefined;

function repoRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}: cannot find codegen/kernels templates`);
    dir = parent;
  }
  root = dir;
  return dir;
}

const compiled = new Map<string, Handlebars.TemplateDelegate>();

/** The text of `codegen/kernels/<path>` (a .wgsl.hbs file): what renderTemplate compiles, and what the tuning cache hashes. */
export const templateSource = (path: string): string => readFileSync(join(repoRoot(), 'codegen', 'kernels', path), 'utf8');

/** Renders `codegen/kernels/<path>` (a .wgsl.hbs file) with `context`; a missing field throws. */
export function renderTemplate(path: string, context: object): string {
  let template = compiled.get(path);
  if (!template) {
    const source = templateSource(path);
    // noEscape: WGSL's `array<f32>` must not become `array&lt;f32&gt;`; strict: a typo in a field name fails loudly.
    template = Handlebars.compile(source, { noEscape: true, strict: true });
    compiled.set(path, template);
  }
  return template(context);
}

/**
 * Renders a template given as text (a plugin's), with the same options; `origin` (the plugin's
 * file) names it when it does not compile or a field is missing.
 */
export function renderTemplateSource(origin: string, source: string, context: object): string {
  const key = `${origin}\0${source}`;
  let template = compiled.get(key);
  try {
    if (!template) {
      template = Handlebars.compile(source, { noEscape: true, strict: true });
      compiled.set(key, template);
    }
    return template(context);
  } catch (e) {
    throw new Error(`${origin}: WGSL template: ${(e as Error).message}`);
  }
}

/** A WGSL f32 literal for a JS number (always with a decimal point or exponent). */
export function f32Literal(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`cannot write ${value} as a WGSL f32 literal`);
  const text = String(value);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}
