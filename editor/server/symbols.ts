// Document symbols: the outline of blocks and their fields, from the AST (parser recovery
// keeps what it can of a file with errors).
import { SymbolKind, type DocumentSymbol } from 'vscode-languageserver';
import type { Block, Item } from '../../compiler/spec/ast.js';
import { formatExpr } from '../../compiler/spec/format.js';
import { parseSpec } from '../../compiler/spec/parse.js';
import { LineMap } from './text-positions.js';

const maxDetail = 60;

export function documentSymbols(text: string): DocumentSymbol[] {
  const lines = new LineMap(text);
  return parseSpec(text, 'untitled.moe').ast.blocks.map((b) => itemSymbol(b, lines, true));
}

function itemSymbol(item: Item, lines: LineMap, topLevel = false): DocumentSymbol {
  if (item.kind === 'block') return blockSymbol(item, lines, topLevel);
  const value = formatExpr(item.value);
  return {
    name: item.qualifier === undefined ? item.name : `${item.name} ${item.qualifier}`,
    detail: value.length > maxDetail ? `${value.slice(0, maxDetail - 1)}…` : value,
    kind: SymbolKind.Field,
    range: lines.rangeOf(item.span),
    selectionRange: lines.rangeOf(item.nameSpan),
  };
}

function blockSymbol(block: Block, lines: LineMap, topLevel: boolean): DocumentSymbol {
  const symbol: DocumentSymbol = {
    name: block.label === undefined ? block.type : `${block.type} ${JSON.stringify(block.label)}`,
    kind: block.label !== undefined ? SymbolKind.Class : topLevel ? SymbolKind.Module : SymbolKind.Struct,
    range: lines.rangeOf(block.span),
    selectionRange: lines.rangeOf(block.labelSpan ? { ...block.typeSpan, end: block.labelSpan.end } : block.typeSpan),
    children: block.items.map((i) => itemSymbol(i, lines)),
  };
  return symbol;
}
