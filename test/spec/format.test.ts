// `moec fmt`: the canonical layout, where comments end up, idempotence, meaning kept, and the CLI.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fmtCommand } from '../../compiler/cli/fmt-command.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { formatSpec } from '../../compiler/spec/format.js';

/** Formats, and checks on the way that formatting the result changes nothing. */
function fmt(source: string): string {
  const { text, diagnostics } = formatSpec(source, 't.moe');
  expect(diagnostics).toEqual([]);
  expect(formatSpec(text!, 't.moe').text, 'formatting twice changes nothing').toBe(text);
  return text!;
}

const lines = (...l: string[]) => l.join('\n') + '\n';

describe('formatSpec layout', () => {
  it('prints blocks, fields and values canonically', () => {
    const source = 'model   "m"{hidden=4096;vocab = 32000 layers=(2+2)*8\nnorm=rmsnorm( eps=1e-5 )\n' +
      'attention = gqa(heads=32,kv_heads=8)\n  moe{experts=8 top_k=2 router=softmax_topk(renormalize=true)\nexpert=swiglu(intermediate=14*1024)\ndense_layers=[ 0,1 ,2]}}' +
      'compile{quantize   experts=int4(group=32);token_rounding=sonic(mode=nearest)}';
    expect(fmt(source)).toBe(lines(
      'model "m" {',
      '  hidden = 4096',
      '  vocab = 32000',
      '  layers = (2 + 2) * 8',
      '  norm = rmsnorm(eps = 1e-5)',
      '  attention = gqa(heads = 32, kv_heads = 8)',
      '  moe {',
      '    experts = 8',
      '    top_k = 2',
      '    router = softmax_topk(renormalize = true)',
      '    expert = swiglu(intermediate = 14 * 1024)',
      '    dense_layers = [0, 1, 2]',
      '  }',
      '}',
      '',
      'compile {',
      '  quantize experts = int4(group = 32)',
      '  token_rounding = sonic(mode = nearest)',
      '}',
    ));
  });

  it('keeps number literals, parentheses and signs as written', () => {
    expect(fmt('b { x = 1_000 + 0.5e-3 - (((2))) * -(3) / --4 }')).toBe(lines('b {', '  x = 1_000 + 0.5e-3 - (((2))) * -(3) / --4', '}'));
  });

  it('re-quotes strings and labels as JSON', () => {
    expect(fmt('model "a\\u0022b\\/c" { s = "\\u00e9\\t" e = "" }')).toBe(lines('model "a\\"b/c" {', '  s = "é\\t"', '  e = ""', '}'));
  });

  it('prints empty blocks, lists and calls compactly', () => {
    expect(fmt('compile {   }\nb { l = [ ] c = relu_gate( ) }')).toBe(lines('compile {}', '', 'b {', '  l = []', '  c = relu_gate()', '}'));
  });

  it('writes \\n line breaks whatever the input used, and nothing for an empty file', () => {
    expect(fmt('b {\r\n  x = 1\r\n}\r\n')).toBe('b {\n  x = 1\n}\n');
    expect(fmt('b {\r  x = 1\r}')).toBe('b {\n  x = 1\n}\n');
    expect(fmt('')).toBe('');
    expect(fmt(' \n\n ')).toBe('');
  });

  it('gives no text, only the syntax errors, for a source that does not parse', () => {
    const { text, diagnostics } = formatSpec('model "m" {\n  hidden = \n}\n', 't.moe');
    expect(text).toBeUndefined();
    expect(diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.message}`)).toEqual(["3:1 expected a value but found '}'"]);
  });
});

describe('formatSpec comments', () => {
  it('keeps leading, trailing, closing and end-of-file comments in place', () => {
    const source = [
      '// file header',
      '',
      '// the model',
      'model "m" { // opens the model',
      '  hidden = 4096   // trailing, trimmed   ',
      '  /* block comment */',
      '  vocab = 32000',
      '  moe {',
      '    experts = 8',
      '    // before the closing brace',
      '  } // after moe',
      '  // last in model',
      '}',
      '// about compile',
      'compile {',
      '}',
      '/* end of',
      '   file */',
    ].join('\n');
    expect(fmt(source)).toBe(lines(
      '// file header',
      '',
      '// the model',
      'model "m" { // opens the model',
      '  hidden = 4096 // trailing, trimmed',
      '  /* block comment */',
      '  vocab = 32000',
      '  moe {',
      '    experts = 8',
      '    // before the closing brace',
      '  } // after moe',
      '  // last in model',
      '}',
      '',
      '// about compile',
      'compile {}',
      '',
      '/* end of',
      '   file */',
    ));
  });

  it('keeps at most one blank line between groups, none after `{` or before `}`', () => {
    const source = 'b {\n\n\n  // group one\n  x = 1\n\n\n\n  // group two\n\n  y = 2\n  z = 3\n\n\n}\n\n\n\nc {}\n';
    expect(fmt(source)).toBe(lines('b {', '  // group one', '  x = 1', '', '  // group two', '', '  y = 2', '  z = 3', '}', '', 'c {}'));
  });

  it('moves comments from inside a field or block header above it', () => {
    const source = [
      'model /* header */ "m" {',
      '  attention = gqa(heads = 32, // query heads',
      '                  kv_heads = 8 /* shared */) // trailing',
      '}',
    ].join('\n');
    expect(fmt(source)).toBe(lines(
      '/* header */',
      'model "m" {',
      '  // query heads',
      '  /* shared */',
      '  attention = gqa(heads = 32, kv_heads = 8) // trailing',
      '}',
    ));
  });

  it('puts a comment between two items of one line above the second', () => {
    expect(fmt('b { x = 1 /* about y */ y = 2 /* a */ /* b */ }')).toBe(lines('b {', '  x = 1', '  /* about y */', '  y = 2 /* a */ /* b */', '}'));
  });

  it('keeps a comment in an otherwise empty block inside it', () => {
    expect(fmt('b { /* nothing yet */ }')).toBe(lines('b { /* nothing yet */', '}'));
    expect(fmt('b {\n  // nothing yet\n}')).toBe(lines('b {', '  // nothing yet', '}'));
  });

  it('keeps every comment of a file, and only those', () => {
    const source = '/*a*/ b /*b*/ { /*c*/ x /*d*/ = /*e*/ f( /*f*/ g = [1, /*g*/ 2] ) /*h*/ ; /*i*/ } /*j*/ // k\n// l';
    const comments = (s: string) => checkSpec(s, 't.moe').ast.comments.map((c) => c.text);
    expect(comments(fmt(source))).toEqual(comments(source));
  });
});

describe('formatSpec keeps the meaning of every example', () => {
  const dir = fileURLToPath(new URL('../../examples', import.meta.url));
  const examples = readdirSync(dir).filter((f) => f.endsWith('.moe')).sort();

  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  for (const name of examples) {
    it(name, () => {
      const source = readFileSync(join(dir, name), 'utf8');
      const text = fmt(source);
      const before = checkSpec(source, name);
      const after = checkSpec(text, name);
      expect(after.diagnostics.map((d) => d.message)).toEqual(before.diagnostics.map((d) => d.message));
      expect(after.config).toEqual(before.config);
      expect(after.ast.comments.map((c) => c.text.trimEnd())).toEqual(before.ast.comments.map((c) => c.text.trimEnd()));
      expect(fmt(text)).toBe(text);
      expect(source, `${name} is not in canonical form: run moec fmt --write examples/${name}`).toBe(text);
    });
  }
});

describe('moec fmt', () => {
  let dir: string;
  let out: string;
  let err: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'moec-fmt-'));
    out = '';
    err = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true; });
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => { err += String(s); return true; });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  const messy = 'b{x=1}';
  const tidy = 'b {\n  x = 1\n}\n';
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('prints the formatted spec', async () => {
    const path = file('a.moe', messy);
    expect(await fmtCommand.run([path])).toBe(0);
    expect(out).toBe(tidy);
    expect(readFileSync(path, 'utf8')).toBe(messy);
  });

  it('--check lists the files that are not formatted and exits 1', async () => {
    const a = file('a.moe', messy);
    const b = file('b.moe', tidy);
    expect(await fmtCommand.run(['--check', a, b])).toBe(1);
    expect(out).toBe(`${a}: not formatted\n`);
    expect(await fmtCommand.run(['--check', b])).toBe(0);
  });

  it('--write rewrites only the files that change', async () => {
    const a = file('a.moe', messy);
    const b = file('b.moe', tidy);
    const past = new Date(Date.now() - 60_000);
    utimesSync(b, past, past);
    expect(await fmtCommand.run(['--write', a, b])).toBe(0);
    expect(readFileSync(a, 'utf8')).toBe(tidy);
    expect(readFileSync(b, 'utf8')).toBe(tidy);
    expect(Math.round(statSync(b).mtimeMs)).toBe(past.getTime()); // untouched (mtimeMs is a float)
    expect(out).toBe(`${a}: formatted\n`);
    expect(readdirSync(dir).sort()).toEqual(['a.moe', 'b.moe']); // no temporary files left
  });

  it('reports syntax errors, exits 1 and writes nothing', async () => {
    const good = file('good.moe', messy);
    const bad = file('bad.moe', 'b {\n  x = \n}\n');
    expect(await fmtCommand.run(['--write', good, bad])).toBe(1);
    expect(err).toContain(`${bad}:3:1: error: expected a value but found '}'\n  }\n  ^\n`);
    expect(readFileSync(good, 'utf8')).toBe(messy);
    expect(readFileSync(bad, 'utf8')).toBe('b {\n  x = \n}\n');
    expect(out).toBe('');
  });

  it('rejects --write with --check, and no files', async () => {
    await expect(async () => fmtCommand.run(['--write', '--check', file('a.moe', tidy)])).rejects.toThrow('cannot be combined');
    await expect(async () => fmtCommand.run([])).rejects.toThrow('no spec given');
  });
});
