// The shape of a subcommand and the shared helpers they use: reading a spec and reporting
// its diagnostics the way a compiler does, and writing files atomically.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ModelConfig } from '../../ir/model-config.js';
import { checkSpec, type CheckResult } from '../spec/check.js';
import { formatDiagnostic, hasErrors } from '../spec/diagnostics.js';

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

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Parses and validates a spec; prints every diagnostic to stderr. Undefined when it has errors. */
export function loadSpec(path: string): { config?: ModelConfig; result: CheckResult; source: string } {
  const source = readText(path);
  const result = checkSpec(source, path);
  for (const d of result.diagnostics) process.stderr.write(formatDiagnostic(d, source) + '\n');
  if (hasErrors(result.diagnostics)) {
    const n = result.diagnostics.filter((d) => d.severity === 'error').length;
    process.stderr.write(`${n} error${n === 1 ? '' : 's'} in ${path}\n`);
    return { result, source };
  }
  return { config: result.config!, result, source };
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
