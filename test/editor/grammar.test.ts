// The TextMate grammar, tokenized as VS Code does (vscode-textmate + the oniguruma WASM), checked
// on a sample and against the parser on every example: each comment, number, string, field
// name, block keyword and kind call the AST has gets the grammar's scope for it.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Expr, Item, Span } from '../../compiler/spec/ast.js';
import { parseSpec } from '../../compiler/spec/parse.js';

const require = createRequire(import.meta.url);
const grammarPath = join(import.meta.dirname, '../../editor/vscode/syntaxes/moe.tmLanguage.json');
const examples = join(import.meta.dirname, '../../examples');

interface ScopedToken { text: string; line: number; start: number; scopes: string[] }
type Tokenize = (text: string) => ScopedToken[];

let tokenize: Tokenize;

describe('TextMate grammar source.moe', () => {
  beforeAll(async () => {
    const oniguruma = await import('vscode-oniguruma');
    const textmate = await import('vscode-textmate');
    const wasm = readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
    await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
    const registry = new textmate.Registry({
      onigLib: Promise.resolve({
        createOnigScanner: (patterns: string[]) => new oniguruma.OnigScanner(patterns),
        createOnigString: (s: string) => new oniguruma.OnigString(s),
      }),
      loadGrammar: async (scope: string) => (scope === 'source.moe' ? textmate.parseRawGrammar(readFileSync(grammarPath, 'utf8'), grammarPath) : null),
    });
    const grammar = (await registry.loadGrammar('source.moe'))!;
    tokenize = (text) => {
      const out: ScopedToken[] = [];
      let state = textmate.INITIAL;
      text.split('\n').forEach((lineText, line) => {
        const result = grammar.tokenizeLine(lineText, state);
        for (const t of result.tokens) out.push({ text: lineText.slice(t.startIndex, t.endIndex), line, start: t.startIndex, scopes: t.scopes });
        state = result.ruleStack;
      });
      return out;
    };
  });

  /** The innermost scope of the token starting at the span (spans are 1-based). */
  const scopeAt = (tokens: ScopedToken[], span: Span) => tokens.find((t) => t.line === span.line - 1 && t.start <= span.col - 1 && span.col - 1 < t.start + t.text.length)?.scopes.at(-1);

  it('scopes a sample: comment, string, number, keyword, kind call, field, parameter, boolean', () => {
    const sample = [
      '// a comment',
      'model "tiny" {',
      '  hidden = 1_024',
      '  /* block',
      '     comment */',
      '  moe {',
      '    router = softmax_topk(renormalize = true)',
      '    expert = swiglu(intermediate = 4 * 256)',
      '  }',
      '}',
      'compile {',
      '  quantize dense = int8(group = 64)',
      '}',
    ].join('\n');
    const tokens = tokenize(sample);
    const scopeOf = (text: string, nth = 0) => tokens.filter((t) => t.text === text)[nth]?.scopes.at(-1);
    expect(scopeOf('//')).toBe('punctuation.definition.comment.moe');
    expect(scopeOf(' a comment')).toBe('comment.line.double-slash.moe');
    expect(tokens.find((t) => t.text.includes('block'))!.scopes).toContain('comment.block.moe');
    expect(tokens.find((t) => t.line === 4 && t.text.includes('comment'))!.scopes).toContain('comment.block.moe');
    expect(scopeOf('*/')).toBe('punctuation.definition.comment.end.moe');
    expect(tokens.find((t) => t.text.includes('tiny'))!.scopes).toContain('string.quoted.double.moe');
    expect(scopeOf('1_024')).toBe('constant.numeric.moe');
    expect(scopeOf('256')).toBe('constant.numeric.moe');
    for (const keyword of ['model', 'moe', 'compile']) expect(scopeOf(keyword)).toBe('keyword.other.block.moe');
    expect(scopeOf('softmax_topk')).toBe('entity.name.function.kind.moe');
    expect(scopeOf('int8')).toBe('entity.name.function.kind.moe');
    expect(scopeOf('hidden')).toBe('variable.other.property.moe');
    expect(scopeOf('quantize')).toBe('variable.other.property.moe');
    expect(scopeOf('dense')).toBe('variable.other.constant.qualifier.moe'); // a qualifier here, not the block keyword
    expect(scopeOf('renormalize')).toBe('variable.parameter.moe');
    expect(scopeOf('true')).toBe('constant.language.boolean.moe');
    expect(scopeOf('*')).toBe('keyword.operator.arithmetic.moe');
  });

  it('agrees with the parser on every example spec', () => {
    const files = readdirSync(examples).filter((f) => f.endsWith('.moe'));
    for (const file of files) {
      const text = readFileSync(join(examples, file), 'utf8').replace(/\r\n?/g, '\n');
      const { ast } = parseSpec(text, file);
      const tokens = tokenize(text);
      const expectScope = (span: Span, scope: string) => expect(scopeAt(tokens, span), `${file}:${span.line}:${span.col} ${text.slice(span.start, span.end)}`).toBe(scope);
      for (const c of ast.comments) expectScope(c.span, c.text.startsWith('//') ? 'punctuation.definition.comment.moe' : 'punctuation.definition.comment.begin.moe');
      const visitExpr = (e: Expr): void => {
        if (e.kind === 'number') expectScope(e.span, 'constant.numeric.moe');
        if (e.kind === 'string') expectScope(e.span, 'punctuation.definition.string.begin.moe');
        if (e.kind === 'call') {
          expectScope(e.calleeSpan, 'entity.name.function.kind.moe');
          for (const a of e.args) {
            if (a.nameSpan) expectScope(a.nameSpan, 'variable.parameter.moe');
            visitExpr(a.value);
          }
        }
        if (e.kind === 'list') e.items.forEach(visitExpr);
        if (e.kind === 'binary') [e.left, e.right].forEach(visitExpr);
        if (e.kind === 'paren') visitExpr(e.inner);
        if (e.kind === 'negate') visitExpr(e.operand);
      };
      const visit = (item: Item): void => {
        if (item.kind === 'block') {
          expectScope(item.typeSpan, 'keyword.other.block.moe');
          item.items.forEach(visit);
          return;
        }
        expectScope(item.nameSpan, 'variable.other.property.moe');
        if (item.qualifierSpan) expectScope(item.qualifierSpan, 'variable.other.constant.qualifier.moe');
        visitExpr(item.value);
      };
      ast.blocks.forEach(visit);
    }
  });
});
