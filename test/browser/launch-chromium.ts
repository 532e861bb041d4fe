// Headless Chromium with its own WebGPU (SwiftShader when there is no GPU), and a static file server
// on 127.0.0.1 (with Range requests, as real ones have) to load pages, compiled bundles and
// checkpoints from. Flags: /work/shared/webgpu-on-cpu.md.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.MOEC_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_WEBGPU_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu', // without it Chromium 156 on Linux gives no adapter
  '--enable-unsafe-swiftshader', // software WebGL too; WebGPU on SwiftShader works without it in Chromium 156
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Whether browser tests should be skipped (MOEC_SKIP_BROWSER=1, as in scripts/setup.mjs). */
export const skipBrowserTests = process.env.MOEC_SKIP_BROWSER === '1';

/** Launches Debian's chromium with WebGPU on; Playwright gives it a fresh temporary --user-data-dir itself. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} not found: run \`npm run setup\`, set MOEC_CHROMIUM, or MOEC_SKIP_BROWSER=1`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS });
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

export interface ServeOptions {
  /** Answer `Range: bytes=a-b` with 206 and Content-Range, as real static servers do (default true); false serves whole files. */
  ranges?: boolean;
}

/** One request the server answered: what was asked and how many body bytes went out. */
export interface ServedRequest {
  method: string;
  /** The URL path, decoded, e.g. /checkpoint/model-00001-of-00002.safetensors. */
  path: string;
  /** The Range header as sent, if any. */
  range?: string;
  status: number;
  bytes: number;
}

export interface StaticServer {
  url: string; // e.g. http://127.0.0.1:43567/ (ends with a slash)
  /** Every request so far, in the order they arrived; bytes count as they are sent. */
  log: ServedRequest[];
  close(): Promise<void>;
}

/**
 * A single range `bytes=a-b`, `bytes=a-` or `bytes=-n` of a file of `size` bytes (RFC 9110 14.1.2);
 * 'unsatisfiable' past the end; undefined for anything else (several ranges, bad syntax), which is
 * answered with the whole file as a server may.
 */
export function parseRangeHeader(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    return suffix === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (last < start) return undefined;
  return start >= size ? 'unsatisfiable' : { start, end: Math.min(last, size - 1) };
}

/** Serves the files under `dir` on 127.0.0.1 at a free port; `/` serves index.html. GET and HEAD, with Range unless turned off.
 *  Pages need such an origin: navigator.gpu exists only in secure contexts (not on about:blank). */
export async function serveDirectory(dir: string, options: ServeOptions = {}): Promise<StaticServer> {
  const rootDir = resolve(dir);
  const ranges = options.ranges ?? true;
  const log: ServedRequest[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const entry: ServedRequest = { method: req.method ?? 'GET', path, status: 0, bytes: 0 };
    if (typeof req.headers.range === 'string') entry.range = req.headers.range;
    log.push(entry);
    const send = (status: number, headers: Record<string, string | number>, body?: string): void => {
      entry.status = status;
      res.writeHead(status, headers);
      if (body !== undefined && req.method !== 'HEAD') entry.bytes += Buffer.byteLength(body);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, { allow: 'GET, HEAD' }, `method ${req.method} not allowed`);
      return;
    }
    const file = normalize(join(rootDir, path.endsWith('/') ? `${path}index.html` : path));
    // Refuse anything outside `dir` (`..` in the URL) and anything that is not a file.
    if (!file.startsWith(rootDir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      send(404, {}, `not found: ${path}`);
      return;
    }
    const size = statSync(file).size;
    const headers: Record<string, string | number> = {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
      ...(ranges ? { 'accept-ranges': 'bytes' } : {}),
    };
    const range = ranges && entry.range !== undefined ? parseRangeHeader(entry.range, size) : undefined;
    if (range === 'unsatisfiable') {
      send(416, { ...headers, 'content-range': `bytes */${size}` }, '');
      return;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    entry.status = range ? 206 : 200;
    res.writeHead(entry.status, {
      ...headers,
      'content-length': end - start + 1,
      ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    createReadStream(file, { start, end }).on('data', (chunk) => { entry.bytes += chunk.length; }).pipe(res);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}
