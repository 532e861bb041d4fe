// The .moe grammar: what the parser builds from each construct, and the config it evaluates to.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Block, Expr, Field, Item } from '../../compiler/spec/ast.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { parseSpec } from '../../compiler/spec/parse.js';

function parseOk(source: string) {
  const { ast, diagnostics } = parseSpec(source, 'test.moe');
  expect(diagnostics).toEqual([]);
  return ast;
}

function fieldsOf(block: Block): Field[] {
  return block.items.filter((i): i is Field => i.kind === 'field');
}

/** The value of `x = <expr>` in a one-field block. */
function exprOf(expr: string): Expr {
  const ast = parseOk(`b { x = ${expr} }`);
  return fieldsOf(ast.blocks[0]!)[0]!.value;
}

/** An expression tree without spans, as a compact S-expression, to compare shapes. */
function shape(e: Expr): string {
  switch (e.kind) {
    case 'number': return e.text;
    case 'string': return JSON.stringify(e.value);
    case 'ident': return e.name;
    case 'call': return `${e.callee}(${e.args.map((a) => (a.name ? `${a.name}=${shape(a.value)}` : shape(a.value))).join(' ')})`;
    case 'list': return `[${e.items.map(shape).join(' ')}]`;
    case 'binary': return `(${e.op} ${shape(e.left)} ${shape(e.right)})`;
    case 'negate': return `(neg ${shape(e.operand)})`;
    case 'paren': return `{${shape(e.inner)}}`;
  }
}

describe('parseSpec', () => {
  it('reads the Mixtral example into blocks and fields', () => {
    const source = readFileSync(fileURLToPath(new URL('../../examples/mixtral-8x7b.moe', import.meta.url)), 'utf8');
    const ast = parseOk(source);
    expect(ast.blocks.map((b) => [b.type, b.label])).toEqual([['model', 'mixtral-8x7b'], ['compile', undefined]]);
    const model = ast.blocks[0]!;
    expect(fieldsOf(model).map((f) => f.name)).toEqual(['hidden', 'vocab', 'layers', 'norm', 'attention']);
    const moe = model.items.find((i): i is Block => i.kind === 'block')!;
    expect(moe.type).toBe('moe');
    expect(shape(fieldsOf(moe).find((f) => f.name === 'expert')!.value)).toBe('swiglu(intermediate=(* 14 1024))');
    expect(ast.comments.map((c) => c.text)).toEqual(['// Mixtral 8x7B (mistralai/Mixtral-8x7B-v0.1): 8 SwiGLU experts, top-2 softmax routing.']);
  });

  it('parses arithmetic with precedence, left associativity, signs and parentheses', () => {
    expect(shape(exprOf('14 * 1024'))).toBe('(* 14 1024)');
    expect(shape(exprOf('1 + 2 * 3'))).toBe('(+ 1 (* 2 3))');
    expect(shape(exprOf('8 - 2 - 1'))).toBe('(- (- 8 2) 1)');
    expect(shape(exprOf('64 / 4 / 2'))).toBe('(/ (/ 64 4) 2)');
    expect(shape(exprOf('(1 + 2) * 3'))).toBe('(* {(+ 1 2)} 3)');
    expect(shape(exprOf('-4 - -2'))).toBe('(- (neg 4) (neg 2))');
    expect(shape(exprOf('--1'))).toBe('(neg (neg 1))');
  });

  it('keeps number literals as written and reads their value', () => {
    for (const [text, value] of [['1e-5', 1e-5], ['1e6', 1e6], ['1_000_000', 1_000_000], ['0.01', 0.01], ['2E+3', 2000]] as const) {
      const e = exprOf(text);
      expect(e).toMatchObject({ kind: 'number', text, value });
    }
  });

  it('parses lists, including empty and nested ones', () => {
    expect(shape(exprOf('[1, 2, 3]'))).toBe('[1 2 3]');
    expect(shape(exprOf('[]'))).toBe('[]');
    expect(shape(exprOf('[[1], [2 * 2, x]]'))).toBe('[[1] [(* 2 2) x]]');
  });

  it('parses kind calls with named, positional and no arguments, and bare names', () => {
    expect(shape(exprOf('softmax_topk(renormalize = true, groups = 8)'))).toBe('softmax_topk(renormalize=true groups=8)');
    expect(shape(exprOf('f(1, b = 2)'))).toBe('f(1 b=2)');
    expect(shape(exprOf('relu_gate()'))).toBe('relu_gate()');
    expect(shape(exprOf('exact'))).toBe('exact');
  });

  it('reads strings with JSON escapes', () => {
    expect(exprOf('"a\\"b\\\\c\\n\\u00e9"')).toMatchObject({ kind: 'string', value: 'a"b\\c\né' });
    expect(parseOk('model "mixtral \\"8x7b\\"" {}').blocks[0]!.label).toBe('mixtral "8x7b"');
  });

  it('parses qualified fields', () => {
    const [field] = fieldsOf(parseOk('compile {\n  quantize experts = int4(group = 32)\n}').blocks[0]!);
    expect(field).toMatchObject({ name: 'quantize', qualifier: 'experts', qualifierSpan: { line: 2, col: 12 } });
    expect(shape(field!.value)).toBe('int4(group=32)');
  });

  it('accepts `;` separators and several fields on one line', () => {
    const ast = parseOk('model "m" { hidden = 1; vocab = 2 layers = 3; moe { experts = 4 }; norm = rmsnorm }');
    const names = (items: Item[]) => items.map((i) => (i.kind === 'field' ? i.name : i.type));
    expect(names(ast.blocks[0]!.items)).toEqual(['hidden', 'vocab', 'layers', 'moe', 'norm']);
  });

  it('collects line and block comments apart from the tree', () => {
    const source = '// one\nmodel "m" { /* two\n three */ hidden = 1 // four\n}\n';
    const ast = parseOk(source);
    expect(ast.comments.map((c) => [c.text, c.span.line, c.span.col, c.span.endLine])).toEqual([
      ['// one', 1, 1, 1], ['/* two\n three */', 2, 13, 3], ['// four', 3, 22, 3],
    ]);
    expect(fieldsOf(ast.blocks[0]!).map((f) => f.name)).toEqual(['hidden']);
  });

  it('gives 1-based lines and columns and end-exclusive offsets', () => {
    const source = 'model "m" {\n  hidden = 14 * 1024\n}';
    const [field] = fieldsOf(parseOk(source).blocks[0]!);
    expect(field!.nameSpan).toEqual({ start: 14, end: 20, line: 2, col: 3, endLine: 2, endCol: 9 });
    expect(source.slice(field!.value.span.start, field!.value.span.end)).toBe('14 * 1024');
    expect(source.slice(field!.span.start, field!.span.end)).toBe('hidden = 14 * 1024');
  });

  it('counts \\r\\n and a lone \\r as line breaks', () => {
    for (const nl of ['\r\n', '\r']) {
      const [field] = fieldsOf(parseOk(`model "m" {${nl}${nl}  hidden = 1${nl}}`).blocks[0]!);
      expect(field!.nameSpan).toMatchObject({ line: 3, col: 3 });
    }
  });

  it('parses an empty file and a comment-only file to no blocks', () => {
    expect(parseOk('').blocks).toEqual([]);
    expect(parseOk('// nothing yet\n').blocks).toEqual([]);
  });
});

