// Errors a spec author can make: each reported once, at the right place, with a hint, and as
// many as possible in one run.
import { describe, expect, it } from 'vitest';
import { isMoeLayer, type ModelConfig } from '../../ir/model-config.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { firstDenseLayer } from '../../compiler/spec/cross-checks.js';
import { formatDiagnostic, type Diagnostic } from '../../compiler/spec/diagnostics.js';
import { maxNesting } from '../../compiler/spec/parse.js';

const valid = `model "m" {
  hidden = 4096
  vocab = 32000
  layers = 4
  norm = rmsnorm(eps = 1e-5)
  attention = gqa(heads = 32, kv_heads = 8)
  moe {
    experts = 8
    top_k = 2
    router = softmax_topk(renormalize = true)
    expert = swiglu(intermediate = 14 * 1024)
  }
}

compile {
  dtype = f16
  quantize experts = int4(group = 32)
}
`;

/** The valid spec with `from` replaced by `to` (which must occur). */
function edit(from: string, to: string, source = valid): string {
  expect(source, `the spec contains ${JSON.stringify(from)}`).toContain(from);
  return source.replace(from, to);
}

function errors(source: string): Diagnostic[] {
  return checkSpec(source, 'm.moe').diagnostics;
}

/** The one diagnostic of a source, as `line:col message | hint`, plus the text under its span. */
function onlyError(source: string): { at: string; text: string } {
  const diagnostics = errors(source);
  expect(diagnostics.map((d) => d.message)).toHaveLength(1);
  const d = diagnostics[0]!;
  return { at: `${d.span.line}:${d.span.col} ${d.message}${d.hint === undefined ? '' : ` | ${d.hint}`}`, text: source.slice(d.span.start, d.span.end) };
}

describe('formatDiagnostic', () => {
  it('prints file:line:col, the line, a caret under the span and the hint', () => {
    const source = edit('  hidden = 4096', '  hiden = 4096');
    const [d] = errors(source);
    expect(formatDiagnostic(d!, source)).toBe([
      'm.moe:2:3: error: unknown field `hiden` in `model`',
      '    hiden = 4096',
      '    ^~~~~',
      '  hint: did you mean `hidden`?',
    ].join('\n'));
  });

  it('puts the caret under a span in the middle of a line and leaves out a missing hint', () => {
    const source = edit('layers = 4', 'layers = "4"');
    expect(formatDiagnostic(errors(source)[0]!, source)).toBe([
      'm.moe:4:12: error: expected a number, found a string',
      '    layers = "4"',
      '             ^~~',
    ].join('\n'));
  });

  it('points one past the last token at end of file', () => {
    const source = 'model "m" {\n  hidden = 1';
    const [d, ...rest] = errors(source);
    expect(rest).toEqual([]);
    expect(formatDiagnostic(d!, source)).toBe([
      "m.moe:2:13: error: expected '}' but found end of file",
      '    hidden = 1',
      '              ^',
    ].join('\n'));
  });

  it('underlines to the end of the line for a span over several lines', () => {
    const source = 'compile {\n  dtype = f16\n  quantize experts = int4(\n    group = 32)\n}\n';
    const [d] = errors(source);
    expect(d!.message).toBe('the spec has no model block');
    const spanning: Diagnostic = { ...d!, span: { start: 0, end: 20, line: 3, col: 3, endLine: 4, endCol: 16 }, message: 'spans two lines' };
    expect(formatDiagnostic(spanning, source).split('\n').slice(1, 3)).toEqual(['    quantize experts = int4(', '    ^~~~~~~~~~~~~~~~~~~~~~~~']);
  });

  it('prints the right line for \\r\\n and lone \\r line breaks', () => {
    for (const nl of ['\r\n', '\r']) {
      const source = valid.replace(/\n/g, nl).replace('layers = 4', 'layers = 0');
      expect(formatDiagnostic(errors(source)[0]!, source).split('\n').slice(0, 3)).toEqual([
        'm.moe:4:12: error: layers = 0 is out of range', '    layers = 0', '             ^',
      ]);
    }
  });
});

