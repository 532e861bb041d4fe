// Where the cursor is, for completion: in which block, after which `field =`, inside which
// kind's parentheses. Read from the compiler's own tokens, because while a user types the
// text is incomplete and parser recovery reshapes it (a half-typed field name becomes a
// top-level block); everything else in the editor reads the AST.
import type { IToken } from 'chevrotain';
import { moeLexer } from '../../compiler/spec/lexer.js';

/** A block open at the cursor, with the names already written in it (before and after the cursor). */
export interface OpenBlock {
  /** Block types from the top: [] for the file, ['model', 'moe'] inside `moe`. */
  path: string[];
  /** `experts`, or `quantize experts` for a qualified field. */
  fields: Set<string>;
  blocks: Set<string>;
}

/** What a value belongs to: a block's field, or a parameter of a kind call. */
export type ValueOwner =
  | { kind: 'field'; block: OpenBlock; field: string; qualifier?: string }
  | { kind: 'param'; call: OpenCall; param: string };

/** `callee(` open at the cursor, with the parameter names already given. */
export interface OpenCall {
  callee: string;
  owner: ValueOwner;
  args: Set<string>;
}

export type CursorSlot =
  | { kind: 'item'; block: OpenBlock }
  | { kind: 'qualifier'; block: OpenBlock; field: string }
  | { kind: 'value'; owner: ValueOwner }
  | { kind: 'param-name'; call: OpenCall }
  | { kind: 'none' };

export interface CursorContext {
  slot: CursorSlot;
  /** The identifier being typed (empty at a fresh position); completion replaces it. */
  word: { start: number; end: number };
  /** The next non-blank character after the word, e.g. `(` when the kind already has arguments. */
  nextChar: string;
}

type ExprState = 'operand' | 'after-operand' | 'after-ident';
type BlockState = 'start' | 'name' | 'label' | 'qualifier' | ExprState;
type CallState = 'param-start' | 'param-ident' | 'param-end' | ExprState;

type Frame =
  | { kind: 'block'; block: OpenBlock; state: BlockState; name?: string; qualifier?: string; ident?: string }
  | { kind: 'call'; call: OpenCall; state: CallState; param?: string; ident?: string }
  | { kind: 'group' };

export function cursorContextAt(text: string, offset: number): CursorContext {
  const lexed = moeLexer.tokenize(text);
  const word = wordAt(lexed.tokens, offset);
  const nextChar = text.slice(word.end).match(/\S/)?.[0] ?? '';
  const insideComment = (lexed.groups['comments'] ?? []).some((c: IToken) => c.startOffset < offset && offset < c.startOffset + c.image.length + (c.image.startsWith('//') ? 1 : 0));
  const insideString = lexed.tokens.some((t) => t.tokenType.name === 'StringLiteral' && t.startOffset < offset && offset < t.startOffset + t.image.length);

  const reader = new FrameReader();
  let slot: CursorSlot | undefined;
  for (const t of lexed.tokens) {
    if (slot === undefined && t.startOffset >= word.start) slot = reader.slot();
    if (t.startOffset === word.start && word.end > word.start) continue; // the word being typed
    reader.feed(t);
  }
  slot ??= reader.slot();
  return { slot: insideComment || insideString ? { kind: 'none' } : slot, word, nextChar };
}

/** The identifier the cursor is in or just after. */
function wordAt(tokens: readonly IToken[], offset: number): { start: number; end: number } {
  const t = tokens.find((k) => k.tokenType.name === 'Identifier' && k.startOffset < offset && offset <= k.startOffset + k.image.length);
  return t ? { start: t.startOffset, end: t.startOffset + t.image.length } : { start: offset, end: offset };
}

/**
 * Follows the statement structure token by token: blocks (`name "label"? {`), fields
 * (`name qualifier? = value`), values (operands joined by operators) and calls (`kind(p = v, ...)`).
 */
class FrameReader {
  private readonly frames: Frame[] = [{ kind: 'block', block: { path: [], fields: new Set(), blocks: new Set() }, state: 'start' }];
  private previous: IToken | undefined;

  private top(): Frame {
    return this.frames[this.frames.length - 1]!;
  }

  slot(): CursorSlot {
    const f = this.top();
    if (f.kind === 'group') return { kind: 'none' };
    if (f.kind === 'block') {
      switch (f.state) {
        case 'start': case 'after-operand': case 'after-ident': return { kind: 'item', block: f.block };
        case 'name': return { kind: 'qualifier', block: f.block, field: f.name! };
        case 'operand': return { kind: 'value', owner: this.fieldOwner(f) };
        default: return { kind: 'none' };
      }
    }
    if (f.state === 'param-start') return { kind: 'param-name', call: f.call };
    if (f.state === 'operand' && f.param) return { kind: 'value', owner: { kind: 'param', call: f.call, param: f.param } };
    return { kind: 'none' };
  }

