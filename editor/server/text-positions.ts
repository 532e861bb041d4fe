// Offsets <-> LSP positions. Both count UTF-16 code units, and both treat \n, \r\n and a lone
// \r as line breaks (as the compiler's spanAt does), so a compiler span maps exactly.
import type { Position, Range } from 'vscode-languageserver';
import type { Span } from '../../compiler/spec/ast.js';

export class LineMap {
  private readonly starts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 13 && text.charCodeAt(i + 1) === 10) continue;
      if (c === 10 || c === 13) this.starts.push(i + 1);
    }
  }

  positionAt(offset: number): Position {
    const clamped = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: clamped - this.starts[lo]! };
  }

  /** A position past the end of its line is clamped to the line's end (LSP's rule). */
  offsetAt(position: Position): number {
    if (position.line >= this.starts.length) return this.text.length;
    if (position.line < 0) return 0;
    const start = this.starts[position.line]!;
    const next = position.line + 1 < this.starts.length ? this.starts[position.line + 1]! : this.text.length;
    let lineEnd = next;
    while (lineEnd > start && (this.text.charCodeAt(lineEnd - 1) === 10 || this.text.charCodeAt(lineEnd - 1) === 13)) lineEnd--;
    return Math.min(start + Math.max(0, position.character), lineEnd);
  }

  range(start: number, end: number): Range {
    return { start: this.positionAt(start), end: this.positionAt(end) };
  }

  rangeOf(span: Span): Range {
    return this.range(span.start, span.end);
  }

  /** The whole text, for full-document edits. */
  fullRange(): Range {
    return this.range(0, this.text.length);
  }
}

export function containsOffset(span: Span, offset: number): boolean {
  return span.start <= offset && offset < span.end;
}
