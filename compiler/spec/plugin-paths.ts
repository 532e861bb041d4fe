// The plugins a spec asks for (`compile { plugins = ["./x.js"] }`), read off the syntax tree before
// the spec is checked: the kinds they add are needed to check it.
import type { Span, SpecFile } from './ast.js';

export interface PluginRequest {
  /** As written in the spec (relative to the spec file) or on the command line. */
  path: string;
  /** Where the spec names it, for a `file:line:col` error; absent for `--plugin`. */
  span?: Span;
}

export function pluginRequestsOf(ast: SpecFile): PluginRequest[] {
  const requests: PluginRequest[] = [];
  for (const block of ast.blocks.filter((b) => b.type === 'compile')) {
    for (const item of block.items) {
      if (item.kind !== 'field' || item.name !== 'plugins' || item.value.kind !== 'list') continue;
      for (const e of item.value.items) if (e.kind === 'string') requests.push({ path: e.value, span: e.span });
    }
  }
  return requests;
}
