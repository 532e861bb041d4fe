// Fuzzes the spec front end: token soups, random characters and mutated examples must never
// make checkSpec throw or hang, every diagnostic must point inside the source, and formatting
// must be idempotent and keep the meaning. Reproduce a failure with MOEC_FUZZ_SEED=<seed>.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { formatDiagnostic, hasErrors, spanAt, type Diagnostic } from '../../compiler/spec/diagnostics.js';
import { formatSpec } from '../../compiler/spec/format.js';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import { topLevelBlocks, type BlockSchema } from '../../compiler/spec/schema.js';
import { seededRandom as prng } from '../support/seeded-random.js';

const seed = process.env['MOEC_FUZZ_SEED'] ? Number(process.env['MOEC_FUZZ_SEED']) : Math.floor(Math.random() * 2 ** 31);
console.log(`spec fuzz seed: ${seed} (rerun with MOEC_FUZZ_SEED=${seed})`);

const examplesDir = fileURLToPath(new URL('../../examples', import.meta.url));
const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.moe')).sort().map((f) => readFileSync(join(examplesDir, f), 'utf8'));

function schemaNames(blocks: readonly BlockSchema[]): string[] {
  return blocks.flatMap((b) => [b.name, ...b.fields.map((f) => f.name), ...(b.fields.flatMap((f) => f.qualifiers ?? [])), ...schemaNames(b.blocks)]);
}
const categories = ['norm', 'attention', 'router', 'activation', 'quant', 'rounding'] as const;
const kinds = categories.flatMap((c) => defaultRegistry.list(c));
const words = [...new Set([
  ...schemaNames(topLevelBlocks), ...kinds.map((k) => k.name), ...kinds.flatMap((k) => k.params.map((p) => p.name)),
  'true', 'false', 'nearest', 'webgpu', 'f16', 'sigmoid', 'x', '_', 'modle', 'expertz',
])];
const numbers = ['0', '1', '2', '8', '32', '1024', '4096', '14 * 1024', '1e-5', '1e6', '1.5', '1_000', '0.0', '1e999', '99999999999999999999',
  '9007199254740993', '1' + '0'.repeat(400), '007', '1e+3', '3.'];
const strings = ['"a"', '""', '"mixtral"', '"\\n\\t\\u00e9"', '"\\q"', '"unterminated', '"tab\tinside"', '"😀"'];
const punctuation = ['{', '}', '(', ')', '[', ']', '=', ',', ';', '+', '-', '*', '/'];
const trivia = [' ', ' ', '\n', '\n\n', '\t', '\r\n', '\r', '// comment\n', '/* block */', '/* multi\n line */', '/* unterminated', '//'];

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, n: number) => Math.floor(r() * n);

function tokenSoup(r: Rand): string {
  const out: string[] = [];
  for (let n = int(r, 200) + 1; n > 0; n--) {
    const x = r();
    out.push(x < 0.35 ? pick(r, words) : x < 0.45 ? pick(r, numbers) : x < 0.5 ? pick(r, strings) : x < 0.85 ? pick(r, punctuation) : pick(r, trivia));
    if (r() < 0.6) out.push(' ');
  }
  return out.join('');
}

function randomCharacters(r: Rand): string {
  const out: string[] = [];
  for (let n = int(r, 300); n > 0; n--) {
    const x = r();
    if (x < 0.5) out.push(String.fromCharCode(32 + int(r, 95)));
    else if (x < 0.6) out.push(String.fromCharCode(int(r, 32)));
    else if (x < 0.75) out.push(String.fromCharCode(int(r, 0x10000))); // includes lone surrogates
    else if (x < 0.8) out.push(String.fromCodePoint(0x10000 + int(r, 0x100000)));
    else out.push(pick(r, ['\u2028', '\u00a0', '\ufeff', '\u0000', '\r', '\n', '"', '\\', '/*', '*/']));
  }
  return out.join('');
}

