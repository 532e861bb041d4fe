// Everything a user names in a spec, and every place that refers to it. Today the language has
// one such name: the model's label (`model "mixtral-8x7b"`), with no references. Named things
// added later (e.g. `let` bindings, named experts) add a declaration here and their uses as
// references; definition and rename (definition-rename.ts) then work on them unchanged.
import type { SpecFile, Span } from '../../compiler/spec/ast.js';

/** How a name is written, which decides how a new name is validated and printed. */
export type NameSpelling = 'string' | 'identifier';

export interface NamedSymbol {
  /** What the name belongs to, e.g. 'model'. */
  kind: string;
  name: string;
  spelling: NameSpelling;
  /** The name as written, quotes included for a string. */
  declaration: Span;
}

export interface SymbolReference {
  symbol: NamedSymbol;
  span: Span;
}

export interface SymbolTable {
  symbols: NamedSymbol[];
  references: SymbolReference[];
}

export function buildSymbolTable(ast: SpecFile): SymbolTable {
  const symbols: NamedSymbol[] = [];
  for (const block of ast.blocks) {
    if (block.type === 'model' && block.label !== undefined && block.labelSpan) {
      symbols.push({ kind: 'model', name: block.label, spelling: 'string', declaration: block.labelSpan });
    }
  }
  return { symbols, references: [] };
}

/** The symbol whose declaration or a reference to which covers the offset (or ends at it). */
export function symbolAt(table: SymbolTable, offset: number): { symbol: NamedSymbol; span: Span } | undefined {
  const covers = (span: Span) => span.start <= offset && offset <= span.end;
  for (const symbol of table.symbols) if (covers(symbol.declaration)) return { symbol, span: symbol.declaration };
  for (const ref of table.references) if (covers(ref.span)) return { symbol: ref.symbol, span: ref.span };
  return undefined;
}

/** Every span that spells the symbol's name: its declaration first, then its references. */
export function occurrences(table: SymbolTable, symbol: NamedSymbol): Span[] {
  return [symbol.declaration, ...table.references.filter((r) => r.symbol === symbol).map((r) => r.span)];
}
