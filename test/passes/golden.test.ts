// Golden tests per pass: test/passes/<pass>/<case>.moe is built, run through the pipeline up to
// and including <pass>, printed, and compared with <case>.expected.ir next to it. A case whose
// first line is `// layer: N` builds layer N's MoE block (what codegen compiles); the others the
// whole decoder. A mixed-precision case names each expert's format as the solver would have chosen
// it, one line per MoE layer: `// expert formats, layer N: int4, int2, ...` (names from the spec's
// mixed(choices = [...])). A case may set the target's decode rows (a tuning result): `// decode rows: N`.
// UPDATE_GOLDEN=1 npx vitest run test/passes rewrites the expected files (review the diff).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultPasses, defaultTarget, runPasses } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph, buildMoeBlockGraph } from '../../ir/build-model.js';
import { moduleOf } from '../../ir/graph.js';
import type { KindRef } from '../../ir/model-config.js';
import { printModule } from '../../ir/print.js';

const root = new URL('.', import.meta.url).pathname;
const passDirs = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);

describe.each(passDirs)('pass %s', (passName) => {
  const index = defaultPasses.findIndex((p) => p.name === passName);
  const cases = readdirSync(join(root, passName)).filter((f) => f.endsWith('.moe'));

  it('is a pass of the pipeline and has golden cases', () => {
    expect(index, `test/passes/${passName} names no pass in compiler/pipeline.ts`).toBeGreaterThanOrEqual(0);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('%s', (file) => {
    const path = join(root, passName, file);
    const source = readFileSync(path, 'utf8');
    const { config, diagnostics } = checkSpec(source, path);
    expect(diagnostics).toEqual([]);
    const layer = /^\/\/ layer: (\d+)/.exec(source)?.[1];
    const choices = (config!.compile.quantize.experts?.params['choices'] ?? []) as KindRef[];
    for (const [, l, names] of source.matchAll(/^\/\/ expert formats, layer (\d+): (.+)$/gm)) {
      (config!.compile.expertFormats ??= {})[Number(l)] = names!.split(',').map((n) => choices.find((c) => c.kind === n.trim())!);
    }
    const graph = layer === undefined ? buildModelGraph(config!) : buildMoeBlockGraph(config!, Number(layer));
    const decodeRows = /^\/\/ decode rows: (\d+)$/m.exec(source)?.[1];
    const target = decodeRows === undefined ? {} : { target: defaultTarget({ decodeRows: Number(decodeRows) }) };
    const module = runPasses(moduleOf(graph), config!, { passes: defaultPasses.slice(0, index + 1), verifyEach: true, ...target });
    const actual = printModule(module);
    const expectedPath = path.replace(/\.moe$/, '.expected.ir');
    if (process.env['UPDATE_GOLDEN']) writeFileSync(expectedPath, actual);
    expect(existsSync(expectedPath), `${expectedPath} is missing: run with UPDATE_GOLDEN=1 and review it`).toBe(true);
    expect(actual).toBe(readFileSync(expectedPath, 'utf8'));
  });
});
