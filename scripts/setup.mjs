#!/usr/bin/env node
// Project set-up, run before `npm test` and `npm start`: node_modules, a Vulkan driver for Dawn,
// Chromium for the browser tests, the TypeScript build. Each step is skipped when already done.
// Plain Node with no dependencies: it runs before `npm install`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, openSync, closeSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCli, CLI_BUNDLE } from './build-cli.mjs';
import { buildRuntimeApiDts } from './build-dts.mjs';
import { findLavapipeIcd, hasHardwareGpu, hasVulkanLoader, listVulkanIcds } from './vulkan-env.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const logFile = join(tmpdir(), 'moec-setup.log');
const say = (msg) => console.log(`setup: ${msg}`);

class SetupError extends Error {
  constructor(message, hint, showLog = true) {
    super(message);
    this.hint = hint;
    this.showLog = showLog;
  }
}

/** Runs a command with its output appended to the log file; returns the exit status. */
let logStarted = false;
function runLogged(cmd, args, env = {}) {
  (logStarted ? appendFileSync : writeFileSync)(logFile, `$ ${cmd} ${args.join(' ')}\n`); // one run per log
  logStarted = true;
  const fd = openSync(logFile, 'a');
  try {
    const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', fd, fd], env: { ...process.env, ...env },
      shell: process.platform === 'win32' }); // npm is npm.cmd on Windows
    return r.error ? 127 : r.status;
  } finally {
    closeSync(fd);
  }
}

// ---- a. node_modules -------------------------------------------------------------------------

/** Fingerprint of what npm installs from: the lock file plus package.json's dependency fields. */
function dependencyFingerprint() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const deps = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies', 'overrides']
    .map((k) => JSON.stringify(pkg[k] ?? null));
  const lock = join(root, 'package-lock.json');
  return createHash('sha256').update(deps.join('\n')).update(existsSync(lock) ? readFileSync(lock) : '').digest('hex');
}

function ensureNodeModules() {
  const stamp = join(root, 'node_modules', '.setup-stamp');
  const lock = join(root, 'package-lock.json');
  const fingerprint = dependencyFingerprint();
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === fingerprint) return say('node_modules ok');

  // Installed by hand (no stamp yet): trust it when npm's own record is newer than the lock file.
  const npmRecord = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(stamp) && existsSync(npmRecord) && existsSync(lock) &&
      statSync(npmRecord).mtimeMs >= statSync(lock).mtimeMs) {
    writeFileSync(stamp, fingerprint);
    return say('node_modules ok');
  }

  const args = existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  say(`running npm ${args[0]} (log: ${logFile})`);
  if (runLogged('npm', args) !== 0) {
    throw new SetupError(`npm ${args[0]} failed`, args[0] === 'ci'
      ? 'if package.json changed, run `npm install` to update package-lock.json; otherwise check network access to the npm registry'
      : 'check network access to the npm registry');
  }
  writeFileSync(stamp, dependencyFingerprint()); // npm install may have rewritten the lock file
  say(`node_modules installed (npm ${args[0]})`);
}

// ---- b/c. system packages (apt) -----------------------------------------------------------------

const canApt = () => process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
const aptEnv = { DEBIAN_FRONTEND: 'noninteractive' };
const aptOpts = ['-q', '-o', 'DPkg::Lock::Timeout=600']; // wait for a concurrent apt instead of failing
let aptUpdated = false;

function aptInstall(what, args) {
  if (!aptUpdated) {
    // A partly failed update (e.g. one unreachable third-party source) still leaves usable lists.
    runLogged('apt-get', [...aptOpts, 'update'], aptEnv);
    aptUpdated = true;
  }
  say(`installing ${what} with apt-get (log: ${logFile})`);
  if (runLogged('apt-get', [...aptOpts, 'install', '-y', '--no-install-recommends', ...args], aptEnv) !== 0) {
    throw new SetupError(`apt-get could not install ${what}`, `see ${logFile}; check access to the Debian mirrors`);
  }
}

function osCodename() {
  const m = existsSync('/etc/os-release') && readFileSync('/etc/os-release', 'utf8').match(/^VERSION_CODENAME=(\w+)/m);
  return m ? m[1] : undefined;
}

/** Adds bookworm-backports to apt's sources unless some source already names it. */
function ensureBackportsSource() {
  const files = ['/etc/apt/sources.list', ...readdirSync('/etc/apt/sources.list.d').map((f) => `/etc/apt/sources.list.d/${f}`)]
    .filter((f) => /\.(list|sources)$/.test(f) && existsSync(f));
  if (files.some((f) => readFileSync(f, 'utf8').includes('bookworm-backports'))) return;
  writeFileSync('/etc/apt/sources.list.d/backports.sources', [
    'Types: deb', 'URIs: http://deb.debian.org/debian', 'Suites: bookworm-backports', 'Components: main',
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', ''].join('\n'));
  aptUpdated = false; // the new suite needs its index
}

/** Mesa 22 (plain bookworm) has a lavapipe that Dawn rejects; unknown versions are given the benefit of the doubt. */
function mesaIsRecentEnough() {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'mesa-vulkan-drivers'], { encoding: 'utf8' });
  const major = r.status === 0 ? parseInt(r.stdout.replace(/^\d+:/, ''), 10) : NaN;
  return !(major < 23);
}

