// A checkpoint read over HTTP (runtime/http-ranges.ts, http-tensor-reader.ts, fetchHfCheckpoint)
// from test/browser's static server: Range requests only for what is read, counted on the
// server; the same values as the whole-file reader; a server without Range; every error naming
// the URL and the tensor.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { fetchHfCheckpoint, hfWeightsFromSafetensors, hfWeightsFromUrl } from '../../runtime/hf-checkpoint.js';
import type { HfWeightSource } from '../../runtime/hf-weights.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { serveDirectory, type ServedRequest, type StaticServer } from '../browser/launch-chromium.js';
import { specText, writeRandomCheckpoint, type CheckpointSizes, type WrittenCheckpoint } from '../fixtures/make-checkpoint.js';

const SIZES: CheckpointSizes = { hidden: 32, experts: 8, topK: 2, intermediate: 24, layers: 4 };
const FAMILY = 'qwen3_moe' as const;
const LAYER = 2;

let root: string;
let written: WrittenCheckpoint;
let server: StaticServer;
let plainServer: StaticServer; // no Range support
let shardBytes: number; // all .safetensors files together

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'moec-http-'));
  written = writeRandomCheckpoint(join(root, 'ckpt'), FAMILY, SIZES, { seed: 7, shards: 3 });
  shardBytes = written.files.reduce((n, f) => n + statSync(join(root, 'ckpt', f)).size, 0);
  server = await serveDirectory(root);
  plainServer = await serveDirectory(root, { ranges: false });
});

