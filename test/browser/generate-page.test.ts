// The example page (examples/web/) in headless Chromium: it imports a compiled bundle's model.js
// from 127.0.0.1, reads a whole-model random checkpoint with Range requests, generates 16 tokens
// (temperature 0.8, top-k 20, seed 42) on Chromium's WebGPU and streams them into the page; they
// must be the tokens load().generate() gives in Node (Dawn) for the same bundle, checkpoint and seed.
// The page's screenshot goes to test-output/browser/generate-page.png.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { LoadOptions, Model } from '../../runtime/bundle.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { moec, ROOT } from '../bundle/cli.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { launchChromium, serveDirectory, skipBrowserTests, type StaticServer } from './launch-chromium.js';

const FAMILY = 'deepseek_v3' as const; // MLA, a dense layer, yarn rope, a shared expert: the most kernel kinds
const SIZES: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 2, firstDense: 1 };
const PROMPT = [5, 17, 3, 42, 8];
const SAMPLING = { maxTokens: 16, temperature: 0.8, topK: 20, seed: 42 };
export const SCREENSHOT = join(ROOT, 'test-output', 'browser', 'generate-page.png');

interface PageState {
  state: 'loading' | 'ready' | 'generating' | 'done' | 'error';
  tokens: number[];
  error?: string;
}

describe.skipIf(skipBrowserTests)('examples/web in headless Chromium', () => {
  let root: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'moec-web-example-'));
    for (const file of ['index.html', 'main.js']) copyFileSync(join(ROOT, 'examples', 'web', file), join(root, file));
    const spec = join(root, 'tiny.moe');
    writeFileSync(spec, specText(FAMILY, SIZES).replace('  dtype = f32\n', '  dtype = f32\n  context = 64\n'));
    const compiled = await moec(['compile', spec, '-o', join(root, 'bundle')]);
    expect(compiled.stderr).toBe('');
    expect(compiled.status).toBe(0);
    writeRandomCheckpoint(join(root, 'checkpoint'), FAMILY, SIZES, { seed: 42, wholeModel: true, shards: 2 });
    server = await serveDirectory(root);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 900, height: 640 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Opens the page with `query` and waits until it has generated (or failed). */
  async function openPage(query: Record<string, string | number>): Promise<PageState> {
    const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
    await page.goto(`${server.url}?${search}`);
    await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { demo: PageState }).demo.state), undefined, { timeout: 110_000 });
    return page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { demo: PageState }).demo)) as PageState);
  }

  test('generates, in the page, the tokens Node generates with the same bundle, checkpoint and seed', async () => {
    const inPage = await openPage({ prompt: PROMPT.join(','), ...SAMPLING, topP: 1, run: 1 });
    expect(inPage.error, `page errors: ${pageErrors.join('\n')}`).toBeUndefined();
    mkdirSync(join(ROOT, 'test-output', 'browser'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const shown = (await page.locator('#tokens .new').allTextContents()).map(Number);

    const bundle = (await import(pathToFileURL(join(root, 'bundle', 'model.js')).href)) as { load(options: LoadOptions): Promise<Model> };
    const model = await bundle.load({ gpu: createNodeGpu(), weights: openHfCheckpoint(join(root, 'checkpoint')).weights });
    const inNode: number[] = [];
    try {
      for await (const id of model.generate(PROMPT, SAMPLING)) inNode.push(id);
    } finally {
      model.dispose();
    }
    console.log(`${FAMILY}, seed ${SAMPLING.seed}: chromium ${inPage.tokens.join(' ')}; node ${inNode.join(' ')}; screenshot ${SCREENSHOT}`);
    expect(inNode).toHaveLength(16);
    expect(inPage.tokens).toEqual(inNode);
    expect(shown).toEqual(inNode);
    // The checkpoint came over Range requests only.
    const shards = server.log.filter((r) => r.path.startsWith('/checkpoint/') && r.path.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(0);
    expect(shards.filter((r) => r.status !== 206)).toEqual([]);
  });

  test('the form: bad input shows the bundle\'s error and no tokens; the same seed again gives the same tokens', async () => {
    // The page from the test before, its model loaded: each submit is one generate() call.
    const submit = async (values: Record<string, string>): Promise<PageState> => {
      for (const [name, value] of Object.entries(values)) await page.fill(`input[name=${name}]`, value);
      await page.evaluate(() => ((window as unknown as { demo: PageState }).demo.state = 'ready'));
      await page.click('#generate');
      await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { demo: PageState }).demo.state), undefined, { timeout: 60_000 });
      return page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { demo: PageState }).demo)) as PageState);
    };
    const first = await page.evaluate(() => (window as unknown as { demo: PageState }).demo.tokens.slice());
    expect(await submit({ prompt: '1, 99', maxTokens: '4' })).toMatchObject({ state: 'error', tokens: [], error: 'generate: prompt[1] is 99, outside the vocabulary 0..63' });
    expect(await page.locator('#status').textContent()).toContain('outside the vocabulary');
    const long = await submit({ prompt: PROMPT.join(', '), maxTokens: '61' });
    expect(long.error).toMatch(/needs 65 positions, more than the context of 64 the model was compiled for \(compile \{ context = N \}\)/);
    expect((await submit({ maxTokens: '4', topK: '2.5' })).error).toBe('generate: topK must be a whole number >= 0 (0 = off), got 2.5');
    expect(await submit({ maxTokens: '16', topK: '20' })).toMatchObject({ state: 'done', tokens: first });
  });
});
