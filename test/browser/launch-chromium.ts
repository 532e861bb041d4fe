// Headless Chromium with its own WebGPU (SwiftShader when there is no GPU), and a static file server
// on 127.0.0.1 to load pages and compiled bundles from. Flags: /work/shared/webgpu-on-cpu.md.
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

export interface StaticServer {
  url: string; // e.g. http://127.0.0.1:43567/ (ends with a slash)
  close(): Promise<void>;
}

/** Serves the files under `dir` on 127.0.0.1 at a free port; `/` serves index.html.
 *  Pages need such an origin: navigator.gpu exists only in secure contexts (not on about:blank). */
export async function serveDirectory(dir: string): Promise<StaticServer> {
  const rootDir = resolve(dir);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(rootDir, path.endsWith('/') ? `${path}index.html` : path));
    // Refuse anything outside `dir` (`..` in the URL) and anything that is not a file.
    if (!file.startsWith(rootDir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}
