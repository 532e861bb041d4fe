// `quantize experts = mixed(bits, choices, trace)`: what the language accepts and the errors it
// gives (a line and column each): only for routed experts, choices a list of formats (not mixed
// again), each choice's group dividing the experts' widths, bits and trace required.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';

// tiny-mixtral with a 128-wide intermediate, so groups of 32 divide every expert width.
const tiny = readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'tiny-mixtral.moe'), 'utf8').replace('intermediate = 120', 'intermediate = 128');
const withCompile = (line: string) => tiny.replace('compile {', `compile {\n  ${line}`);
const compileLine = withCompile('').split('\n').findIndex((l) => l.startsWith('compile {')) + 2;
/** Each diagnostic as `column message`, all on the inserted line. */
const messages = (line: string) => checkSpec(withCompile(line), 'tiny.moe').diagnostics.map((d) => {
  expect(d.span.line).toBe(compileLine);
  return `${d.span.col} ${d.message}`;
});

describe('mixed(...)', () => {
  it('resolves its choices as quantization kinds with their defaults', () => {
    const { config, diagnostics } = checkSpec(withCompile('quantize experts = mixed(bits = 3.5, choices = [int2, int4(group = 8)], trace = "t.json")'), 'tiny.moe');
    expect(diagnostics).toEqual([]);
    expect(config!.compile.quantize.experts).toEqual({
      kind: 'mixed',
      params: { bits: 3.5, choices: [{ kind: 'int2', params: { group: 32 } }, { kind: 'int4', params: { group: 8 } }], trace: 't.json' },
    });
    expect(config!.compile.expertFormats).toBeUndefined();
  });

  it('defaults its choices to int2, int4 and int8, all in groups of 32', () => {
    const { config } = checkSpec(withCompile('quantize experts = mixed(bits = 4, trace = "t.json")'), 'tiny.moe');
    expect(config!.compile.quantize.experts!.params['choices']).toEqual(['int2', 'int4', 'int8'].map((kind) => ({ kind, params: { group: 32 } })));
  });

  it('refuses what it cannot do, at the place', () => {
    expect(messages('quantize attention = mixed(bits = 4, trace = "t.json")')).toEqual([
      expect.stringMatching(/^\d+ mixed\(\.\.\.\) chooses a format per routed expert, so it applies to `quantize experts` of a model with a moe block, not attention$/),
    ]);
    expect(messages('quantize experts = mixed(bits = 4, choices = [int4, mixed(bits = 2, trace = "u")], trace = "t.json")')).toEqual([
      expect.stringMatching(/^\d+ mixed: a choice cannot itself be `mixed`$/),
    ]);
    expect(messages('quantize experts = mixed(bits = 4, choices = [int4, nf5], trace = "t.json")')).toEqual([expect.stringMatching(/^55 unknown quantization kind `nf5`$/)]);
    expect(messages('quantize experts = mixed(bits = 4, choices = int4, trace = "t.json")')).toEqual([expect.stringMatching(/choices must be a list like \[int2, int4\(group = 64\)\]$/)]);
    expect(messages('quantize experts = mixed(bits = 0, trace = "t.json")')).toEqual([expect.stringMatching(/bits = 0 is out of range/)]);
    expect(messages('quantize experts = mixed(bits = 4)')).toEqual([expect.stringMatching(/`mixed` needs the parameter `trace`/)]);
    // int8's default group 128 does not divide the 64-wide hidden size: the error points at that choice.
    expect(messages('quantize experts = mixed(bits = 4, choices = [int4(group = 8), int8], trace = "t.json")')).toEqual([
      '66 quantization group 128 does not divide the reduced dimension 64 of the experts weights',
    ]);
  });
});
