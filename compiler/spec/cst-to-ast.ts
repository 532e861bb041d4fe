// Turns Chevrotain's concrete syntax tree into the AST. Recovered (partial) nodes are
// skipped: their errors were already reported by the parser.
import type { CstElement, CstNode, IToken } from 'chevrotain';
import type { Arg, Block, Expr, Field, Item, Span } from './ast.js';

function isToken(element: CstElement): element is IToken {
  return (element as IToken).image !== undefined;
}

function tokenSpan(t: IToken): Span {
  return {
    start: t.startOffset,
    end: (t.endOffset ?? t.startOffset) + 1,
    line: t.startLine ?? 1,
    col: t.startColumn ?? 1,
    endLine: t.endLine ?? t.startLine ?? 1,
    endCol: (t.endColumn ?? t.startColumn ?? 1) + 1,
  };
}

function join(a: Span, b: Span): Span {
  return { start: a.start, line: a.line, col: a.col, end: b.end, endLine: b.endLine, endCol: b.endCol };
}

function tokens(node: CstNode, key: string): IToken[] {
  return (node.children[key] ?? []).filter(isToken).filter((t) => !Number.isNaN(t.startOffset));
}

function nodes(node: CstNode, key: string): CstNode[] {
  return (node.children[key] ?? []).filter((e): e is CstNode => !isToken(e));
}

/** Every token under a node in source order, to span nodes whose last child was recovered. */
function nodeSpan(node: CstNode): Span | undefined {
  let first: IToken | undefined;
  let last: IToken | undefined;
  const visit = (n: CstNode) => {
    for (const list of Object.values(n.children)) {
      for (const e of list) {
        if (isToken(e)) {
          if (Number.isNaN(e.startOffset)) continue;
          if (!first || e.startOffset < first.startOffset) first = e;
          if (!last || e.startOffset > last.startOffset) last = e;
        } else visit(e);
      }
    }
  };
  visit(node);
  return first && last ? join(tokenSpan(first), tokenSpan(last)) : undefined;
}

/** A string's value; one that is not a JSON string was reported by parseSpec, so its raw text will do. */
function unquote(image: string): string {
  try {
    return JSON.parse(image) as string;
  } catch {
    return image.slice(1, -1);
  }
}

export function fileToBlocks(file: CstNode): Block[] {
  return nodes(file, 'block').map(toBlock).filter((b): b is Block => b !== undefined);
}

function toBlock(node: CstNode): Block | undefined {
  const type = tokens(node, 'type')[0];
  const span = nodeSpan(node);
  if (!type || !span) return undefined;
  const label = tokens(node, 'label')[0];
  const items = nodes(node, 'item').map(toItem).filter((i): i is Item => i !== undefined);
  const block: Block = { kind: 'block', type: type.image, typeSpan: tokenSpan(type), items, span };
  if (label) {
    block.label = unquote(label.image);
    block.labelSpan = tokenSpan(label);
  }
  return block;
}

function toItem(node: CstNode): Item | undefined {
  const block = nodes(node, 'block')[0];
  if (block) return toBlock(block);
  const field = nodes(node, 'field')[0];
  return field ? toField(field) : undefined;
}

function toField(node: CstNode): Field | undefined {
  const name = tokens(node, 'name')[0];
  const valueNode = nodes(node, 'value')[0];
  const value = valueNode ? toValue(valueNode) : undefined;
  if (!name || !value) return undefined;
  const field: Field = { kind: 'field', name: name.image, nameSpan: tokenSpan(name), value, span: join(tokenSpan(name), value.span) };
  const qualifier = tokens(node, 'qualifier')[0];
  if (qualifier) {
    field.qualifier = qualifier.image;
    field.qualifierSpan = tokenSpan(qualifier);
  }
  return field;
}

function toValue(node: CstNode): Expr | undefined {
  const sum = nodes(node, 'sum')[0];
  return sum ? toOperatorChain(sum) : undefined;
}

/** sum and product share a shape: operands interleaved with operators, left-associative. */
function toOperatorChain(node: CstNode): Expr | undefined {
  const operands = nodes(node, 'operands').map((n) => (n.name === 'product' ? toOperatorChain(n) : toUnary(n)));
  const operators = tokens(node, 'operators');
  let result = operands[0];
  for (let i = 0; i < operators.length && result; i++) {
    const right = operands[i + 1];
    if (!right) return undefined;
    result = { kind: 'binary', op: operators[i]!.image as '+' | '-' | '*' | '/', left: result, right, span: join(result.span, right.span) };
  }
  return result;
}

function toUnary(node: CstNode): Expr | undefined {
  const minus = tokens(node, 'Minus')[0];
  const inner = nodes(node, 'unary')[0];
  if (minus && inner) {
    const operand = toUnary(inner);
    return operand ? { kind: 'negate', operand, span: join(tokenSpan(minus), operand.span) } : undefined;
  }
  const atom = nodes(node, 'atom')[0];
  return atom ? toAtom(atom) : undefined;
}

function toAtom(node: CstNode): Expr | undefined {
  const num = tokens(node, 'NumberLiteral')[0];
  if (num) return { kind: 'number', value: Number(num.image.replace(/_/g, '')), text: num.image, span: tokenSpan(num) };
  const str = tokens(node, 'StringLiteral')[0];
  if (str) return { kind: 'string', value: unquote(str.image), span: tokenSpan(str) };
  const call = nodes(node, 'callOrName')[0];
  if (call) return toCallOrName(call);
  const list = nodes(node, 'list')[0];
  if (list) return toList(list);
  const sum = nodes(node, 'sum')[0];
  const open = tokens(node, 'LParen')[0];
  const close = tokens(node, 'RParen')[0];
  const inner = sum ? toOperatorChain(sum) : undefined;
  return inner && open && close ? { kind: 'paren', inner, span: join(tokenSpan(open), tokenSpan(close)) } : undefined;
}

function toCallOrName(node: CstNode): Expr | undefined {
  const name = tokens(node, 'name')[0];
  if (!name) return undefined;
  const open = tokens(node, 'LParen')[0];
  if (!open) return { kind: 'ident', name: name.image, span: tokenSpan(name) };
  const close = tokens(node, 'RParen')[0];
  const args = nodes(node, 'arg').map(toArg);
  if (!close || args.some((a) => a === undefined)) return undefined;
  return { kind: 'call', callee: name.image, calleeSpan: tokenSpan(name), args: args as Arg[], span: join(tokenSpan(name), tokenSpan(close)) };
}

function toArg(node: CstNode): Arg | undefined {
  const valueNode = nodes(node, 'value')[0];
  const value = valueNode ? toValue(valueNode) : undefined;
  if (!value) return undefined;
  const name = tokens(node, 'name')[0];
  if (!name) return { value, span: value.span };
  return { name: name.image, nameSpan: tokenSpan(name), value, span: join(tokenSpan(name), value.span) };
}

function toList(node: CstNode): Expr | undefined {
  const open = tokens(node, 'LBracket')[0];
  const close = tokens(node, 'RBracket')[0];
  const items = nodes(node, 'value').map(toValue);
  if (!open || !close || items.some((i) => i === undefined)) return undefined;
  return { kind: 'list', items: items as Expr[], span: join(tokenSpan(open), tokenSpan(close)) };
}
