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

export function diagnostic(file: string, span: Span, message: string, hint?: string, severity: Severity = 'error'): Diagnostic {
  return hint === undefined ? { severity, file, span, message } : { severity, file, span, message, hint };
}

/** `file:line:col: error: message`, the source line, a caret under the span, then the hint. */
export function formatDiagnostic(d: Diagnostic, source: string): string {
  const lineText = sourceLine(source, d.span.line);
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
  const starts = lineStarts(source);
  const pos = (offset: number) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - starts[lo]! + 1 };
  };
  const a = pos(start);
  const b = pos(end);
  return { start, end, line: a.line, col: a.col, endLine: b.line, endCol: b.col };
}

/** The text of a 1-based line, without its line break; empty past the end. */
export function sourceLine(source: string, line: number): string {
  const starts = lineStarts(source);
  const start = starts[line - 1];
  if (start === undefined) return '';
  const next = starts[line];
  return source.slice(start, next ?? source.length).replace(/(?:\r\n|\r|\n)$/, '');
}

/**
 * Offsets where each line starts; the last source is cached because one parse asks many times.
 * Line breaks are \n, \r\n and a lone \r, as for the lexer (Chevrotain's default) and LSP clients.
 */
let lastLineStarts: { source: string; starts: number[] } | undefined;
function lineStarts(source: string): number[] {
  if (lastLineStarts?.source === source) return lastLineStarts.starts;
  const starts = [0];
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 13 && source.charCodeAt(i + 1) === 10) continue;
    if (c === 10 || c === 13) starts.push(i + 1);
  }
  lastLineStarts = { source, starts };
  return starts;
}
