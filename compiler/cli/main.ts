#!/usr/bin/env node
// `moec <command>`: the table of subcommands and the shell that runs one.
import { checkCommand } from './check-command.js';
import { compileCommand } from './compile-command.js';
import { UsageError, type Command } from './command.js';
import { fmtCommand } from './fmt-command.js';
import { importCommand } from './import-command.js';
import { irCommand } from './ir-command.js';
import { packCommand } from './pack-command.js';
import { placeCommand } from './place-command.js';
import { runCommand } from './run-command.js';
import { statsCommand } from './stats-command.js';
import { traceCommand } from './trace-command.js';
import { tuneCommand } from './tune-command.js';

const commands: Command[] = [checkCommand, statsCommand, irCommand, importCommand, fmtCommand, compileCommand, runCommand, traceCommand, placeCommand, packCommand, tuneCommand];

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'moec: a compiler for Mixture-of-Experts models (.moe specs -> IR -> WGSL -> WebGPU bundles)',
    '',
    'Usage: moec <command> [options]   (moec <command> --help for its options)',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`moec: unknown command \`${name}\`\n\n${usage()}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`Usage: ${command.usage}\n\n${command.summary}\n\n${command.help}\n`);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`moec ${name}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