describe('checkSpec', () => {
  it('evaluates the Mixtral example to its config', () => {
    const source = readFileSync(fileURLToPath(new URL('../../examples/mixtral-8x7b.moe', import.meta.url)), 'utf8');
    const { config, diagnostics } = checkSpec(source, 'mixtral-8x7b.moe');
    expect(diagnostics).toEqual([]);
    expect(config).toMatchObject({
      name: 'mixtral-8x7b', hidden: 4096, vocab: 32000, layers: 32, tieEmbeddings: false,
      norm: { kind: 'rmsnorm', params: { eps: 1e-5 } },
      attention: { kind: 'gqa', params: { heads: 32, kv_heads: 8, head_dim: 128, rope_theta: 1e6 } },
      moe: { experts: 8, topK: 2, router: { kind: 'softmax_topk', params: { renormalize: true, groups: 1, topk_groups: 1 } }, expert: { kind: 'swiglu', params: { intermediate: 14336 } } },
      compile: { target: 'webgpu', dtype: 'f32', quantize: { experts: { kind: 'int4', params: { group: 32 } } }, tokenRounding: { kind: 'exact', params: {} }, context: 4096 },
    });
  });

  it('evaluates constant arithmetic exactly', () => {
    const spec = (hidden: string) => `model "m" {\n hidden = ${hidden}\n vocab = 10\n layers = 1\n norm = rmsnorm\n attention = gqa(heads = 2)\n dense { mlp = swiglu(intermediate = 8) }\n}`;
    for (const [expr, value] of [['14 * 1024', 14336], ['(2 + 2) * 2', 8], ['2 + 2 * 2', 6], ['64 / 4 / 2', 8], ['10 - 4 - 2', 4], ['-(-6)', 6], ['1_024', 1024]] as const) {
      const { config, diagnostics } = checkSpec(spec(expr), 'm.moe');
      expect(diagnostics, expr).toEqual([]);
      expect(config!.hidden, expr).toBe(value);
    }
  });
});
