// The tuning cache without a GPU: a template change invalidates its entries, a damaged file is
// reported with its path and ignored, files merge by adapter, writes leave no temporary behind.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { compileMoeBlock } from '../../compiler/moe-block-plan.js';
import { tunedTargetFor } from '../../compiler/tune/apply-tuning.js';
import { familyShapes } from '../../compiler/tune/family-shapes.js';
import { gemmTileCandidates, gemmTileRefusal } from '../../compiler/tune/search-space.js';
import { readKernelTemplate } from '../../compiler/tune/template-hash.js';
import { cacheFileOf, readTuningCache, readTuningFile, tuningCacheDir, writeTuningFile } from '../../compiler/tune/tuning-cache.js';
import { printModule } from '../../ir/print.js';
import { adapterKey, type AdapterIdentity } from '../../runtime/tuning/adapter-identity.js';
import { adapterSection, emptyTuningFile, mergeTuningFiles, type TuningEntry, type TuningFile } from '../../runtime/tuning/tuning-file.js';

const spec = readFileSync(new URL('../../examples/tiny-mixtral.moe', import.meta.url), 'utf8');
const config = checkSpec(spec, 'tiny-mixtral.moe').config!;
const dir = mkdtempSync(join(tmpdir(), 'moec-tune-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256, maxStorageBufferBindingSize: 134217728 };
const adapter = (description: string): AdapterIdentity => ({ vendor: 'acme', architecture: 'rdna9', device: '0x1', description, limits, features: ['shader-f16'] });
const tile = { bm: 32, bn: 32, bk: 16, tm: 4, tn: 2 };

/** A file with a tuned gate/up tile for tiny-mixtral's shape, hashed with the current templates. */
function tunedFile(id: AdapterIdentity): TuningFile {
  const shape = familyShapes(compileMoeBlock(config, 0).plan).find((s) => s.family === 'grouped_gemm.gate_up')!;
  const entry: TuningEntry = {
    family: 'grouped_gemm.gate_up', shape: shape.shape, tokens: 64, templateHash: shape.templateHash, unit: 'ms',
    default: { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 }, config: { ...tile }, kept: 'tuned', defaultMs: 2, tunedMs: 1, noise: 0.03,
    done: true, measured: [{ config: { ...tile }, ms: 1 }], refused: [], updated: new Date(0).toISOString(),
  };
  const file = emptyTuningFile();
  adapterSection(file, id).entries.push(entry);
  return file;
}

describe('tuning cache', () => {
  it('bakes a tuned tile into the target, which the passes print as the grouped GEMM attribute', () => {
    const tuned = tunedTargetFor(tunedFile(adapter('a')).adapters[0]!, config)!;
    expect(tuned.target.expertGemmTiles).toEqual({ gateUp: tile, down: { bm: 32, bn: 64, bk: 16, tm: 4, tn: 4 } });
    expect(tuned.target.source).toContain('gate/up tile(bm=32, bn=32, bk=16, tm=4, tn=2)');
    const { module } = compileMoeBlock(config, 0, { target: tuned.target });
    const ir = printModule(module);
    expect(ir).toMatch(/moe\.grouped_gemm.*tile = tile\(bm = 32, bn = 32, bk = 16, tm = 4, tn = 2\)/);
    expect(ir).toMatch(/block_rows = 32/);
  });

  it('ignores entries hashed with other template text, and says so', () => {
    const warnings: string[] = [];
    const changed = (path: string) => `${readKernelTemplate(path)}${path.endsWith('gemm-tile.wgsl.hbs') ? '\n// edited' : ''}`;
    const section = tunedFile(adapter('a')).adapters[0]!;
    expect(tunedTargetFor(section, config, {}, { warn: (m) => warnings.push(m), readTemplate: changed })).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/grouped_gemm\.gate_up entry was tuned with other templates .*ignored/);
    expect(tunedTargetFor(section, config, {}, { warn: (m) => warnings.push(m) })).toBeDefined();
  });

  it('reports a truncated or corrupted file with its path and ignores it; the other files still count', () => {
    const cache = join(dir, 'cache');
    const good = cacheFileOf(cache, adapter('good'));
    writeTuningFile(good, tunedFile(adapter('good')));
    const text = readFileSync(good, 'utf8');
    const truncated = join(cache, 'truncated.json');
    writeFileSync(truncated, text.slice(0, text.length / 2));
    const wrongShape = join(cache, 'wrong.json');
    writeFileSync(wrongShape, JSON.stringify({ format: 'moec-tuning/1', adapters: [{ adapter: adapter('x'), entries: [{ family: 'grouped_gemm.gate_up' }] }] }));
    const warnings: string[] = [];
    expect(readTuningFile(truncated, (m) => warnings.push(m))).toBeUndefined();
    expect(warnings[0]).toContain(`${truncated}: not valid JSON`);
    const merged = readTuningCache(cache, (m) => warnings.push(m));
    expect(warnings.some((w) => w.startsWith(`${wrongShape}: adapters[0].entries[0]`))).toBe(true);
    expect(merged.adapters.map((a) => a.key)).toEqual([adapterKey(adapter('good'))]);
    expect(readdirSync(cache).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('merges runs from several adapters; the same entry from a later file wins', () => {
    const a = tunedFile(adapter('a'));
    const b = tunedFile(adapter('b'));
    const later = tunedFile(adapter('a'));
    later.adapters[0]!.entries[0]!.tunedMs = 0.5;
    const merged = mergeTuningFiles([a, b, later]);
    expect(merged.adapters.map((x) => x.adapter.description)).toEqual(['a', 'b']);
    expect(merged.adapters[0]!.entries).toHaveLength(1);
    expect(merged.adapters[0]!.entries[0]!.tunedMs).toBe(0.5);
  });

  it('the cache directory: flag, then MOEC_CACHE_DIR, then XDG_CACHE_HOME/moec', () => {
    expect(tuningCacheDir('/x', { MOEC_CACHE_DIR: '/y' })).toBe('/x');
    expect(tuningCacheDir(undefined, { MOEC_CACHE_DIR: '/y', XDG_CACHE_HOME: '/z' })).toBe('/y');
    expect(tuningCacheDir(undefined, { XDG_CACHE_HOME: '/z' })).toBe(join('/z', 'moec'));
  });

  it('prunes tiles the adapter cannot hold or the matrix does not need', () => {
    const problem = { kdim: 64, ndim: 120, gateup: true, rowsPerExpert: 16, limits };
    const tiles = gemmTileCandidates(problem, { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 }, 1000);
    expect(tiles[0]).toEqual({ bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 });
    expect(tiles.length).toBeGreaterThan(10);
    for (const t of tiles) {
      expect(gemmTileRefusal(t, problem)).toBeUndefined();
      expect(t.bm).toBeLessThanOrEqual(16);
      expect(t.bn).toBeLessThanOrEqual(128);
    }
    expect(gemmTileRefusal({ bm: 64, bn: 128, bk: 32, tm: 1, tn: 1 }, problem)).toMatch(/threads, more than the adapter's 256/);
    expect(gemmTileRefusal({ bm: 16, bn: 128, bk: 32, tm: 4, tn: 8 }, problem)).toMatch(/bytes of workgroup memory/);
  });
});
