// A compiled bundle in headless Chromium: the page imports model.js from 127.0.0.1, which reads
// the (sharded) checkpoint with Range requests and runs a MoE block on Chromium's WebGPU. The
// same bundle in Node (`moec run <bundle>`, Dawn) must agree with it, and both with the CPU
// interpreter.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { parseSafetensors } from '../../runtime/safetensors.js';
import { readTensorF32 } from '../../runtime/safetensors-read.js';
import { moec } from '../bundle/cli.js';
import { specText, writeHiddenStates, writeRandomCheckpoint, type CheckpointSizes } from '../fixtures/make-checkpoint.js';
import { launchChromium, serveDirectory, skipBrowserTests, type StaticServer } from './launch-chromium.js';

const SIZES: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 2, sharedIntermediate: 28 };
const FAMILY = 'qwen2_moe' as const; // routed + gated shared expert: the most kernels
const LAYER = 1;

// The page: load the bundle with the checkpoint's URL, then run(inputFile) -> the block's output.
const PAGE = /* html */ `<!doctype html>
<script type="module">
import { load, parseSafetensors, readTensorF32 } from './bundle/model.js';
try {
  const model = await load({ weights: new URL('checkpoint/', location.href).href });
  window.adapter = model.adapter;
  window.run = async (name) => {
    const file = parseSafetensors(new Uint8Array(await (await fetch(name)).arrayBuffer()), name);
    const tokens = file.tensors.get('hidden_states').shape[0];
    return Array.from(await model.runMoeBlock(${LAYER}, readTensorF32(file, 'hidden_states'), tokens));
  };
  // An f16 bundle: refused by an adapter without shader-f16 (load() throws), or run.
  window.tryF16 = async () => {
    const f16 = await import('./bundle-f16/model.js');
    try {
      const model = await f16.load({ weights: new URL('checkpoint/', location.href).href });
      const out = await model.runMoeBlock(${LAYER}, new Float32Array(2 * ${SIZES.hidden}).fill(0.5), 2);
      model.destroy();
      return { finite: Array.from(out).every(Number.isFinite) };
    } catch (e) {
      return { error: String(e?.message ?? e) };
    }
  };
  window.ready = true;
} catch (e) {
  window.pageError = String(e?.stack ?? e);
}
</script>`;

