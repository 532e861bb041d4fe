// The server as a separate process, the way editors start it: the tsc build
// (`node dist/editor/server/main.js --stdio`, built by `npm test`'s setup) and the esbuild bundle
// the VS Code extension ships (dist/server.js, started with --node-ipc).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileUri, LspSession, positionOf } from './lsp-session.js';
import { bundleServer } from '../../editor/vscode/build.mjs';

const root = join(import.meta.dirname, '../..');
const mixtralPath = join(root, 'examples/mixtral-8x7b.moe');
const mixtral = readFileSync(mixtralPath, 'utf8');

/** The tsc output, rebuilt when a server source is newer (a full `npm test` has built it already). */
function builtServer(): string {
  const main = join(root, 'dist/editor/server/main.js');
  const sources = readdirSync(join(root, 'editor/server')).map((f) => statSync(join(root, 'editor/server', f)).mtimeMs);
  if (!existsSync(main) || statSync(main).mtimeMs < Math.max(...sources)) {
    spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', join(root, 'tsconfig.json')], { cwd: root, stdio: 'ignore' });
  }
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`node scripts/setup.mjs\``);
  return main;
}

async function exercise(session: LspSession): Promise<void> {
  const capabilities = await session.initialize();
  expect(capabilities).toMatchObject({ hoverProvider: true, documentFormattingProvider: true });
  const uri = fileUri(mixtralPath);
  expect((await session.open(uri, mixtral)).diagnostics).toEqual([]);
  const broken = mixtral.replace('softmax_topk', 'softmax_tpok');
  const { diagnostics } = await session.change(uri, 2, broken);
  expect(diagnostics).toEqual([expect.objectContaining({
    range: { start: positionOf(broken, 'softmax_tpok'), end: positionOf(broken, 'softmax_tpok', 12) },
    message: 'unknown router kind `softmax_tpok`\nhint: did you mean `softmax_topk`?',
  })]);
  const items = await session.completion(uri, positionOf(broken, 'softmax_tpok'));
  expect(items.map((i) => i.label)).toContain('sigmoid_topk');
  await session.change(uri, 3, mixtral);
  const hover = await session.hover(uri, positionOf(mixtral, 'mixtral-8x7b', 1));
  expect((hover!.contents as { value: string }).value).toContain('total parameters | 46.70 B');
}

describe('the tsc-built server over stdio', () => {
  it('answers an editor and exits 0 after shutdown', async () => {
    const session = LspSession.spawnStdio(builtServer());
    await exercise(session);
    expect(await session.close()).toBe(0);
  });
});

describe('the server bundled for the VS Code extension, over Node IPC', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moec-vscode-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs as one self-contained file', async () => {
    const bundle = join(dir, 'server.js');
    await bundleServer(bundle);
    const session = LspSession.spawnIpc(bundle);
    await exercise(session);
    expect(await session.close()).toBe(0);
  });
});
