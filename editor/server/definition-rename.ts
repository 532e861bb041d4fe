// Go-to-definition and rename over the symbol table (symbol-table.ts): definition jumps from
// any occurrence to the declaration; rename rewrites every occurrence in the name's spelling.
import type { Position, Range, TextEdit } from 'vscode-languageserver';
import { parseSpec } from '../../compiler/spec/parse.js';
import { buildSymbolTable, occurrences, symbolAt, type NameSpelling } from './symbol-table.js';
import { LineMap } from './text-positions.js';

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The range of the declaration of the name at the position. */
export function definitionAt(text: string, position: Position): Range | undefined {
  const lines = new LineMap(text);
  const table = buildSymbolTable(parseSpec(text, 'untitled.moe').ast);
  const found = symbolAt(table, lines.offsetAt(position));
  return found && lines.rangeOf(found.symbol.declaration);
}

/** What the rename box shows: the name without its quotes. */
export function prepareRenameAt(text: string, position: Position): { range: Range; placeholder: string } | undefined {
  const lines = new LineMap(text);
  const table = buildSymbolTable(parseSpec(text, 'untitled.moe').ast);
  const found = symbolAt(table, lines.offsetAt(position));
  if (!found) return undefined;
  const quotes = found.symbol.spelling === 'string' ? 1 : 0;
  return { range: lines.range(found.span.start + quotes, found.span.end - quotes), placeholder: found.symbol.name };
}

export type RenameResult = { edits: TextEdit[] } | { error: string };

export function renameAt(text: string, position: Position, newName: string): RenameResult | undefined {
  const lines = new LineMap(text);
  const table = buildSymbolTable(parseSpec(text, 'untitled.moe').ast);
  const found = symbolAt(table, lines.offsetAt(position));
  if (!found) return undefined;
  const { symbol } = found;
  const spelled = spell(newName, symbol.spelling, symbol.kind);
  if ('error' in spelled) return spelled;
  return { edits: occurrences(table, symbol).map((span) => ({ range: lines.rangeOf(span), newText: spelled.text })) };
}

/** The new name as source text, or why it cannot be one. */
function spell(newName: string, spelling: NameSpelling, kind: string): { text: string } | { error: string } {
  if (spelling === 'identifier') {
    return identifier.test(newName) ? { text: newName } : { error: `a ${kind} name is a letter or _ followed by letters, digits or _; got \`${newName}\`` };
  }
  // The rename box may be given the name with its quotes.
  const name = /^".*"$/s.test(newName) && newName.length >= 2 ? newName.slice(1, -1) : newName;
  if (name.trim() === '') return { error: `a ${kind} name cannot be empty` };
  if (/[\r\n]/.test(name)) return { error: `a ${kind} name is one line` };
  return { text: JSON.stringify(name) };
}
