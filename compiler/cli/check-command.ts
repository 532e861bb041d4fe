import { parseArgs } from 'node:util';
import { loadSpec, pluginHelp, pluginOption, UsageError, type Command } from './command.js';

export const checkCommand: Command = {
  name: 'check',
  summary: 'parse and validate .moe specs',
  usage: 'moec check <spec.moe>... [--plugin FILE]...',
  help: `Reports every syntax and semantic error as file:line:col with the line, a caret and a hint.\nExit status 1 when any spec has an error.\nOptions:\n${pluginHelp}`,
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: pluginOption });
    if (positionals.length === 0) throw new UsageError('no spec given');
    let failed = 0;
    for (const path of positionals) {
      const { config } = await loadSpec(path, values.plugin);
      if (config) process.stdout.write(`${path}: ok (${config.name})\n`);
      else failed++;
    }
    return failed ? 1 : 0;
  },
};
