// The kinds a spec in the editor is checked with: the builtin ones plus those of the plugins its
// compile block names (loaded like the CLI does, relative to the spec file). A plugin that cannot
// be loaded becomes a diagnostic at the string that names it.
import { loadPlugins } from '../../compiler/plugins/load-plugins.js';
import { PluginError } from '../../compiler/plugins/registry.js';
import { diagnostic, type Diagnostic } from '../../compiler/spec/diagnostics.js';
import type { KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { parseSpec } from '../../compiler/spec/parse.js';
import { pluginRequestsOf } from '../../compiler/spec/plugin-paths.js';

export interface SpecKinds {
  kinds: KindRegistry;
  /** Plugins that could not be loaded, at the spec text naming them. */
  diagnostics: Diagnostic[];
}

export async function kindsForSpec(text: string, file: string, base: KindRegistry): Promise<SpecKinds> {
  const requests = pluginRequestsOf(parseSpec(text, file).ast);
  if (requests.length === 0) return { kinds: base, diagnostics: [] };
  try {
    return { kinds: (await loadPlugins(requests, { specFile: file, specSource: text })).kinds, diagnostics: [] };
  } catch (e) {
    if (!(e instanceof PluginError) || !e.where.span) throw e;
    return { kinds: base, diagnostics: [diagnostic(file, e.where.span, e.where.detail ?? e.message)] };
  }
}
