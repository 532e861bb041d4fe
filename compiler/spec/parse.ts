// Source text -> AST plus syntax diagnostics. Never throws on bad input.
import type { IRecognitionException, IToken } from 'chevrotain';
import type { Comment, SpecFile } from './ast.js';
import { fileToBlocks } from './cst-to-ast.js';
import { diagnostic, spanAt, type Diagnostic } from './diagnostics.js';
import { moeLexer } from './lexer.js';
import { parseTokens, moeParser } from './parser.js';

export interface ParseResult {
  ast: SpecFile;
  diagnostics: Diagnostic[];
}

export function parseSpec(source: string, file: string): ParseResult {
  const lexed = moeLexer.tokenize(source);
  const diagnostics: Diagnostic[] = lexed.errors.map((e) =>
    diagnostic(file, spanAt(source, e.offset, e.offset + Math.max(1, e.length)), `unexpected character '${source.slice(e.offset, e.offset + Math.max(1, e.length))}'`,
      source[e.offset] === '"' ? 'strings are written in double quotes and end on the same line' : undefined),
  );
  const cst = parseTokens(lexed.tokens);
  for (const e of moeParser.errors) diagnostics.push(diagnostic(file, errorSpan(source, e), e.message));
  const comments: Comment[] = (lexed.groups['comments'] ?? []).map((t: IToken) => ({ text: t.image, span: spanAt(source, t.startOffset, t.startOffset + t.image.length) }));
  return { ast: { file, source, blocks: fileToBlocks(cst), comments }, diagnostics };
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
