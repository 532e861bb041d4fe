// Prints a parsed spec in its one canonical layout (`moec fmt`, the editor's format-document):
// two-space indent, one field per line, a blank line between top-level blocks, every comment kept.
//
// Comments are placed by where they sit in the source, so formatting twice changes nothing:
// - on the line where an item (or a block's `{`) ends: kept at the end of that line;
// - otherwise: on their own lines above the next item, or above the `}` / end of file;
// - inside a field or a block header (e.g. between call arguments): moved above that item,
//   since the item is printed on one line.
// Blank lines between items and comment groups are kept, at most one, never right after `{`
// or right before `}`.
import type { Arg, Block, Comment, Expr, Field, Item } from './ast.js';
import { hasErrors, spanAt, type Diagnostic } from './diagnostics.js';
import { parseSpec } from './parse.js';

export interface FormatResult {
  /** The formatted source; absent when the source has syntax errors. */
  text?: string;
  diagnostics: Diagnostic[];
}

export function formatSpec(source: string, file: string): FormatResult {
  const { ast, diagnostics } = parseSpec(source, file);
  if (hasErrors(diagnostics)) return { diagnostics };
  const printer = new SpecPrinter(source, ast.comments);
  printer.body(ast.blocks, 0, undefined, source.length);
  return { text: printer.text(), diagnostics };
}

export function formatExpr(expr: Expr): string {
  switch (expr.kind) {
    case 'number': return expr.text;
    case 'string': return JSON.stringify(expr.value);
    case 'ident': return expr.name;
    case 'call': return `${expr.callee}(${expr.args.map(formatArg).join(', ')})`;
    case 'list': return `[${expr.items.map(formatExpr).join(', ')}]`;
    case 'binary': return `${formatExpr(expr.left)} ${expr.op} ${formatExpr(expr.right)}`;
    case 'negate': return `-${formatExpr(expr.operand)}`;
    case 'paren': return `(${formatExpr(expr.inner)})`;
  }
}

function formatArg(arg: Arg): string {
  return arg.name === undefined ? formatExpr(arg.value) : `${arg.name} = ${formatExpr(arg.value)}`;
}

function formatField(field: Field): string {
  return `${field.name}${field.qualifier ? ` ${field.qualifier}` : ''} = ${formatExpr(field.value)}`;
}

/** `type "label" {`: how a block opens, in a formatted spec and in one the importer writes. */
export function blockHeader(type: string, label: string | undefined): string {
  return `${type}${label === undefined ? '' : ` ${JSON.stringify(label)}`} {`;
}

/** Line comments lose trailing spaces; block comments keep their text, with `\n` line breaks. */
function commentText(comment: Comment): string {
  return comment.text.startsWith('//') ? comment.text.trimEnd() : comment.text.replace(/\r\n?/g, '\n');
}

class SpecPrinter {
  private readonly lines: string[] = [];
  /** The next comment to place; comments are placed in source order. */
  private nextComment = 0;
  /** The source line where the last placed thing ended, and whether that thing was a comment. */
  private lastLine = 0;
  private lastWasComment = false;
  /** Index of the first line of the current block body: no blank line goes before it. */
  private bodyStart = 0;
  /** Set after a top-level block: the next line of the file starts after a blank line. */
  private blankBeforeNext = false;

  constructor(private readonly source: string, private readonly comments: readonly Comment[]) {}

  text(): string {
    return this.lines.length ? this.lines.join('\n') + '\n' : '';
  }

  /** A block's items (or the file's blocks) with the comments among them, up to `end` (the `}`). */
  body(items: readonly Item[], depth: number, openLine: number | undefined, end: number): void {
    const indent = '  '.repeat(depth);
    this.bodyStart = this.lines.length;
    this.lastLine = openLine ?? 0;
    this.lastWasComment = false;
    for (const item of items) {
      while (this.commentBefore(item.span.start)) this.placeComment(this.takeComment(), item.span.line, indent);
      this.item(item, depth);
      if (depth === 0) this.blankBeforeNext = true;
    }
    while (this.commentBefore(end)) this.placeComment(this.takeComment(), Infinity, indent);
  }

  private item(item: Item, depth: number): void {
    const indent = '  '.repeat(depth);
    const open = item.kind === 'block' ? this.openBraceOffset(item) : item.span.end;
    // A field or block header is printed on one line, so comments inside it go above it.
    let firstLine = true;
    while (this.commentBefore(open)) {
      this.startLine(indent + commentText(this.takeComment()), firstLine ? item.span.line : this.lastLine);
      this.lastWasComment = true;
      firstLine = false;
    }
    if (item.kind === 'field') {
      this.startLine(indent + formatField(item), firstLine ? item.span.line : this.lastLine);
    } else {
      const header = indent + blockHeader(item.type, item.label);
      this.startLine(header, firstLine ? item.span.line : this.lastLine);
      const headerIndex = this.lines.length - 1;
      const outerBodyStart = this.bodyStart;
      this.body(item.items, depth + 1, spanAt(this.source, open).line, item.span.end - 1);
      this.bodyStart = outerBodyStart;
      if (this.lines.length === headerIndex + 1 && this.lines[headerIndex] === header) this.lines[headerIndex] = `${header}}`;
      else this.lines.push(`${indent}}`);
    }
    this.lastLine = item.span.endLine;
    this.lastWasComment = false;
  }

  /**
   * A comment that starts on the line where the last thing ended stays on that line, unless the
   * next item starts on the line where the comment ends (then it leads that item, above it).
   */
  private placeComment(comment: Comment, nextItemLine: number, indent: string): void {
    const text = commentText(comment);
    const sameLine = comment.span.line === this.lastLine && this.lines.length > 0;
    if (sameLine && (this.lastWasComment || comment.span.endLine !== nextItemLine)) {
      this.lines[this.lines.length - 1] += ` ${text}`;
    } else {
      this.startLine(indent + text, comment.span.line);
    }
    this.lastLine = comment.span.endLine;
    this.lastWasComment = true;
  }

  /** Starts a line for something at `sourceLine`, after one blank line if the source had any. */
  private startLine(text: string, sourceLine: number): void {
    const blank = this.blankBeforeNext || sourceLine - this.lastLine >= 2;
    if (blank && this.lines.length > this.bodyStart) this.lines.push('');
    this.blankBeforeNext = false;
    this.lines.push(text);
  }

  private commentBefore(offset: number): boolean {
    return this.nextComment < this.comments.length && this.comments[this.nextComment]!.span.start < offset;
  }

  private takeComment(): Comment {
    return this.comments[this.nextComment++]!;
  }

  /** The offset of a block's `{`: after its type and label, past whitespace and comments. */
  private openBraceOffset(block: Block): number {
    const s = this.source;
    let at = (block.labelSpan ?? block.typeSpan).end;
    for (;;) {
      while (' \t\r\n'.includes(s[at] ?? '{')) at++;
      if (s.startsWith('//', at)) at = s.slice(at).search(/[\r\n]|$/) + at;
      else if (s.startsWith('/*', at)) at = s.indexOf('*/', at + 2) + 2;
      else return at;
    }
  }
}
