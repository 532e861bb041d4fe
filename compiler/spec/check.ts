// The front end in one call: source -> AST -> ModelConfig, with every diagnostic. Used by the
// CLI, the language server and the importer's round-trip tests alike.
import type { ModelConfig } from '../../ir/model-config.js';
import type { SpecFile } from './ast.js';
import { hasErrors, type Diagnostic } from './diagnostics.js';
import { defaultRegistry } from './kinds/builtin.js';
import type { KindRegistry } from './kinds/registry.js';
import { parseSpec } from './parse.js';
import { validateSpec } from './validate.js';

export interface CheckResult {
  ast: SpecFile;
  config?: ModelConfig;
  diagnostics: Diagnostic[];
}

export function checkSpec(source: string, file: string, registry: KindRegistry = defaultRegistry): CheckResult {
  const parsed = parseSpec(source, file);
  // Semantic errors on a partly parsed file would mostly echo the syntax errors.
  if (hasErrors(parsed.diagnostics)) return { ast: parsed.ast, diagnostics: parsed.diagnostics };
  const validated = validateSpec(parsed.ast, registry);
  const diagnostics = [...validated.diagnostics].sort((a, b) => a.span.start - b.span.start);
  return validated.config ? { ast: parsed.ast, config: validated.config, diagnostics } : { ast: parsed.ast, diagnostics };
}