/** Words, numbers, strings, comments, single characters and whitespace runs of a source. */
const tokenPattern = /\/\/[^\n\r]*|\/\*[\s\S]*?\*\/|"(?:[^"\\\n\r]|\\.)*"|\d[\w.]*|[A-Za-z_]\w*|\s+|[\s\S]/g;

function mutate(r: Rand, source: string): string {
  let s = source;
  for (let n = int(r, 5) + 1; n > 0; n--) {
    const tokens = s.match(tokenPattern) ?? [];
    const i = int(r, tokens.length + 1);
    const at = int(r, s.length + 1);
    switch (int(r, 11)) {
      case 0: tokens.splice(i, 1); s = tokens.join(''); break;
      case 1: tokens.splice(i, 0, tokens[i] ?? ''); s = tokens.join(''); break;
      case 2: { const j = int(r, tokens.length); [tokens[i], tokens[j]] = [tokens[j]!, tokens[i]!]; s = tokens.join(''); break; }
      case 3: tokens.splice(i, 0, pick(r, [...punctuation, ...words, ...numbers, ...strings, ...trivia])); s = tokens.join(''); break;
      case 4: s = s.slice(0, at) + s.slice(at + 1 + int(r, 3)); break;
      case 5: s = s.slice(0, at) + s.slice(at, at + 1 + int(r, 20)) + s.slice(at); break;
      case 6: s = s.slice(0, at); break;
      case 7: s = s.slice(0, at) + pick(r, ['{', '}', '(', ')', '[', ']', '}}}', '{{{']) + s.slice(at); break;
      case 8: s = s.replace(/\d+/, pick(r, ['0', '1e999', '99999999999999999999', '9007199254740993', '1' + '0'.repeat(300), '3 / 2', '7 - 8'])); break;
      case 9: { const depth = pick(r, [50, 99, 100, 101, 500, 2000]); const [o, c] = pick(r, [['(', ')'], ['[', ']'], ['x {', '}'], ['-', '']] as const);
        s = s.replace(/= (\S+)/, (_m, v: string) => `= ${o.repeat(depth)}${v}${r() < 0.8 ? c.repeat(depth) : ''}`); break; }
      case 10: s = s.slice(0, at) + pick(r, [...trivia, '@', '\u00e9', '😀', '\u0000', ';;;', ',']) + s.slice(at); break;
    }
  }
  return s;
}

/** Inputs no random walk is likely to reach: very deep, very long, very large. */
function pathologicalInputs(): string[] {
  const field = (value: string) => `model "m" {\n  hidden = ${value}\n}\n`;
  const inputs: string[] = [];
  for (const depth of [2000, 20_000]) {
    inputs.push(field('('.repeat(depth) + '1' + ')'.repeat(depth)), field('['.repeat(depth) + '1' + ']'.repeat(depth)), field('-'.repeat(depth) + '1'));
    inputs.push(field('('.repeat(depth)), field('['.repeat(depth)), 'model "m" {' + ' x {'.repeat(depth) + '}'.repeat(depth) + '}', '{'.repeat(depth), '}'.repeat(depth));
    inputs.push(field(Array(depth).fill('1').join(' + ')), field(Array(depth).fill('2').join(' - ')), field(`f(${'a = f('.repeat(depth)}`));
  }
  inputs.push(field(`[${Array(20_000).fill('1').join(', ')}]`), field('9'.repeat(100_000)), '/*'.repeat(10_000), '"'.repeat(10_000), '@'.repeat(100_000));
  inputs.push(Array(5000).fill('model "m" { hidden = 1 }').join('\n'), Array(20_000).fill('= ').join(''));
  const base = examples[0] ?? field('1');
  inputs.push(base.replace(/layers = \d+/, 'layers = 1000000000'), base.replace(/layers = \d+/, 'layers = 99999999999999999999'));
  inputs.push(base.replace(/hidden = \d+/, 'hidden = 1024 * 1024 * 1024 * 1024 * 1024'), base.replace(/hidden = \d+/, 'hidden = 1e308 * 10'));
  return inputs;
}

