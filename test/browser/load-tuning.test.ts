// load({ tune: 'first-load' }) in headless Chromium: a bundle compiled with load-time candidates is
// loaded twice by one page. The first load times the candidates on Chromium's WebGPU and stores the
// choice in IndexedDB (the default store in browsers); the second reads it back and times nothing.
// Both run the MoE block to the CPU interpreter's output.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import type { LoadTuningReport } from '../../runtime/tuning/first-load.js';
import { moec } from '../bundle/cli.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { launchChromium, serveDirectory, skipBrowserTests, type StaticServer } from './launch-chromium.js';

const SIZES: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 1 };
const FAMILY = 'mixtral' as const;
const TOKENS = 17;
const input = (): Float32Array => Float32Array.from({ length: TOKENS * SIZES.hidden }, (_, i) => Math.sin(0.37 * i + 1));

// The page: load(..., tune: 'first-load') twice, each time running layer 0 and reading IndexedDB's keys.
const PAGE = /* html */ `<!doctype html>
<script type="module">
import { load } from './bundle/model.js';
const keys = () => new Promise((ok, fail) => {
  const open = indexedDB.open('moec-tuning');
  open.onerror = () => fail(open.error);
  open.onsuccess = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains('load-choices')) return ok([]);
    const all = db.transaction('load-choices').objectStore('load-choices').getAllKeys();
    all.onsuccess = () => { ok(all.result.map(String)); db.close(); };
    all.onerror = () => fail(all.error);
  };
});
window.loadTwice = async () => {
  const loads = [];
  for (let i = 0; i < 2; i++) {
    const warnings = [];
    const started = performance.now();
    const model = await load({ weights: new URL('checkpoint/', location.href).href, tune: 'first-load', tuneBudgetMs: 30000, onWarning: (m) => warnings.push(m) });
    const loadMs = performance.now() - started;
    const x = Float32Array.from({ length: ${TOKENS} * ${SIZES.hidden} }, (_, i) => Math.sin(0.37 * i + 1));
    const out = Array.from(await model.runMoeBlock(0, x, ${TOKENS}));
    loads.push({ report: model.loadTuning, tuning: model.tuning, warnings, loadMs, out, keys: await keys() });
    model.destroy();
  }
  return loads;
};
window.ready = true;
</script>`;

interface PageLoad {
  report: LoadTuningReport;
  tuning: string;
  warnings: string[];
  loadMs: number;
  out: number[];
  keys: string[];
}

describe.skipIf(skipBrowserTests)("load({ tune: 'first-load' }) in headless Chromium", () => {
  let root: string;
  let server: StaticServer;
  let browser: Browser;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'moec-browser-load-tuning-'));
    const spec = join(root, 'tiny.moe');
    writeFileSync(spec, specText(FAMILY, SIZES));
    writeRandomCheckpoint(join(root, 'checkpoint'), FAMILY, SIZES, { seed: 5 });
    writeFileSync(join(root, 'index.html'), PAGE);
    const compiled = await moec(['compile', spec, '-o', join(root, 'bundle'), '--load-candidates', '2', '--tuning-tokens', '32']);
    expect(compiled.stderr).toBe('');
    expect(compiled.status).toBe(0);
    expect(compiled.stdout).toMatch(/load-time candidates: 2 plan set\(s\)/);
    server = await serveDirectory(root);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('the first load measures and stores in IndexedDB; the second uses the stored choice', async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(server.url);
    await page.waitForFunction(() => 'ready' in window, undefined, { timeout: 60_000 });
    const [first, second] = await page.evaluate(() => (window as unknown as { loadTwice: () => Promise<PageLoad[]> }).loadTwice());
    expect(pageErrors).toEqual([]);
    console.log(`chromium load-time tuning: first load ${first!.loadMs.toFixed(0)} ms (${first!.tuning}); second ${second!.loadMs.toFixed(0)} ms (${second!.tuning})`);

    expect(first!.warnings).toEqual([]);
    expect(first!.report.from).toBe('measured');
    expect(first!.report.outcome!.measured.map((m) => m.id)).toContain('default');
    expect(first!.report.storedAt).toMatch(/^IndexedDB moec-tuning\/load-choices\//);
    expect(first!.keys).toHaveLength(1);

    expect(second!.warnings).toEqual([]);
    expect(second!.report.from).toBe('stored');
    expect(second!.report.storedAt).toBe(first!.report.storedAt);
    expect(second!.report.chosen).toBe(first!.report.chosen);
    expect(second!.report.outcome).toMatchObject({ elapsedMs: first!.report.outcome!.elapsedMs, measured: first!.report.outcome!.measured });
    expect(second!.tuning).toMatch(/stored at IndexedDB moec-tuning/);
    expect(second!.keys).toEqual(first!.keys);

    // Both loads run the chosen plans to the CPU interpreter's output.
    const specPath = join(root, 'tiny.moe');
    const config = checkSpec(readFileSync(specPath, 'utf8'), specPath).config!;
    const graph = compileMoeBlockGraph(config, 0);
    const { weights } = openHfCheckpoint(join(root, 'checkpoint'));
    const values = new Map<string, Float32Array>();
    for (const p of graph.params) values.set(p.name, await weights.readF32(p.name, p.type.shape as number[]));
    const cpu = interpretGraph(graph, { hidden_states: { shape: [TOKENS, SIZES.hidden], data: input() } }, (p) => values.get(p.name)!)[graph.outputs[0]!.name]!.data as Float32Array;
    for (const load of [first!, second!]) expect(relativeError(load.out, cpu)).toBeLessThan(1e-4);
    await page.close();
  });
});