describe.skipIf(skipBrowserTests)('a compiled bundle in headless Chromium', () => {
  let root: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const pageWarnings: string[] = [];
  let checkpointFiles: string[];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'moec-browser-bundle-'));
    const spec = join(root, 'tiny.moe');
    writeFileSync(spec, specText(FAMILY, SIZES));
    checkpointFiles = writeRandomCheckpoint(join(root, 'checkpoint'), FAMILY, SIZES, { seed: 31, shards: 2 }).files;
    writeHiddenStates(join(root, 'decode.safetensors'), 3, SIZES.hidden, 32);
    writeHiddenStates(join(root, 'prefill.safetensors'), 17, SIZES.hidden, 33);
    writeFileSync(join(root, 'index.html'), PAGE);
    const compiled = await moec(['compile', spec, '-o', join(root, 'bundle')]);
    expect(compiled.stderr).toBe('');
    expect(compiled.status).toBe(0);
    const specF16 = join(root, 'tiny-f16.moe');
    writeFileSync(specF16, specText(FAMILY, SIZES).replace('  dtype = f32\n', '  dtype = f16\n'));
    expect((await moec(['compile', specF16, '-o', join(root, 'bundle-f16')])).status).toBe(0);

    server = await serveDirectory(root);
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    page.on('console', (m) => m.type() === 'warning' && pageWarnings.push(m.text()));
    await page.goto(server.url);
    await page.waitForFunction(() => 'ready' in window || 'pageError' in window, undefined, { timeout: 110_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** The CPU interpreter on the same spec, checkpoint and input. */
  async function reference(input: string): Promise<Float32Array> {
    const specPath = join(root, 'tiny.moe');
    const config = checkSpec(readFileSync(specPath, 'utf8'), specPath).config!;
    const graph = compileMoeBlockGraph(config, LAYER);
    const { weights } = openHfCheckpoint(join(root, 'checkpoint'));
    const values = new Map<string, Float32Array>();
    for (const p of graph.params) values.set(p.name, await weights.readF32(p.name, p.type.shape as number[]));
    const file = parseSafetensors(new Uint8Array(readFileSync(input)), input);
    const x = readTensorF32(file, 'hidden_states');
    const out = interpretGraph(graph, { hidden_states: { shape: [...file.tensors.get('hidden_states')!.shape], data: x } }, (p) => values.get(p.name)!);
    return out[graph.outputs[0]!.name]!.data as Float32Array;
  }

  for (const input of ['decode.safetensors', 'prefill.safetensors']) {
    test(`${input}: Chromium and Node run the same bundle to the same output`, async () => {
      const pageError = await page.evaluate(() => (window as unknown as { pageError?: string }).pageError);
      expect(pageError, `page errors: ${pageErrors.join('\n')}`).toBeUndefined();
      const adapter = await page.evaluate(() => (window as unknown as { adapter: object }).adapter);
      type Run = (name: string) => Promise<number[]>;
      const inBrowser = await page.evaluate((name) => (window as unknown as { run: Run }).run(name), input);

      const output = join(root, `node-${input}`);
      const node = await moec(['run', join(root, 'bundle'), '--weights', join(root, 'checkpoint'), '--layer', String(LAYER),
        '--input', join(root, input), '--output', output]);
      expect(node.stderr).toBe('');
      expect(node.status).toBe(0);
      const inNode = readTensorF32(parseSafetensors(new Uint8Array(readFileSync(output)), output), 'hidden_states');

      const cpu = await reference(join(root, input));
      const browserVsNode = relativeError(inBrowser, inNode);
      console.log(`${input}: chromium ${JSON.stringify(adapter)} vs node: ${browserVsNode.toExponential(1)}; ` +
        `vs CPU: chromium ${relativeError(inBrowser, cpu).toExponential(1)}, node ${relativeError(inNode, cpu).toExponential(1)}`);
      expect(inBrowser).toHaveLength(cpu.length);
      expect(browserVsNode).toBeLessThan(1e-5);
      expect(relativeError(inBrowser, cpu)).toBeLessThan(1e-4);
    });
  }

  test('the page read the checkpoint with Range requests only: headers, then layer 1\'s tensors', () => {
    const shards = server.log.filter((r) => r.path.startsWith('/checkpoint/') && r.path.endsWith('.safetensors'));
    const total = checkpointFiles.reduce((n, f) => n + statSync(join(root, 'checkpoint', f)).size, 0);
    const bytes = shards.reduce((n, r) => n + r.bytes, 0);
    console.log(`chromium read layer ${LAYER} of ${SIZES.layers}: ${shards.length} Range requests, ${bytes} of ${total} checkpoint bytes`);
    expect(shards.length).toBeGreaterThan(0);
    expect(shards.filter((r) => r.status !== 206 || !r.range?.startsWith('bytes='))).toEqual([]);
    expect(bytes).toBeLessThan(0.75 * total);
    expect(pageWarnings.filter((w) => w.includes('Range'))).toEqual([]);
  });

  test('an f16 bundle: load() refuses an adapter without shader-f16, naming the feature (or runs where it has it)', async () => {
    // After the Range-request test: where the adapter has shader-f16 this reads layer 1 again.
    type Outcome = { error: string } | { finite: boolean };
    const outcome = await page.evaluate(() => (window as unknown as { tryF16: () => Promise<Outcome> }).tryF16());
    console.log(`chromium, f16 bundle: ${JSON.stringify(outcome)}`);
    if ('error' in outcome) expect(outcome.error).toMatch(/tiny-qwen2-moe: the kernels need the adapter feature shader-f16 \(they store activations in f16: compiled with `dtype = f16`\), which this adapter \(.*\) lacks/);
    else expect(outcome.finite).toBe(true);
  });
});
