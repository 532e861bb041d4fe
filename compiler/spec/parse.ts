// Source text -> AST plus syntax diagnostics. Never throws on bad input.
import type { IRecognitionException, IToken } from 'chevrotain';
import type { Comment, SpecFile } from './ast.js';
import { fileToBlocks } from './cst-to-ast.js';
import { diagnostic, spanAt, type Diagnostic } from './diagnostics.js';
import {
  Comma, Equals, LBracket, LCurly, LParen, Minus, moeLexer, Plus, RBracket, RCurly, RParen, Semicolon, Slash, Star, StringLiteral,
} from './lexer.js';
import { parseTokens, moeParser } from './parser.js';

export interface ParseResult {
  ast: SpecFile;
  diagnostics: Diagnostic[];
}

/** Deeper input is refused before parsing: the parser, the AST walkers and the evaluator all recurse. */
export const maxNesting = 100;

export function parseSpec(source: string, file: string): ParseResult {
  const lexed = moeLexer.tokenize(source);
  const diagnostics: Diagnostic[] = lexed.errors.map((e) =>
    diagnostic(file, spanAt(source, e.offset, e.offset + Math.max(1, e.length)), `unexpected character '${source.slice(e.offset, e.offset + Math.max(1, e.length))}'`,
      source[e.offset] === '"' ? 'strings are written in double quotes and end on the same line' : undefined),
  );
  for (const t of lexed.tokens) if (t.tokenType === StringLiteral) diagnostics.push(...stringProblems(t, source, file));
  const comments: Comment[] = (lexed.groups['comments'] ?? []).map((t: IToken) => ({ text: t.image, span: spanAt(source, t.startOffset, t.startOffset + t.image.length) }));
  const tooDeep = firstTooDeep(lexed.tokens);
  if (tooDeep) {
    diagnostics.push(diagnostic(file, spanAt(source, tooDeep.startOffset, tooDeep.startOffset + tooDeep.image.length),
      `nesting is too deep: more than ${maxNesting} levels of brackets, blocks and operators`, 'split the expression up; a spec needs only a few levels'));
    return { ast: { file, source, blocks: [], comments }, diagnostics };
  }
  const cst = parseTokens(lexed.tokens);
  let lastErrorAt = -1;
  for (const e of moeParser.errors) {
    const span = errorSpan(source, e);
    // Recovery can report several errors at one token; the first says it best.
    if (span.start === lastErrorAt) continue;
    lastErrorAt = span.start;
    diagnostics.push(diagnostic(file, span, e.message));
  }
  return { ast: { file, source, blocks: fileToBlocks(cst), comments }, diagnostics };
}

/** What JSON's string syntax does not allow in a string token: unknown escapes, raw control characters. */
function stringProblems(t: IToken, source: string, file: string): Diagnostic[] {
  const problems: Diagnostic[] = [];
  // Valid escapes are matched (and skipped) first, so `\\q` is a backslash and a q, not `\q`.
  for (const m of t.image.matchAll(/\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})|(\\u|\\.|[\u0000-\u001f])/g)) {
    const bad = m[1];
    if (bad === undefined) continue;
    const at = t.startOffset + m.index!;
    if (bad.startsWith('\\')) {
      problems.push(diagnostic(file, spanAt(source, at, at + 2), `unknown escape \`${bad}\` in a string`, 'escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\u with 4 hex digits'));
    } else {
      const code = bad.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
      problems.push(diagnostic(file, spanAt(source, at, at + 1), `control character U+${code} in a string`, 'write it as an escape, such as \\t for a tab'));
    }
  }
  return problems;
}

/**
 * The first token at which the AST would be more than maxNesting deep: each open bracket or
 * brace is a level, and so is each operator or sign of a chain (`1 + 1 + 1` nests to the left).
 */
function firstTooDeep(tokens: readonly IToken[]): IToken | undefined {
  const enclosing: number[] = []; // the operator count of each enclosing level
  let outer = 0; // levels of the enclosing brackets, with their operators
  let operators = 0;
  for (const t of tokens) {
    switch (t.tokenType) {
      case LParen: case LBracket: case LCurly:
        enclosing.push(operators);
        outer += operators + 1;
        operators = 0;
        break;
      case RParen: case RBracket: case RCurly:
        operators = enclosing.pop() ?? 0;
        outer = Math.max(0, outer - operators - 1);
        break;
      case Plus: case Minus: case Star: case Slash:
        operators++;
        break;
      case Comma: case Equals: case Semicolon:
        operators = 0;
        break;
    }
    if (outer + operators > maxNesting) return t;
  }
  return undefined;
}

/** Where to point: the offending token, or the end of the source when it is end-of-file. */
function errorSpan(source: string, e: IRecognitionException) {
  const t = e.token;
  if (t.tokenType.name === 'EOF' || Number.isNaN(t.startOffset)) {
    const previous = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
    const at = previous && !Number.isNaN(previous.startOffset) ? previous.startOffset + previous.image.length : source.length;
    return spanAt(source, at, at);
  }
  return spanAt(source, t.startOffset, t.startOffset + t.image.length);
}