// ---- b. Vulkan driver for Dawn ------------------------------------------------------------------

function ensureVulkan() {
  if (process.platform !== 'linux') return say(`vulkan step skipped (${process.platform}: Dawn uses the native GPU API)`);
  if (process.env.MOEC_SKIP_GPU === '1') return say('vulkan step skipped (MOEC_SKIP_GPU=1)');
  if (hasHardwareGpu() && hasVulkanLoader()) {
    const icds = listVulkanIcds().map((p) => p.split('/').pop()).join(', ');
    return say(`vulkan adapter ok (hardware GPU: ${icds})`);
  }
  if (findLavapipeIcd() && hasVulkanLoader() && mesaIsRecentEnough()) return say('vulkan adapter ok (lavapipe)');

  const bookworm = osCodename() === 'bookworm';
  const pkgs = ['mesa-vulkan-drivers', 'libvulkan1'];
  if (!canApt()) {
    throw new SetupError('no usable Vulkan driver for Dawn (WebGPU in Node)', [
      'install lavapipe (Mesa >= 23) and the Vulkan loader as root, e.g. on Debian 12:',
      '  add bookworm-backports to /etc/apt/sources.list.d (see /work/shared/webgpu-on-cpu.md), apt-get update,',
      `  apt-get install -y --no-install-recommends -t bookworm-backports ${pkgs.join(' ')}`,
      'or set MOEC_SKIP_GPU=1 to skip this step (GPU tests will then fail).'].join('\n'), false);
  }
  if (bookworm) ensureBackportsSource();
  aptInstall('lavapipe (Vulkan software driver)', bookworm ? ['-t', 'bookworm-backports', ...pkgs] : pkgs);
  if (!findLavapipeIcd() || !hasVulkanLoader() || !mesaIsRecentEnough()) {
    throw new SetupError('lavapipe was installed but no lvp_icd*.json, libvulkan.so.1 or Mesa >= 23 was found',
      `see ${logFile}; Dawn needs Mesa >= 23 (bookworm-backports on Debian 12)`);
  }
  say('vulkan adapter ok (lavapipe, just installed)');
}

// ---- c. Chromium for the browser tests ----------------------------------------------------------

function ensureChromium() {
  if (process.env.MOEC_SKIP_BROWSER === '1') return say('chromium skipped (MOEC_SKIP_BROWSER=1)');
  const chromium = process.env.MOEC_CHROMIUM ?? '/usr/bin/chromium';
  if (existsSync(chromium)) return say(`chromium ok (${chromium})`);
  if (!canApt()) {
    throw new SetupError(`${chromium} not found (needed by the browser tests)`, [
      'install it as root: apt-get install -y --no-install-recommends chromium',
      'or point MOEC_CHROMIUM at a Chromium binary, or set MOEC_SKIP_BROWSER=1 to skip the browser tests.'].join('\n'), false);
  }
  aptInstall('chromium', ['chromium']);
  say('chromium ok (just installed)');
}

// ---- d. TypeScript build ------------------------------------------------------------------------

/** Builds dist/; false when there is nothing to build yet. */
function buildTypeScript() {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  // `tsc -b` = `tsc -p` plus an up-to-date check that skips building the program (0.3 s instead of 1.5 s);
  // it still re-reports errors recorded by the last build. Run through node: `npx` adds start-up time.
  const r = spawnSync(process.execPath, [tsc, '-b', 'tsconfig.json'], { cwd: root, encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status === 0) {
    say('typescript build ok (dist/)');
    return true;
  }
  if (out.includes('TS18003')) {
    say('typescript build skipped (tsconfig includes no .ts files yet)');
    return false;
  }
  process.stderr.write(out);
  throw new SetupError('TypeScript build failed (errors above)', 'fix them; `npx tsc -p tsconfig.json` shows them again', false);
}

// ---- main ---------------------------------------------------------------------------------------

const started = performance.now();
try {
  ensureNodeModules();
  ensureVulkan();
  ensureChromium();
  if (buildTypeScript()) {
    say(`runtime types for model.d.ts ${(await buildRuntimeApiDts(root)) ? 'built' : 'ok'}`);
    say(`cli bundle ${(await buildCli(root)) ? 'built' : 'ok'} (${CLI_BUNDLE})`);
  }
  say(`done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
} catch (e) {
  if (!(e instanceof SetupError)) throw e;
  if (e.showLog && existsSync(logFile)) {
    console.error(`--- last lines of ${logFile} ---`);
    console.error(readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'));
  }
  console.error(`setup: FAILED: ${e.message}`);
  if (e.hint) console.error(e.hint.replace(/^/gm, 'setup:   '));
  process.exit(1);
}