describe('syntax errors', () => {
  it('reports every error of a file in one run (parser recovery)', () => {
    const source = 'model "m" {\n  hidden = 4096\n  vocab = = 32000\n  layers = 2 +\n}\ncompile {\n  dtype = ]\n}\n';
    expect(errors(source).map((d) => `${d.span.line}:${d.span.col} ${d.message}`)).toEqual([
      "3:11 expected a value but found '='",
      "5:1 expected a value but found '}'",
      "7:11 expected a value but found ']'",
    ]);
  });

  it('reports unclosed brackets where the closer was expected', () => {
    const source = 'model "m" {\n  hidden = (4096\n}\nmodel "n" {\n  vocab = [1, 2\n}\n';
    expect(errors(source).map((d) => `${d.span.line}:${d.span.col} ${d.message}`)).toEqual([
      "3:1 expected ')' but found '}'",
      "6:1 expected ']' but found '}'",
    ]);
  });

  it('reports characters outside the language', () => {
    expect(onlyError('model "m" { hidden = 4096 @ }')).toEqual({ at: "1:27 unexpected character '@'", text: '@' });
    expect(errors('model "m\n" {}')[0]).toMatchObject({ message: `unexpected character '"'`, hint: 'strings are written in double quotes and end on the same line', span: { line: 1, col: 7 } });
  });

  it('reports what JSON strings do not allow, once each, at the character', () => {
    const escapes = 'escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\u with 4 hex digits';
    expect(onlyError('model "a\\qb" {}')).toEqual({ at: `1:9 unknown escape \`\\q\` in a string | ${escapes}`, text: '\\q' });
    expect(onlyError('model "a\\u12" {}')).toEqual({ at: `1:9 unknown escape \`\\u\` in a string | ${escapes}`, text: '\\u' });
    expect(onlyError('model "tab\there" {}')).toEqual({ at: '1:11 control character U+0009 in a string | write it as an escape, such as \\t for a tab', text: '\t' });
    expect(errors('model "a\\\\q \\" \\u00e9 \\/" {}').filter((d) => d.message.endsWith('in a string'))).toEqual([]);
  });

  it('refuses nesting deeper than the limit, with one diagnostic at the first token too deep', () => {
    const deep = (n: number) => edit('layers = 4', `layers = ${'('.repeat(n)}4${')'.repeat(n)}`);
    expect(errors(deep(maxNesting - 10)).map((d) => d.message)).toEqual([]);
    const { at, text } = onlyError(deep(5000));
    expect(at).toBe(`4:${12 + maxNesting - 1} nesting is too deep: more than ${maxNesting} levels of brackets, blocks and operators | split the expression up; a spec needs only a few levels`);
    expect(text).toBe('(');
    expect(onlyError(edit('layers = 4', `layers = ${Array(5000).fill('1').join(' + ')}`)).at).toContain('nesting is too deep');
    expect(onlyError(`model "m" {${' x {'.repeat(5000)}`).at).toContain('nesting is too deep');
  });
});

