// Short parser messages in the words a spec author uses, instead of Chevrotain's token dumps.
import type { IParserErrorMessageProvider, IToken, TokenType } from 'chevrotain';

const ruleWords: Record<string, string> = {
  file: 'a block such as `model "name" { ... }` or `compile { ... }`',
  block: 'a block',
  item: 'a field (`name = value`) or a nested block',
  field: 'a field (`name = value`)',
  value: 'a value',
  sum: 'a value',
  product: 'a value',
  unary: 'a value',
  atom: 'a value (a number, a string, a name, a call like `int4(group = 32)`, or a list)',
  callOrName: 'a name',
  arg: 'an argument (`name = value`)',
  list: 'a list `[a, b]`',
};

function describe(token: IToken): string {
  return token.tokenType.name === 'EOF' ? 'end of file' : `'${token.image}'`;
}

function tokenLabel(type: TokenType): string {
  if (typeof type.LABEL === 'string') return type.LABEL;
  const names: Record<string, string> = { Identifier: 'a name', NumberLiteral: 'a number', StringLiteral: 'a string' };
  return names[type.name] ?? type.name;
}

export const moeErrorMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    return `expected ${tokenLabel(expected)} but found ${describe(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `unexpected ${describe(firstRedundant)} after the last block`;
  },
  buildNoViableAltMessage({ actual, ruleName }) {
    return `expected ${ruleWords[ruleName] ?? ruleName} but found ${describe(actual[0]!)}`;
  },
  buildEarlyExitMessage({ actual, ruleName }) {
    return `expected ${ruleWords[ruleName] ?? ruleName} but found ${describe(actual[0]!)}`;
  },
};
