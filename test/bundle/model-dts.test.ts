// model.d.ts without ts-morph at compile time: the spec's part is laid out as ts-morph formats it,
// and the build's copy of the runtime types is refused, with what to run, when missing or stale.
// (compile.test.ts type-checks a whole bundle's model.d.ts against a consumer program.)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Project } from 'ts-morph';
import { afterAll, describe, expect, it } from 'vitest';
import { modelDtsHead } from '../../codegen/bundle/model-dts.js';
import { readRuntimeApi, RUNTIME_API_FILE } from '../../codegen/bundle/runtime-api.js';
import type { BundleData } from '../../runtime/bundle.js';

const work = mkdtempSync(join(tmpdir(), 'moec-dts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const bundleData = (config: Record<string, unknown>, moeLayers: number[]): BundleData => ({
  moecVersion: '9.9.9', specSha256: 'ab'.repeat(32), config: { name: 'odd', hidden: 8, compile: { dtype: 'f32' }, ...config },
  moeLayers, plans: {}, planTemplates: [], kernels: {}, features: [],
});

describe('model.d.ts head', () => {
  it('is unchanged by the formatter the ts-morph emitter used, for odd keys, empty values and no MoE layer', () => {
    const odd = { 'kv-heads': 2, nested: { empty: {}, list: [], deep: { x: -1.5e-7, s: 'a "q"', t: true, n: null } }, layers: [0, 5, 7] };
    for (const data of [bundleData(odd, []), bundleData(odd, [1, 3])]) {
      const head = modelDtsHead(data);
      const file = new Project({ useInMemoryFileSystem: true }).createSourceFile('model.d.ts', head);
      file.formatText({ indentSize: 2, convertTabsToSpaces: true });
      expect(file.getFullText()).toBe(head);
    }
    expect(modelDtsHead(bundleData({}, []))).toContain('export type MoeLayer = never;');
  });
});

describe('the build\'s runtime types', () => {
  it('are there and match the runtime sources (run `npm run build` after editing runtime/)', () => {
    expect(readRuntimeApi().declared).toContain('load');
  });

  it('missing: says to run npm run build', () => {
    expect(() => readRuntimeApi(join(work, 'empty'))).toThrow(/runtime-api\.d\.ts\.json is missing: run `npm run build`/);
  });

  it('stale (a runtime source changed since): says which and to run npm run build', () => {
    const root = join(work, 'stale');
    mkdirSync(join(root, 'runtime'), { recursive: true });
    writeFileSync(join(root, 'runtime', 'plan.ts'), 'export interface RowRange { begin: number }\n');
    mkdirSync(dirname(join(root, RUNTIME_API_FILE)), { recursive: true });
    writeFileSync(join(root, RUNTIME_API_FILE), JSON.stringify({ inputs: { 'runtime/plan.ts': '0'.repeat(64), 'runtime/gone.ts': '1'.repeat(64) }, declared: [], text: '' }));
    expect(() => readRuntimeApi(root)).toThrow(/stale \(runtime\/plan\.ts changed since\): run `npm run build`/);
  });
});
