// Loads plugin modules (Node): each file imported as an ES module, its default export checked to be
// a plugin, and added to a copy of the registry with the file's sha256. A weight format's runtime
// module (the codec model.js bundles) is imported too, so the compiler packs with what bundles
// run. Every failure names the file (and, for a spec's `plugins = [...]`, the spec line), and
// nothing is loaded half.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { diagnostic, formatDiagnostic } from '../spec/diagnostics.js';
import type { PluginRequest } from '../spec/plugin-paths.js';
import type { FormatDefinition } from '../../runtime/quant/weight-format.js';
import { isPlugin, type MoecPlugin } from './plugin-api.js';
import { PluginError, Registry, runtimeModulePath } from './registry.js';

/** Where a request came from: a spec file (paths relative to it) or the command line (relative to the working directory). */
export interface RequestOrigin {
  specFile?: string;
  specSource?: string;
}

function failAt(request: PluginRequest, origin: RequestOrigin, message: string): never {
  if (request.span && origin.specFile && origin.specSource !== undefined) {
    throw new PluginError(formatDiagnostic(diagnostic(origin.specFile, request.span, message), origin.specSource), { span: request.span, detail: message });
  }
  throw new PluginError(`--plugin ${request.path}: ${message}`, { detail: message });
}

export async function loadPlugin(registry: Registry, request: PluginRequest, origin: RequestOrigin = {}): Promise<Registry> {
  const base = origin.specFile && request.span ? dirname(resolve(origin.specFile)) : process.cwd();
  const file = resolve(base, request.path);
  if (!existsSync(file)) failAt(request, origin, `plugin ${request.path}: no such file (looked for ${file})`);
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  let module: { default?: unknown };
  try {
    // The content hash in the URL: an edited plugin is imported afresh (the language server reloads it).
    module = (await import(`${pathToFileURL(file).href}?sha256=${sha256.slice(0, 16)}`)) as { default?: unknown };
  } catch (e) {
    failAt(request, origin, `plugin ${request.path}: cannot load ${file}: ${(e as Error).message}`);
  }
  if (!isPlugin(module.default)) {
    failAt(request, origin, `plugin ${request.path}: ${file} is not a moec plugin: its default export must be \`definePlugin({ name, ... })\` (from moec/plugin)`);
  }
  const plugin = await withRuntimeFormats(module.default, file, (message) => failAt(request, origin, `plugin ${request.path}: ${message}`));
  if (typeof plugin.name !== 'string' || plugin.name === '') failAt(request, origin, `plugin ${request.path}: ${file}: the plugin has no name`);
  try {
    return registry.with(plugin, { name: plugin.name, file, sha256 });
  } catch (e) {
    if (e instanceof PluginError && request.span) failAt(request, origin, e.message);
    throw e;
  }
}

/** `plugin` with each format's definition taken from its runtime module, which must agree with one the plugin gives. */
async function withRuntimeFormats(plugin: MoecPlugin, file: string, fail: (message: string) => never): Promise<MoecPlugin> {
  if (!plugin.formats) return plugin;
  const formats: NonNullable<MoecPlugin['formats']> = {};
  for (const [name, format] of Object.entries(plugin.formats)) {
    const path = typeof format.runtime === 'string' || format.runtime instanceof URL ? runtimeModulePath(format.runtime, file) : undefined;
    if (!path || !existsSync(path)) fail(`format ${name}: its runtime module ${String(format.runtime)} is no file`);
    let runtime: { default?: FormatDefinition };
    try {
      runtime = (await import(pathToFileURL(path!).href)) as { default?: FormatDefinition };
    } catch (e) {
      fail(`format ${name}: cannot load its runtime module ${path!}: ${(e as Error).message}`);
    }
    const definition = runtime!.default;
    const layout = (d: FormatDefinition | undefined) => JSON.stringify([d?.name, d?.perWord, d?.scalesPerWord]);
    if (format.definition && layout(format.definition) !== layout(definition)) {
      fail(`format ${name}: the runtime module ${path!} exports ${layout(definition)} as its default, not the definition the plugin gives (${layout(format.definition)})`);
    }
    formats[name] = { ...format, definition: format.definition ?? definition };
  }
  return { ...plugin, formats };
}

/** The builtin registry with every requested plugin added, in order. */
export async function loadPlugins(requests: readonly PluginRequest[], origin: RequestOrigin = {}, base = Registry.builtin()): Promise<Registry> {
  let registry = base;
  for (const request of requests) registry = await loadPlugin(registry, request, origin);
  return registry;
}
