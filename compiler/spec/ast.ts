// The .moe syntax tree: a generic tree of blocks and fields. What the names mean is
// decided by the schema (schema.ts) and the kind registry (kinds/), not by the grammar.

/** A source range: offsets are 0-based and end-exclusive; lines and columns are 1-based. */
export interface Span {
  start: number;
  end: number;
  line: number;
  col: number;
  endLine: number;
  endCol: number;
}

export type BinaryOperator = '+' | '-' | '*' | '/';

export type Expr =
  | { kind: 'number'; value: number; text: string; span: Span }
  | { kind: 'string'; value: string; span: Span }
  | { kind: 'ident'; name: string; span: Span }
  | { kind: 'call'; callee: string; calleeSpan: Span; args: Arg[]; span: Span }
  | { kind: 'list'; items: Expr[]; span: Span }
  | { kind: 'binary'; op: BinaryOperator; left: Expr; right: Expr; span: Span }
  | { kind: 'negate'; operand: Expr; span: Span }
  | { kind: 'paren'; inner: Expr; span: Span };

/** `name = value` or positional `value` inside a call's parentheses. */
export interface Arg {
  name?: string;
  nameSpan?: Span;
  value: Expr;
  span: Span;
}

/** `name = value`, or `name qualifier = value` (e.g. `quantize experts = int4(group = 32)`). */
export interface Field {
  kind: 'field';
  name: string;
  nameSpan: Span;
  qualifier?: string;
  qualifierSpan?: Span;
  value: Expr;
  span: Span;
}

/** `type "label"? { items }` */
export interface Block {
  kind: 'block';
  type: string;
  typeSpan: Span;
  label?: string;
  labelSpan?: Span;
  items: Item[];
  span: Span;
}

export type Item = Field | Block;

export interface Comment {
  text: string;
  span: Span;
}

export interface SpecFile {
  file: string;
  source: string;
  blocks: Block[];
  comments: Comment[];
}
