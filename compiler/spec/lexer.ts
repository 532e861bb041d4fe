// Tokens of the .moe language. Names (blocks, fields, kinds, true/false) are all identifiers:
// meaning comes from the schema and the kind registry, so plugins never touch the grammar.
import { createToken, Lexer, type TokenType } from 'chevrotain';

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const LineComment = createToken({ name: 'LineComment', pattern: /\/\/[^\n\r]*/, group: 'comments' });
export const BlockComment = createToken({ name: 'BlockComment', pattern: /\/\*[\s\S]*?\*\//, group: 'comments', line_breaks: true });
// One line in double quotes; parse.ts reports what JSON's string syntax does not allow (`\q`, a raw tab).
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*"/ });
export const NumberLiteral = createToken({ name: 'NumberLiteral', pattern: /\d+(?:_\d+)*(?:\.\d+)?(?:[eE][+-]?\d+)?/ });
export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/ });
export const LCurly = createToken({ name: 'LCurly', pattern: '{', label: "'{'" });
export const RCurly = createToken({ name: 'RCurly', pattern: '}', label: "'}'" });
export const LParen = createToken({ name: 'LParen', pattern: '(', label: "'('" });
export const RParen = createToken({ name: 'RParen', pattern: ')', label: "')'" });
export const LBracket = createToken({ name: 'LBracket', pattern: '[', label: "'['" });
export const RBracket = createToken({ name: 'RBracket', pattern: ']', label: "']'" });
export const Equals = createToken({ name: 'Equals', pattern: '=', label: "'='" });
export const Comma = createToken({ name: 'Comma', pattern: ',', label: "','" });
export const Semicolon = createToken({ name: 'Semicolon', pattern: ';', label: "';'" });
export const Plus = createToken({ name: 'Plus', pattern: '+', label: "'+'" });
export const Minus = createToken({ name: 'Minus', pattern: '-', label: "'-'" });
export const Star = createToken({ name: 'Star', pattern: '*', label: "'*'" });
export const Slash = createToken({ name: 'Slash', pattern: '/', label: "'/'" });

// Order matters: comments before Slash.
export const allTokens: TokenType[] = [
  WhiteSpace, LineComment, BlockComment, StringLiteral, NumberLiteral, Identifier,
  LCurly, RCurly, LParen, RParen, LBracket, RBracket, Equals, Comma, Semicolon, Plus, Minus, Star, Slash,
];

export const moeLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: true });
