// Errors a user can cause, printed the way compilers print them: file:line:col, the line, a caret.
import type { Span } from './ast.js';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  file: string;
  span: Span;
  message: string;
  /** What to do about it: a did-you-mean, the allowed range, the missing field. */
  hint?: string;
}

export class SpecError extends Error {
  constructor(readonly diagnostics: Diagnostic[], readonly source: string) {
    super(diagnostics.map((d) => formatDiagnostic(d, source)).join('\n'));
    this.name = 'SpecError';
  }
}

export function diagnostic(file: string, span: Span, message: string, hint?: string, severity: Severity = 'error'): Diagnostic {
  return hint === undefined ? { severity, file, span, message } : { severity, file, span, message, hint };
}

/** `file:line:col: error: message`, the source line, a caret under the span, then the hint. */
export function formatDiagnostic(d: Diagnostic, source: string): string {
  const lines = source.split(/\r?\n/);
  const lineText = lines[d.span.line - 1] ?? '';
  const width = d.span.endLine === d.span.line ? Math.max(1, d.span.endCol - d.span.col) : Math.max(1, lineText.length - d.span.col + 1);
  const caret = ' '.repeat(Math.max(0, d.span.col - 1)) + '^' + '~'.repeat(Math.max(0, width - 1));
  const out = [`${d.file}:${d.span.line}:${d.span.col}: ${d.severity}: ${d.message}`, `  ${lineText}`, `  ${caret}`];
  if (d.hint) out.push(`  hint: ${d.hint}`);
  return out.join('\n');
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** The span of a whole source position range from offsets (used when a token is missing). */
export function spanAt(source: string, start: number, end = start): Span {
  const pos = (offset: number) => {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset && i < source.length; i++) {
      if (source.charCodeAt(i) === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    return { line, col: offset - lineStart + 1 };
  };
  const a = pos(start);
  const b = pos(end);
  return { start, end, line: a.line, col: a.col, endLine: b.line, endCol: b.col };
}