/** What is wrong with a diagnostic's location or text, if anything (plain checks: expect() per field is slow). */
function locationProblem(d: Diagnostic, source: string, file: string): string | undefined {
  const lines = source.split(/\r\n|\r|\n/).length;
  const { line, col, endLine, endCol, start, end } = d.span;
  if (d.file !== file) return `file ${d.file}`;
  if (d.message.trim() === '') return 'empty message';
  if (!(line >= 1 && line <= lines + 1)) return `line ${line} outside 1..${lines + 1}`;
  if (!(col >= 1)) return `column ${col}`;
  if (!(endLine > line || (endLine === line && endCol >= col))) return `ends before it starts (${endLine}:${endCol})`;
  if (!(start >= 0 && start <= end && end <= source.length)) return `offsets ${start}..${end} outside 0..${source.length}`;
  // Line and column agree with the offset (tokens are placed by the lexer, the rest by spanAt).
  const at = spanAt(source, start);
  if (at.line !== line || at.col !== col) return `${line}:${col} is not offset ${start}, which is ${at.line}:${at.col}`;
  if (!formatDiagnostic(d, source).startsWith(`${file}:${line}:${col}: ${d.severity}: ${d.message}\n`)) return 'formatDiagnostic header';
  return undefined;
}

/** What a spec means, without where things are written: the config, or the error messages; and its comments. */
function meaning(source: string, file: string): unknown {
  const { ast, config, diagnostics } = checkSpec(source, file);
  // The formatter trims line comments and writes \n line breaks; it keeps everything else.
  const comments = ast.comments.map((c) => c.text.replace(/\r\n?/g, '\n').trimEnd());
  return { meaning: config ?? diagnostics.map((d) => d.message).sort(), comments };
}

describe(`spec front end under fuzzing (seed ${seed})`, () => {
  const r = prng(seed);
  const cases: { name: string; source: string }[] = [
    ...Array.from({ length: 1000 }, (_, i) => ({ name: `token soup ${i}`, source: tokenSoup(r) })),
    ...Array.from({ length: 600 }, (_, i) => ({ name: `characters ${i}`, source: randomCharacters(r) })),
    ...Array.from({ length: 2000 }, (_, i) => ({ name: `mutated example ${i}`, source: mutate(r, pick(r, examples)) })),
    ...pathologicalInputs().map((source, i) => ({ name: `pathological ${i}`, source })),
  ];

  it('checkSpec never throws (a hang fails by the timeout) and reports errors at valid locations', { timeout: 100_000 }, () => {
    const file = 'fuzz.moe';
    let slowest = { ms: 0, name: '' };
    let formatted = 0;
    for (const { name, source } of cases) {
      const context = `${name} (seed ${seed}): ${JSON.stringify(source.slice(0, 300))}`;
      const started = performance.now();
      let result;
      try {
        result = checkSpec(source, file);
      } catch (e) {
        throw new Error(`checkSpec threw on ${context}: ${(e as Error).stack}`);
      }
      const ms = performance.now() - started;
      if (ms > slowest.ms) slowest = { ms, name };
      for (const d of result.diagnostics) {
        const problem = locationProblem(d, source, file);
        if (problem) expect.fail(`bad diagnostic (${problem}): ${JSON.stringify(d)} on ${context}`);
      }
      const once = formatSpec(source, file);
      if (once.text === undefined) {
        if (!hasErrors(once.diagnostics)) expect.fail(`formatSpec gave no text and no error on ${context}`);
        continue;
      }
      formatted++;
      const twice = formatSpec(once.text, file);
      expect(twice.text, `formatting is not idempotent on ${context}`).toBe(once.text);
      expect(meaning(once.text, file), `formatting changed the meaning or the comments of ${context}`).toEqual(meaning(source, file));
    }
    console.log(`spec fuzz: ${cases.length} inputs, ${formatted} formatted, slowest ${slowest.ms.toFixed(1)} ms (${slowest.name})`);
    expect(formatted).toBeGreaterThan(100); // the mutations must reach the formatter, not only the error paths
  });
});