  feed(t: IToken): void {
    const previous = this.previous;
    this.previous = t;
    const type = t.tokenType.name;
    if (type === 'RCurly') return this.closeBlock();
    if (type === 'LCurly' && this.top().kind !== 'block') this.reopenBlockAfter(previous);
    const f = this.top();
    if (f.kind === 'group') {
      if (type === 'LParen' || type === 'LBracket') this.frames.push({ kind: 'group' });
      else if (type === 'RParen' || type === 'RBracket') this.frames.pop();
      return;
    }
    if (f.state === 'operand' || f.state === 'after-operand' || f.state === 'after-ident') {
      if (this.continueValue(f, t)) return;
      f.state = f.kind === 'block' ? 'start' : 'param-end'; // the value ended before this token
    }
    if (f.kind === 'block') this.blockStep(f, t);
    else this.callStep(f, t);
  }

  private fieldOwner(f: Extract<Frame, { kind: 'block' }>): ValueOwner {
    return f.qualifier === undefined ? { kind: 'field', block: f.block, field: f.name! } : { kind: 'field', block: f.block, field: f.name!, qualifier: f.qualifier };
  }

  /** `}` closes the innermost block, and any call or bracket left open inside it. */
  private closeBlock(): void {
    while (this.frames.length > 1) {
      const f = this.frames.pop()!;
      if (f.kind === 'block') break;
    }
    const parent = this.top();
    if (parent.kind === 'block') parent.state = 'start';
  }

  /** A `{` inside an unclosed `(` or `[`: the value was cut off, and `name {` opens a block. */
  private reopenBlockAfter(previous: IToken | undefined): void {
    while (this.top().kind !== 'block') this.frames.pop();
    const f = this.top() as Extract<Frame, { kind: 'block' }>;
    if (previous?.tokenType.name !== 'Identifier') return;
    f.name = previous.image;
    f.qualifier = undefined;
    f.state = 'name';
  }

  private blockStep(f: Extract<Frame, { kind: 'block' }>, t: IToken): void {
    const type = t.tokenType.name;
    if (f.state === 'start') {
      if (type !== 'Identifier') return;
      f.name = t.image;
      f.qualifier = undefined;
      f.state = 'name';
      return;
    }
    if (f.state === 'name' && type === 'Identifier') {
      f.qualifier = t.image;
      f.state = 'qualifier';
    } else if (f.state === 'name' && type === 'StringLiteral') {
      f.state = 'label';
    } else if ((f.state === 'name' || f.state === 'qualifier') && type === 'Equals') {
      f.block.fields.add(f.qualifier === undefined ? f.name! : `${f.name} ${f.qualifier}`);
      f.state = 'operand';
    } else if ((f.state === 'name' || f.state === 'label') && type === 'LCurly') {
      f.block.blocks.add(f.name!);
      f.state = 'start';
      this.frames.push({ kind: 'block', block: { path: [...f.block.path, f.name!], fields: new Set(), blocks: new Set() }, state: 'start' });
    } else {
      f.state = 'start'; // not a field or block after all: read the token as a fresh start
      this.blockStep(f, t);
    }
  }

  private callStep(f: Extract<Frame, { kind: 'call' }>, t: IToken): void {
    const type = t.tokenType.name;
    if (type === 'RParen') {
      this.frames.pop();
      return;
    }
    switch (f.state) {
      case 'param-start':
        if (type === 'Identifier') {
          f.ident = t.image;
          f.state = 'param-ident';
        } else if (type !== 'Comma') {
          f.param = undefined; // a positional value
          f.state = 'operand';
          this.continueValue(f, t);
        }
        return;
      case 'param-ident':
        if (type === 'Equals') {
          f.param = f.ident!;
          f.call.args.add(f.param);
          f.state = 'operand';
        } else {
          f.param = undefined;
          f.state = 'after-ident';
          if (!this.continueValue(f, t)) {
            f.state = 'param-end';
            this.callStep(f, t);
          }
        }
        return;
      case 'param-end':
        if (type === 'Comma') {
          f.param = undefined;
          f.state = 'param-start';
        }
    }
  }

  /** One token of a value; false when the token cannot continue it (the value ended). */
  private continueValue(f: Extract<Frame, { kind: 'block' | 'call' }>, t: IToken): boolean {
    const type = t.tokenType.name;
    if (f.state === 'operand') {
      if (type === 'Minus') return true;
      if (type === 'NumberLiteral' || type === 'StringLiteral') f.state = 'after-operand';
      else if (type === 'Identifier') {
        f.state = 'after-ident';
        f.ident = t.image;
      } else if (type === 'LParen' || type === 'LBracket') {
        f.state = 'after-operand';
        this.frames.push({ kind: 'group' });
      } else return false;
      return true;
    }
    if (f.state === 'after-ident' && type === 'LParen') {
      f.state = 'after-operand';
      const owner: ValueOwner = f.kind === 'block' ? this.fieldOwner(f) : { kind: 'param', call: f.call, param: f.param ?? '' };
      this.frames.push({ kind: 'call', call: { callee: f.ident!, owner, args: new Set() }, state: 'param-start' });
      return true;
    }
    if (type === 'Plus' || type === 'Minus' || type === 'Star' || type === 'Slash') {
      f.state = 'operand';
      return true;
    }
    return false;
  }
}
