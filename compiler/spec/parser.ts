// The .moe grammar (a Chevrotain CstParser with error recovery, so one run reports every error):
//   file   := block*
//   block  := Identifier StringLiteral? '{' (item ';'?)* '}'
//   item   := block | field
//   field  := Identifier Identifier? '=' value
//   value  := sum | list
//   sum    := product (('+' | '-') product)*
//   product:= unary (('*' | '/') unary)*
//   unary  := '-' unary | atom
//   atom   := Number | String | Identifier ('(' args ')')? | '(' sum ')' | list
//   args   := (arg (',' arg)*)?      arg := (Identifier '=')? value
//   list   := '[' (value (',' value)*)? ']'
import { CstParser, type CstNode, type IToken } from 'chevrotain';
import {
  allTokens, Comma, Equals, Identifier, LBracket, LCurly, LParen, Minus, NumberLiteral, Plus, RBracket, RCurly, RParen,
  Semicolon, Slash, Star, StringLiteral,
} from './lexer.js';
import { moeErrorMessages } from './error-messages.js';

class MoeCstParser extends CstParser {
  constructor() {
    super(allTokens, { recoveryEnabled: true, maxLookahead: 3, errorMessageProvider: moeErrorMessages });
    this.performSelfAnalysis();
  }

  file = this.RULE('file', () => {
    this.MANY(() => this.SUBRULE(this.block));
  });

  block = this.RULE('block', () => {
    this.CONSUME(Identifier, { LABEL: 'type' });
    this.OPTION(() => this.CONSUME(StringLiteral, { LABEL: 'label' }));
    this.CONSUME(LCurly);
    this.MANY(() => {
      this.SUBRULE(this.item);
      this.OPTION2(() => this.CONSUME(Semicolon));
    });
    this.CONSUME(RCurly);
  });

  item = this.RULE('item', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.block) },
      { ALT: () => this.SUBRULE(this.field) },
    ]);
  });

  field = this.RULE('field', () => {
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.OPTION(() => this.CONSUME2(Identifier, { LABEL: 'qualifier' }));
    this.CONSUME(Equals);
    this.SUBRULE(this.value);
  });

  value = this.RULE('value', () => {
    this.SUBRULE(this.sum);
  });

  sum = this.RULE('sum', () => {
    this.SUBRULE(this.product, { LABEL: 'operands' });
    this.MANY(() => {
      this.OR([{ ALT: () => this.CONSUME(Plus, { LABEL: 'operators' }) }, { ALT: () => this.CONSUME(Minus, { LABEL: 'operators' }) }]);
      this.SUBRULE2(this.product, { LABEL: 'operands' });
    });
  });

  product = this.RULE('product', () => {
    this.SUBRULE(this.unary, { LABEL: 'operands' });
    this.MANY(() => {
      this.OR([{ ALT: () => this.CONSUME(Star, { LABEL: 'operators' }) }, { ALT: () => this.CONSUME(Slash, { LABEL: 'operators' }) }]);
      this.SUBRULE2(this.unary, { LABEL: 'operands' });
    });
  });

  unary = this.RULE('unary', () => {
    this.OR([
      { ALT: () => { this.CONSUME(Minus); this.SUBRULE(this.unary); } },
      { ALT: () => this.SUBRULE(this.atom) },
    ]);
  });

  atom = this.RULE('atom', () => {
    this.OR([
      { ALT: () => this.CONSUME(NumberLiteral) },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.SUBRULE(this.callOrName) },
      { ALT: () => { this.CONSUME(LParen); this.SUBRULE(this.sum); this.CONSUME(RParen); } },
      { ALT: () => this.SUBRULE(this.list) },
    ]);
  });

  callOrName = this.RULE('callOrName', () => {
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(LParen);
      this.OPTION2(() => {
        this.SUBRULE(this.arg);
        this.MANY(() => {
          this.CONSUME(Comma);
          this.SUBRULE2(this.arg);
        });
      });
      this.CONSUME(RParen);
    });
  });

  arg = this.RULE('arg', () => {
    this.OPTION(() => {
      this.CONSUME(Identifier, { LABEL: 'name' });
      this.CONSUME(Equals);
    });
    this.SUBRULE(this.value);
  });

  list = this.RULE('list', () => {
    this.CONSUME(LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.value);
      this.MANY(() => {
        this.CONSUME(Comma);
        this.SUBRULE2(this.value);
      });
    });
    this.CONSUME(RBracket);
  });
}

/** One parser instance is reused (Chevrotain's recommended pattern); `input` resets its state. */
export const moeParser = new MoeCstParser();

export function parseTokens(tokens: IToken[]): CstNode {
  moeParser.input = tokens;
  // Chevrotain signals each syntax error with an Error; their stack traces are never read, and
  // capturing them was most of the time spent on a file full of errors.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return moeParser.file();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}
