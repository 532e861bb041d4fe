// Loads plugin modules (Node): each file imported as an ES module, its default export checked to be
// a plugin, and added to a copy of the registry with the file's sha256. Every failure names the
// file (and, for a spec's `plugins = [...]`, the spec line), and nothing is loaded half.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { diagnostic, formatDiagnostic } from '../spec/diagnostics.js';
import type { PluginRequest } from '../spec/plugin-paths.js';
import { isPlugin } from './plugin-api.js';
import { PluginError, Registry } from './registry.js';

/** Where a request came from: a spec file (paths relative to it) or the command line (relative to the working directory). */
export interface RequestOrigin {
  specFile?: string;
  specSource?: string;
}

function failAt(request: PluginRequest, origin: RequestOrigin, message: string): never {
  if (request.span && origin.specFile && origin.specSource !== undefined) {
    throw new PluginError(formatDiagnostic(diagnostic(origin.specFile, request.span, message), origin.specSource));
  }
  throw new PluginError(`--plugin ${request.path}: ${message}`);
}

export async function loadPlugin(registry: Registry, request: PluginRequest, origin: RequestOrigin = {}): Promise<Registry> {
  const base = origin.specFile && request.span ? dirname(resolve(origin.specFile)) : process.cwd();
  const file = resolve(base, request.path);
  if (!existsSync(file)) failAt(request, origin, `plugin ${request.path}: no such file (looked for ${file})`);
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (e) {
    failAt(request, origin, `plugin ${request.path}: cannot load ${file}: ${(e as Error).message}`);
  }
  if (!isPlugin(module.default)) {
    failAt(request, origin, `plugin ${request.path}: ${file} is not a moec plugin: its default export must be \`definePlugin({ name, ... })\` (from moec/plugin)`);
  }
  const plugin = module.default;
  if (typeof plugin.name !== 'string' || plugin.name === '') failAt(request, origin, `plugin ${request.path}: ${file}: the plugin has no name`);
  return registry.with(plugin, { name: plugin.name, file, sha256 });
}

/** The builtin registry with every requested plugin added, in order. */
export async function loadPlugins(requests: readonly PluginRequest[], origin: RequestOrigin = {}, base = Registry.builtin()): Promise<Registry> {
  let registry = base;
  for (const request of requests) registry = await loadPlugin(registry, request, origin);
  return registry;
}
