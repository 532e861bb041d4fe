import { loadSpec, type Command } from './command.js';

export const checkCommand: Command = {
  name: 'check',
  summary: 'parse and validate .moe specs',
  usage: 'moec check <spec.moe>...',
  help: 'Reports every syntax and semantic error as file:line:col with the line, a caret and a hint.\nExit status 1 when any spec has an error.',
  run(args) {
    if (args.length === 0) throw new Error('no spec given');
    let failed = 0;
    for (const path of args) {
      const { config } = loadSpec(path);
      if (config) process.stdout.write(`${path}: ok (${config.name})\n`);
      else failed++;
    }
    return failed ? 1 : 0;
  },
};
