// Folding ranges: blocks, arguments and lists that span lines, block comments and runs of
// line comments. The closing `}` / `)` / `]` stays visible when it is on a line of its own.
import { FoldingRangeKind, type FoldingRange } from 'vscode-languageserver';
import type { Block, Comment, Expr } from '../../compiler/spec/ast.js';
import { parseSpec } from '../../compiler/spec/parse.js';
import { LineMap } from './text-positions.js';

export function foldingRanges(text: string): FoldingRange[] {
  const lines = new LineMap(text);
  const { ast } = parseSpec(text, 'untitled.moe');
  const ranges: FoldingRange[] = [];
  const region = (start: number, end: number, kind?: FoldingRangeKind) => {
    const startLine = lines.positionAt(start).line;
    let endLine = lines.positionAt(end).line;
    if (kind === undefined && /[}\])]/.test(text[end - 1] ?? '') && endLine > startLine && /^\s*$/.test(lineBefore(text, end - 1))) endLine--;
    if (endLine > startLine) ranges.push(kind === undefined ? { startLine, endLine } : { startLine, endLine, kind });
  };
  const visitExpr = (e: Expr) => {
    if (e.kind === 'call') {
      region(e.calleeSpan.start, e.span.end);
      e.args.forEach((a) => visitExpr(a.value));
    } else if (e.kind === 'list') {
      region(e.span.start, e.span.end);
      e.items.forEach(visitExpr);
    }
  };
  const visitBlock = (b: Block) => {
    region(b.span.start, b.span.end);
    for (const item of b.items) {
      if (item.kind === 'block') visitBlock(item);
      else visitExpr(item.value);
    }
  };
  ast.blocks.forEach(visitBlock);
  for (const run of commentRuns(text, ast.comments, lines)) region(run.start, run.end, FoldingRangeKind.Comment);
  return ranges.sort((a, b) => a.startLine - b.startLine);
}

/** The text of the line up to (not including) the offset. */
function lineBefore(text: string, offset: number): string {
  const lineStart = Math.max(text.lastIndexOf('\n', offset - 1), text.lastIndexOf('\r', offset - 1)) + 1;
  return text.slice(lineStart, offset);
}

/** Each block comment, and each run of own-line `//` comments on consecutive lines, as one offset range. */
function commentRuns(text: string, comments: readonly Comment[], lines: LineMap): { start: number; end: number }[] {
  const runs: { start: number; end: number; lastLine: number; line: boolean }[] = [];
  for (const c of comments) {
    const isLine = c.text.startsWith('//') && /^\s*$/.test(lineBefore(text, c.span.start));
    const first = lines.positionAt(c.span.start).line;
    const last = runs[runs.length - 1];
    if (isLine && last?.line && last.lastLine + 1 === first) {
      last.end = c.span.end;
      last.lastLine = first;
    } else {
      runs.push({ start: c.span.start, end: c.span.end, lastLine: lines.positionAt(c.span.end).line, line: isLine });
    }
  }
  return runs;
}
