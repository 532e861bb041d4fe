// Runs the built CLI (dist/cli/moec.js, bundled from tsc's output by scripts/build-cli.mjs) as a user would, building it first if needed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli', 'moec.js');

/** Harmless driver chatter: lavapipe's two "artificially reduced" lines, Dawn's XDG_RUNTIME_DIR line. */
const NOISE = [/^Warning: max\w+ artificially reduced/, /XDG_RUNTIME_DIR is invalid/];

let built = false;
const sleep = (ms: number): void => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms) as unknown as void;

/** `tsc -b`, model.d.ts's runtime types and the CLI bundle (no-ops when up to date), one test process at a time. */
export function ensureBuiltCli(): void {
  if (built) return;
  const lock = join(ROOT, 'dist', '.test-build-lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (let waited = 0; ; waited += 200) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 300_000) rmSync(lock, { recursive: true, force: true });
      if (waited > 300_000) throw new Error(`${lock}: another test process holds the build lock`);
      sleep(200);
    }
  }
  try {
    // Errors elsewhere in the tree still emit; what matters is that the CLI is there.
    spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
    for (const script of ['build-dts.mjs', 'build-cli.mjs']) {
      const run = spawnSync(process.execPath, [join(ROOT, 'scripts', script)], { cwd: ROOT, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`scripts/${script} failed:\n${run.stderr}`);
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} missing after the build: run \`node scripts/setup.mjs\``);
  built = true;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  /** stderr without the drivers' harmless lines. */
  stderr: string;
  stderrLines: string[];
}

/** `moec <args>`, asynchronously (so vitest's timers keep running while lavapipe works). */
export async function moec(args: string[], cwd = ROOT): Promise<CliResult> {
  ensureBuiltCli();
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const status = await new Promise<number | null>((ok) => child.on('close', ok));
  const stderrLines = stderr.split('\n').filter((l) => l !== '' && !NOISE.some((n) => n.test(l)));
  return { status, stdout, stderr: stderrLines.join('\n'), stderrLines };
}
