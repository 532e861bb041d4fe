// The compiler's diagnostics as LSP diagnostics: `moec check`'s message, range and hint.
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';
import { checkSpec } from '../../compiler/spec/check.js';
import type { Diagnostic as SpecDiagnostic } from '../../compiler/spec/diagnostics.js';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import type { KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { LineMap } from './text-positions.js';

export function specDiagnostics(text: string, file: string, registry: KindRegistry = defaultRegistry): Diagnostic[] {
  const lines = new LineMap(text);
  return checkSpec(text, file, registry).diagnostics.map((d) => toLspDiagnostic(d, lines));
}

export function toLspDiagnostic(d: SpecDiagnostic, lines: LineMap): Diagnostic {
  return {
    range: lines.rangeOf(d.span),
    severity: d.severity === 'error' ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
    source: 'moec',
    message: d.hint ? `${d.message}\nhint: ${d.hint}` : d.message,
  };
}
