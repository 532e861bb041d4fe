// The shape of a subcommand and the shared helpers they use: reading a spec and reporting
// its diagnostics the way a compiler does, and writing files atomically.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ModelConfig } from '../../ir/model-config.js';
import { checkSpec, type CheckResult } from '../spec/check.js';
import { formatDiagnostic, hasErrors } from '../spec/diagnostics.js';
import { parseSpec } from '../spec/parse.js';
import { pluginRequestsOf } from '../spec/plugin-paths.js';
import { loadPlugins } from '../plugins/load-plugins.js';
import { PluginError, Registry } from '../plugins/registry.js';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Longer help: options and examples. */
  help: string;
  run(args: string[]): Promise<number> | number;
}

/** An error the user caused (bad flag, missing file): printed without a stack trace. */
export class UsageError extends Error {}

/** A flag's value as a whole number >= 1 (`--workers 4`), undefined when not given; anything else is a usage error. */
export function positiveIntegerFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag} must be a whole number >= 1, got ${text}`);
  return n;
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export interface LoadedSpec {
  config?: ModelConfig;
  result: CheckResult;
  source: string;
  /** The builtin kinds, ops, kernels and passes plus the spec's `plugins = [...]` and `--plugin`s. */
  registry: Registry;
}

/** `--plugin FILE`, repeatable, on every command that reads a spec. */
export const pluginOption = { plugin: { type: 'string', multiple: true } } as const;
export const pluginHelp = '  --plugin FILE           load a plugin module (an ES module: export default definePlugin({...})); repeatable';

/**
 * Parses and validates a spec with the plugins it names (`compile { plugins = [...] }`, relative
 * to the spec) and those given with --plugin; prints every diagnostic to stderr. No config when it
 * has errors or a plugin cannot be loaded.
 */
export async function loadSpec(path: string, cliPlugins: readonly string[] = []): Promise<LoadedSpec> {
  const source = readText(path);
  let registry = Registry.builtin();
  const { ast } = parseSpec(source, path);
  try {
    registry = await loadPlugins(cliPlugins.map((p) => ({ path: p })), {}, registry);
    registry = await loadPlugins(pluginRequestsOf(ast), { specFile: path, specSource: source }, registry);
  } catch (e) {
    if (!(e instanceof PluginError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return { result: { ast, diagnostics: [] }, source, registry };
  }
  const result = checkSpec(source, path, registry.kinds);
  for (const d of result.diagnostics) process.stderr.write(formatDiagnostic(d, source) + '\n');
  if (hasErrors(result.diagnostics)) {
    const n = result.diagnostics.filter((d) => d.severity === 'error').length;
    process.stderr.write(`${n} error${n === 1 ? '' : 's'} in ${path}\n`);
    return { result, source, registry };
  }
  return { config: result.config!, result, source, registry };
}

/** Writes via a temporary file and a rename, so a failure never leaves half a file behind. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    if (!existsSync(dirname(path))) throw new UsageError(`${path}: folder ${dirname(path)} does not exist`);
    writeFileSync(temporary, content);
    renameSync(temporary, path);
  } catch (e) {
    rmSync(temporary, { force: true });
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${path}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