describe('semantic errors', () => {
  const cases: { name: string; from: string; to: string; at: string; text: string }[] = [
    { name: 'unknown field (did you mean)', from: '  hidden = 4096', to: '  hiden = 4096', at: '2:3 unknown field `hiden` in `model` | did you mean `hidden`?', text: 'hiden' },
    { name: 'misspelt router kind', from: 'softmax_topk(', to: 'softmax_topq(', at: '10:14 unknown router kind `softmax_topq` | did you mean `softmax_topk`?', text: 'softmax_topq' },
    { name: 'top_k above experts', from: 'top_k = 2', to: 'top_k = 9', at: '9:13 top_k = 9 is more than experts = 8 | allowed range: 1..8', text: '9' },
    { name: 'heads not divisible by kv_heads', from: 'kv_heads = 8', to: 'kv_heads = 6', at: '6:31 gqa: heads = 32 is not divisible by kv_heads = 6 | kv_heads must divide heads', text: 'kv_heads = 6' },
    {
      name: 'quantization group not dividing the reduced dimension', from: 'group = 32', to: 'group = 48',
      at: '17:27 quantization group 48 does not divide the reduced dimension 4096 and 14336 of the experts weights | groups that divide 4096, 14336: 8, 16, 32, 64, 128, 256',
      text: 'group = 48',
    },
    { name: 'missing required field', from: '  vocab = 32000\n', to: '', at: '1:1 `model` is missing the field `vocab` | Vocabulary size (vocab_size).', text: 'model' },
    { name: 'duplicate field', from: '  layers = 4\n', to: '  layers = 4\n  layers = 8\n', at: '5:3 duplicate field `layers` | first set at line 4', text: 'layers' },
    { name: 'unknown nested block', from: '  moe {', to: '  mo {', at: '7:3 unknown block `mo` inside `model` | did you mean `moe`?', text: 'mo' },
    { name: 'unknown top-level block', from: 'compile {', to: 'compiel {', at: '15:1 unknown block `compiel` at the top level | did you mean `compile`?', text: 'compiel' },
    { name: 'duplicate block', from: 'compile {', to: 'compile {}\ncompile {', at: '16:1 duplicate `compile` block | the first one is at line 15; a file describes one model', text: 'compile' },
    { name: 'unknown qualifier', from: 'quantize experts', to: 'quantize expert', at: '17:12 `quantize` cannot apply to `expert` | did you mean `experts`?', text: 'expert' },
    {
      name: 'missing qualifier', from: 'quantize experts', to: 'quantize',
      at: '17:3 `quantize` needs to say what it applies to | write `quantize <experts | shared | dense | attention | router | embeddings | lm_head> = ...`', text: 'quantize',
    },
    { name: 'qualifier on a plain field', from: 'dtype = f16', to: 'dtype fast = f16', at: '16:9 `dtype` takes no qualifier | write `dtype = ...`', text: 'fast' },
    { name: 'string for a number', from: 'layers = 4', to: 'layers = "4"', at: '4:12 expected a number, found a string', text: '"4"' },
    { name: 'name for a number', from: 'layers = 4', to: 'layers = four', at: '4:12 expected a number, found the name `four`', text: 'four' },
    { name: 'number below the range', from: 'layers = 4', to: 'layers = 0', at: '4:12 layers = 0 is out of range | allowed range: 1..4096', text: '0' },
    { name: 'number at an exclusive minimum', from: 'eps = 1e-5', to: 'eps = 0', at: '5:24 eps = 0 is out of range | must be greater than 0', text: '0' },
    { name: 'number for a bool', from: 'renormalize = true', to: 'renormalize = 1', at: '10:41 renormalize must be true or false, found a number', text: '1' },
    { name: 'unknown enum value', from: 'dtype = f16', to: 'dtype = f64', at: '16:11 unknown dtype `f64` | did you mean `f32`?', text: 'f64' },
    { name: 'number for a kind', from: 'router = softmax_topk(renormalize = true)', to: 'router = 3', at: '10:14 router must name a router kind, like `softmax_topk(...)`', text: '3' },
    { name: 'number for a list', from: 'top_k = 2', to: 'top_k = 2\n    dense_layers = 3', at: '10:20 dense_layers must be a list like [1, 2]', text: '3' },
    { name: 'unknown kind parameter', from: 'renormalize = true', to: 'renormalise = true', at: '10:27 `softmax_topk` has no parameter `renormalise` | did you mean `renormalize`?', text: 'renormalise' },
    { name: 'parameter given twice', from: 'renormalize = true', to: 'renormalize = true, renormalize = false', at: '10:47 parameter `renormalize` is given twice | first given at line 10', text: 'renormalize' },
    { name: 'positional argument', from: 'softmax_topk(renormalize = true)', to: 'softmax_topk(true)', at: '10:27 arguments of `softmax_topk` are written by name | write e.g. `renormalize = ...`; parameters: renormalize, groups, topk_groups, scale, null_experts, bias', text: 'true' },
    { name: 'missing kind parameter', from: 'swiglu(intermediate = 14 * 1024)', to: 'swiglu()', at: '11:14 `swiglu` needs the parameter `intermediate` | Width of the MLP (per expert for routed experts).', text: 'swiglu()' },
    { name: 'non-integer division', from: 'hidden = 4096', to: 'hidden = 4096 / 3', at: '2:12 hidden must be a whole number, got 1365.3333333333333', text: '4096 / 3' },
    { name: 'division by zero', from: 'hidden = 4096', to: 'hidden = 4096 / (2 - 2)', at: '2:19 division by zero', text: '(2 - 2)' },
    { name: 'whole number beyond 2^53', from: 'layers = 4', to: 'layers = 99999999999999999999', at: '4:12 layers = 100000000000000000000 is too large | whole numbers go up to 9007199254740991', text: '99999999999999999999' },
    { name: 'number literal beyond float range', from: 'eps = 1e-5', to: 'eps = 1e999', at: '5:24 number 1e999 is too large', text: '1e999' },
    { name: 'arithmetic beyond float range', from: 'eps = 1e-5', to: 'eps = 1e300 * 1e300', at: '5:24 the result is too large', text: '1e300 * 1e300' },
    { name: 'model without a name', from: 'model "m"', to: 'model', at: '1:1 the `model` block needs a name | write `model "my-model" { ... }`', text: 'model' },
    { name: 'compile with a name', from: 'compile {', to: 'compile "c" {', at: '15:9 the `compile` block takes no name | write `compile { ... }`', text: '"c"' },
    { name: 'first_layer past the last layer', from: 'top_k = 2', to: 'top_k = 2\n    first_layer = 4', at: '10:19 first_layer = 4 leaves no MoE layer in a 4-layer model | allowed range: 0..3', text: '4' },
    { name: 'offset never matching', from: 'top_k = 2', to: 'top_k = 2\n    every = 2\n    offset = 2', at: '11:14 offset = 2 never matches with every = 2 | allowed range: 0..1', text: '2' },
    { name: 'dense layer past the last layer', from: 'top_k = 2', to: 'top_k = 2\n    dense_layers = [1, 7]', at: '10:20 dense_layers names layer 7, but the model has layers 0..3', text: '[1, 7]' },
    { name: 'shared gate without a shared expert', from: 'top_k = 2', to: 'top_k = 2\n    shared_gate = sigmoid', at: '10:19 shared_gate needs a shared expert | add `shared = swiglu(intermediate = ...)` or remove shared_gate', text: 'sigmoid' },
    {
      name: 'dense layers without a dense block', from: 'top_k = 2', to: 'top_k = 2\n    every = 2',
      at: '1:1 layer 1 is not an MoE layer, so the model needs a `dense { mlp = ... }` block | add `dense { mlp = swiglu(intermediate = ...) }` inside the model block', text: 'model',
    },
    { name: 'no model block', from: valid.slice(0, valid.indexOf('compile')), to: '', at: '1:1 the spec has no model block | start with `model "name" { hidden = ... vocab = ... layers = ... }`', text: '' },
  ];

  it('checks rope kinds: the name, the factor lists and their length against the rotary dim', () => {
    const withRope = (rope: string) => edit('  moe {', `  rope = ${rope}\n  moe {`);
    expect(errors(withRope('yarn(factor = 32, original_context = 4096, truncate = false)'))).toEqual([]);
    expect(onlyError(withRope('yarm(factor = 4)'))).toEqual({ at: '7:10 unknown rotary embedding kind `yarm` | did you mean `yarn`?', text: 'yarm' });
    const pairs = (n: number) => `[${Array.from({ length: n }, () => '1.5').join(', ')}]`;
    expect(onlyError(withRope(`longrope(short_factor = ${pairs(64)}, long_factor = ${pairs(63)}, original_context = 4096)`)).at).toBe('7:356 longrope: long_factor has 63 numbers, short_factor 64 | both hold one number per rotary pair');
    const short = errors(withRope(`longrope(short_factor = ${pairs(4)}, long_factor = ${pairs(4)}, original_context = 4096)`)).map((d) => d.message);
    expect(short).toEqual(['longrope: short_factor has 4 numbers, the rotary dim 128 has 64 pairs', 'longrope: long_factor has 4 numbers, the rotary dim 128 has 64 pairs']);
    expect(onlyError(withRope('longrope(short_factor = [1, -2], long_factor = [1, 2], original_context = 8)'))).toEqual({ at: '7:38 an element of short_factor = -2 is out of range | must be greater than 0', text: '-2' });
  });

  it('accepts the spec the cases start from', () => {
    expect(errors(valid)).toEqual([]);
  });

  for (const c of cases) {
    it(c.name, () => {
      expect(onlyError(edit(c.from, c.to))).toEqual({ at: c.at, text: c.text });
    });
  }

  it('reports top_k above experts alongside a misspelt field elsewhere', () => {
    const source = edit('top_k = 2', 'top_k = 9', edit('  hidden = 4096', '  hiden = 4096'));
    expect(errors(source).map((d) => d.message)).toEqual([
      'unknown field `hiden` in `model`',
      'top_k = 9 is more than experts = 8',
    ]);
  });

  it('reports errors of every block in one run, in source order', () => {
    const source = edit('kv_heads = 8', 'kv_heads = 6', edit('softmax_topk(', 'softmax_topq(', edit('top_k = 2', 'top_k = 9\n    topk = 1', edit('dtype = f16', 'dtype = f64'))));
    expect(errors(source).map((d) => `${d.span.line}:${d.span.col} ${d.message}`)).toEqual([
      '6:31 gqa: heads = 32 is not divisible by kv_heads = 6',
      '9:13 top_k = 9 is more than experts = 8',
      '10:5 unknown field `topk` in `moe`',
      '11:14 unknown router kind `softmax_topq`',
      '17:11 unknown dtype `f64`',
    ]);
  });

  it('reports a misspelt required field once, not also as missing', () => {
    expect(errors(edit('top_k = 2', 'topk = 2')).map((d) => d.message)).toEqual(['unknown field `topk` in `moe`']);
  });

  it('bounds the layer count, and finds the first dense layer of a large model from the rule', () => {
    expect(onlyError(edit('layers = 4', 'layers = 4000000000000000')).at).toContain('allowed range: 1..4096');
    const large = edit('layers = 4', 'layers = 4096');
    expect(errors(large)).toEqual([]);
    expect(onlyError(edit('top_k = 2', 'top_k = 2\n    every = 2', large)).at).toContain('layer 1 is not an MoE layer');
  });
});

describe('firstDenseLayer', () => {
  it('agrees with isMoeLayer on random layer rules', () => {
    for (let trial = 0; trial < 2000; trial++) {
      const r = (n: number) => Math.floor(Math.random() * n);
      const layers = 1 + r(12);
      const every = 1 + r(4);
      const config = {
        layers,
        moe: { firstLayer: r(3), every, offset: r(every), denseLayers: Array.from({ length: r(3) }, () => r(14)) },
      } as unknown as ModelConfig;
      if (r(10) === 0) delete (config as { moe?: unknown }).moe;
      const expected = Array.from({ length: layers }, (_, i) => i).find((i) => !isMoeLayer(config, i));
      expect(firstDenseLayer(config), JSON.stringify(config)).toBe(expected);
    }
  });
});