afterAll(async () => {
  await server?.close();
  await plainServer?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** The IR weights of layer `layer`'s MoE block: names and shapes. */
function blockParams(layer: number): Array<{ name: string; shape: number[] }> {
  const config = checkSpec(specText(FAMILY, SIZES), 'tiny.moe').config!;
  return compileMoeBlockGraph(config, layer).params.map((p) => ({ name: p.name, shape: [...p.type.shape] as number[] }));
}

/** The whole-file reader: every shard read from disk into memory. */
function wholeFileSource(): HfWeightSource {
  const dir = join(root, 'ckpt');
  return hfWeightsFromSafetensors(FAMILY, written.files.map((name) => ({ name, bytes: readFileSync(join(dir, name)) })));
}

/** The requests for .safetensors files since `from`, and their body bytes. */
function shardTraffic(s: StaticServer, from = 0): { requests: ServedRequest[]; bytes: number } {
  const requests = s.log.slice(from).filter((r) => r.path.endsWith('.safetensors'));
  return { requests, bytes: requests.reduce((n, r) => n + r.bytes, 0) };
}

/** A copy of the checkpoint in a fresh directory under the served root, to break. */
function copyCheckpoint(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const f of readdirSync(join(root, 'ckpt'))) copyFileSync(join(root, 'ckpt', f), join(dir, f));
  return dir;
}

describe('a sharded checkpoint over HTTP with Range requests', () => {
  it(`reads layer ${LAYER}'s MoE block of ${SIZES.layers} with a fraction of the bytes, equal to the whole-file reader`, async () => {
    const from = server.log.length;
    const warnings: string[] = [];
    const source = await hfWeightsFromUrl(`${server.url}ckpt`, { onWarning: (w) => warnings.push(w) });
    expect(shardTraffic(server, from).requests).toEqual([]); // an index: no shard is touched before a read
    const whole = wholeFileSource();
    let tensorBytes = 0;
    for (const { name, shape } of blockParams(LAYER)) {
      const got = await source.readF32(name, shape);
      expect(got, name).toEqual(await whole.readF32(name, shape));
      tensorBytes += got.byteLength;
    }
    const { requests, bytes } = shardTraffic(server, from);
    expect(warnings).toEqual([]);
    expect(requests.every((r) => r.status === 206 && r.range !== undefined)).toBe(true);
    // Headers (two requests a shard) of the shards holding layer 2, then its tensors' bytes.
    const index = JSON.parse(readFileSync(join(root, 'ckpt', 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const layerShards = new Set(Object.entries(index.weight_map).filter(([n]) => n.startsWith(`model.layers.${LAYER}.`)).map(([, f]) => f));
    expect(new Set(requests.map((r) => r.path.split('/').pop()))).toEqual(layerShards);
    expect(bytes).toBeGreaterThanOrEqual(tensorBytes);
    expect(bytes).toBeLessThan(0.35 * shardBytes);
    console.log(`layer ${LAYER} of ${SIZES.layers} over HTTP: ${requests.length} Range requests, ${bytes} bytes ` +
      `(${tensorBytes} of tensors) of ${shardBytes} in ${written.files.length} shards (${((100 * bytes) / shardBytes).toFixed(1)}%)`);
  });

  it('rows of stacked experts read only those experts\' bytes', async () => {
    const source = await hfWeightsFromUrl(`${server.url}ckpt/`);
    const whole = wholeFileSource();
    const name = `layers.${LAYER}.moe.experts.down`;
    const shape = [SIZES.experts, SIZES.hidden, SIZES.intermediate];
    await source.readF32(`layers.${LAYER}.moe.router.weight`, [SIZES.experts, SIZES.hidden]); // fetches the headers
    const from = server.log.length;
    const rows = { begin: 2, end: 5 };
    expect(await source.readF32(name, shape, rows)).toEqual(await whole.readF32(name, shape, rows));
    const { requests, bytes } = shardTraffic(server, from);
    expect(bytes).toBe(3 * SIZES.hidden * SIZES.intermediate * 4); // three experts' down_proj, nothing else
    expect(requests).toHaveLength(3);
  });

  it('reads asked for together are coalesced; no request exceeds maxRequestBytes', async () => {
    const { reader, files } = await fetchHfCheckpoint(`${server.url}ckpt/`, { maxRequestBytes: 1000 });
    const dir = join(root, 'ckpt');
    const names = reader.names().filter((n) => n.startsWith(`model.layers.${LAYER}.mlp.experts.1.`)); // gate, up, down: adjacent
    await reader.fetchHeaders(names);
    const from = server.log.length;
    const whole = hfWeightsFromSafetensors(FAMILY, files.map((f) => ({ name: f, bytes: readFileSync(join(dir, f)) })));
    const expertBytes = 3 * SIZES.hidden * SIZES.intermediate * 4;
    const got = await Promise.all(names.map((n) => reader.readF32(n)));
    const { requests, bytes } = shardTraffic(server, from);
    expect(bytes).toBe(expertBytes);
    expect(requests).toHaveLength(Math.ceil(expertBytes / 1000)); // one run of bytes, split at 1000
    expect(requests.every((r) => r.bytes <= 1000)).toBe(true);
    const viaWeights = await whole.readF32(`layers.${LAYER}.moe.experts.gate`, [SIZES.experts, SIZES.intermediate, SIZES.hidden], { begin: 1, end: 2 });
    expect(got[names.findIndex((n) => n.endsWith('gate_proj.weight'))]).toEqual(viaWeights);

    const one = shardTraffic(server).requests.length;
    await reader.readF32(names[0]!);
    expect(shardTraffic(server).requests.length - one).toBe(Math.ceil((SIZES.hidden * SIZES.intermediate * 4) / 1000));
  });

  it('model.safetensors without an index: its header is read at once, then tensors by range', async () => {
    const dir = join(root, 'single');
    const single = writeRandomCheckpoint(dir, FAMILY, SIZES, { seed: 8 });
    const from = server.log.length;
    const fetched = await fetchHfCheckpoint(`${server.url}single/`);
    expect(fetched.files).toEqual(['model.safetensors']);
    expect(shardTraffic(server, from).requests.map((r) => r.range)).toEqual(['bytes=0-7', expect.stringMatching(/^bytes=8-\d+$/)]);
    expect(fetched.reader.transferred.requests).toBe(2);
    const source = await hfWeightsFromUrl(`${server.url}single/`);
    const whole = hfWeightsFromSafetensors(FAMILY, [{ name: 'model.safetensors', bytes: readFileSync(join(dir, single.files[0]!)) }]);
    for (const { name, shape } of blockParams(1)) expect(await source.readF32(name, shape), name).toEqual(await whole.readF32(name, shape));
  });
});

describe('a server that ignores Range', () => {
  it('falls back to one whole-file GET per shard used, with a warning, and reads the same values', async () => {
    const from = plainServer.log.length;
    const warnings: string[] = [];
    const source = await hfWeightsFromUrl(`${plainServer.url}ckpt/`, { onWarning: (w) => warnings.push(w) });
    const whole = wholeFileSource();
    for (const { name, shape } of blockParams(LAYER)) expect(await source.readF32(name, shape), name).toEqual(await whole.readF32(name, shape));
    const { requests } = shardTraffic(plainServer, from);
    const paths = requests.map((r) => r.path);
    expect(new Set(paths).size).toBe(paths.length); // each shard downloaded once
    for (const r of requests) {
      expect(r.status).toBe(200);
      expect(r.bytes).toBe(statSync(join(root, r.path)).size);
    }
    expect(warnings).toHaveLength(requests.length);
    for (const [i, r] of requests.entries()) {
      expect(warnings[i]).toBe(`${plainServer.url.replace(/\/$/, '')}${r.path}: the server ignored a Range request (HTTP 200, not 206); ` +
        `downloading the whole file (${r.bytes} bytes) instead`);
    }
  });

  it('warns on the console without an onWarning', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const source = await hfWeightsFromUrl(`${plainServer.url}ckpt/`);
      await source.readF32(`layers.0.moe.router.weight`, [SIZES.experts, SIZES.hidden]);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('the server ignored a Range request'));
    } finally {
      warn.mockRestore();
    }
  });
});

describe('errors name the URL and the tensor', () => {
  const router = `layers.${LAYER}.moe.router.weight`;
  const routerTensor = `model.layers.${LAYER}.mlp.gate.weight`;
  const routerShape = [SIZES.experts, SIZES.hidden];
  const shardOf = (tensor: string): string => {
    const index = JSON.parse(readFileSync(join(root, 'ckpt', 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    return index.weight_map[tensor]!;
  };
  /** A fetch that answers the data requests (not the header's 0-7 and 8-...) with `answer`. */
  const onData = (answer: (real: Response, range: string) => Response | Promise<Response>): typeof fetch =>
    (async (input: string | URL | Request, init?: RequestInit) => {
      const range = new Headers(init?.headers).get('range');
      const real = await fetch(input, init);
      return range && !/^bytes=(0|8)-/.test(range) ? answer(real, range) : real;
    }) as typeof fetch;

  it('a missing shard: HTTP 404, the shard\'s URL and the tensor that needed it', async () => {
    const dir = copyCheckpoint('missing');
    const shard = shardOf(routerTensor);
    rmSync(join(dir, shard));
    const source = await hfWeightsFromUrl(`${server.url}missing/`);
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      new RegExp(`^${server.url}missing/${shard}: HTTP 404 Not Found \\(reading the safetensors header \\(for tensor "model\\.layers\\.${LAYER}\\.`));
  });

  it('an HTTP error on tensor data: status, URL, tensor and bytes', async () => {
    const fail = onData((real) => {
      void real.body?.cancel();
      return new Response('boom', { status: 500, statusText: 'Internal Server Error' });
    });
    const source = await hfWeightsFromUrl(`${server.url}ckpt/`, { fetch: fail });
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      new RegExp(`^${server.url}ckpt/${shardOf(routerTensor)}: HTTP 500 Internal Server Error \\(reading tensor "${routerTensor.replace(/\./g, '\\.')}", bytes \\d+-\\d+\\)$`));
  });

  it('a connection that fails', async () => {
    const down = onData((real) => {
      void real.body?.cancel();
      throw new TypeError('fetch failed');
    });
    const source = await hfWeightsFromUrl(`${server.url}ckpt/`, { fetch: down });
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      `${server.url}ckpt/${shardOf(routerTensor)}: fetch failed: fetch failed (reading tensor "${routerTensor}", bytes `);
  });

  it('a short body', async () => {
    const short = onData(async (real) => {
      const body = new Uint8Array(await real.arrayBuffer());
      return new Response(body.subarray(0, body.length - 4), { status: 206, headers: { 'content-range': real.headers.get('content-range')! } });
    });
    const source = await hfWeightsFromUrl(`${server.url}ckpt/`, { fetch: short });
    const bytes = SIZES.experts * SIZES.hidden * 4;
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      `${server.url}ckpt/${shardOf(routerTensor)}: the response body is ${bytes - 4} bytes, expected ${bytes} (reading tensor "${routerTensor}", bytes `);
  });

  it('a 206 for other bytes than asked, or without the file size', async () => {
    const shifted = onData((real, range) => {
      const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(range)!.map(Number);
      const size = real.headers.get('content-range')!.split('/')[1];
      void real.body?.cancel();
      return new Response(new Uint8Array(b! - a! + 1), { status: 206, headers: { 'content-range': `bytes ${a! + 4}-${b! + 4}/${size}` } });
    });
    await expect((await hfWeightsFromUrl(`${server.url}ckpt/`, { fetch: shifted })).readF32(router, routerShape))
      .rejects.toThrow(/: the server sent bytes \d+-\d+ instead \(reading tensor "model\.layers\.2\.mlp\.gate\.weight"/);
    const unsized = (async (input: string | URL | Request, init?: RequestInit) => {
      const real = await fetch(input, init);
      if (real.status !== 206) return real;
      return new Response(await real.arrayBuffer(), { status: 206, headers: { 'content-range': real.headers.get('content-range')!.replace(/\/\d+$/, '/*') } });
    }) as typeof fetch;
    await expect((await hfWeightsFromUrl(`${server.url}ckpt/`, { fetch: unsized })).readF32(router, routerShape))
      .rejects.toThrow(`HTTP 206 without the file size in Content-Range (bytes a-b/*) (reading the safetensors header (for tensor "model.layers.${LAYER}.`);
  });

  it('a header that runs past the end of the file', async () => {
    const dir = join(root, 'long-header');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: FAMILY }));
    const file = encodeSafetensors({ x: { dtype: 'F32', shape: [2], data: new Float32Array(2) } });
    new DataView(file.buffer).setBigUint64(0, BigInt(file.byteLength), true);
    writeFileSync(join(dir, 'model.safetensors'), file);
    await expect(fetchHfCheckpoint(`${server.url}long-header/`)).rejects.toThrow(
      `${server.url}long-header/model.safetensors: header length ${file.byteLength} runs past the end of the file (${file.byteLength} bytes)`);
  });

  it('a shard cut short: its tensors run past the end, named with the URL', async () => {
    const dir = copyCheckpoint('truncated');
    const shard = shardOf(routerTensor);
    const bytes = readFileSync(join(dir, shard));
    writeFileSync(join(dir, shard), bytes.subarray(0, bytes.length - 100));
    const source = await hfWeightsFromUrl(`${server.url}truncated/`);
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      new RegExp(`^${server.url}truncated/${shard}: tensor "[^"]+": data_offsets \\[\\d+, \\d+\\] run past the end of the data area`));
  });

  it('an empty shard: HTTP 416 names its size', async () => {
    const dir = copyCheckpoint('empty');
    const shard = shardOf(routerTensor);
    writeFileSync(join(dir, shard), '');
    const source = await hfWeightsFromUrl(`${server.url}empty/`);
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      `${server.url}empty/${shard}: HTTP 416 Range Not Satisfiable: the file is 0 bytes (reading the safetensors header`);
  });

  it('a tensor the index places in a shard that lacks it', async () => {
    const dir = copyCheckpoint('misplaced');
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const other = written.files.find((f) => f !== index.weight_map[routerTensor])!;
    index.weight_map[routerTensor] = other;
    writeFileSync(indexPath, JSON.stringify(index));
    const source = await hfWeightsFromUrl(`${server.url}misplaced/`);
    await expect(source.readF32(router, routerShape)).rejects.toThrow(
      `${server.url}misplaced/${other}: tensor "${routerTensor}" is listed in ${server.url}misplaced/model.safetensors.index.json but not in this file`);
  });

  it('the reader refuses shape() before the header is fetched', async () => {
    const { reader } = await fetchHfCheckpoint(`${server.url}ckpt/`);
    expect(() => reader.shape(routerTensor)).toThrow(
      `${server.url}ckpt/${shardOf(routerTensor)}: tensor "${routerTensor}": the header of this file has not been fetched yet (call fetchHeaders first)`);
    await reader.fetchHeaders([routerTensor]);
    expect(reader.shape(routerTensor)).toEqual(routerShape);
  });
});

describe('an FP8 checkpoint over HTTP', () => {
  it('reads codes and block scales by range, equal to the directory reader', async () => {
    const sizes: CheckpointSizes = { hidden: 32, experts: 4, topK: 2, intermediate: 24, layers: 2 };
    const dir = join(root, 'fp8');
    writeRandomCheckpoint(dir, 'deepseek_v3', sizes, { seed: 9, shards: 2, fp8Experts: { blockSize: [16, 16] } });
    const fromUrl = await hfWeightsFromUrl(`${server.url}fp8/`);
    const fromDir = openHfCheckpoint(dir).weights;
    const shape = [sizes.experts, sizes.hidden, sizes.intermediate];
    for (const rows of [undefined, { begin: 1, end: 3 }]) {
      expect(await fromUrl.readF32('layers.1.moe.experts.down', shape, rows)).toEqual(await fromDir.readF32('layers.1.moe.experts.down', shape, rows));
    }
  });
});
