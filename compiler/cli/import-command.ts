import { parseArgs } from 'node:util';
import { ImportError } from '../import/config-reader.js';
import { familyImporters, importHfConfig, type ImportResult } from '../import/import-config.js';
import { readText, UsageError, writeFileAtomic, type Command } from './command.js';

export const importCommand: Command = {
  name: 'import',
  summary: 'turn a Hugging Face config.json into a .moe spec',
  usage: 'moec import <config.json> [-o out.moe]',
  help: [
    `Supported model_type values: ${Object.keys(familyImporters).join(', ')}.`,
    'The generated spec is checked before it is printed or written; what the config asks for and',
    'the language cannot express is listed in comments at its top and on stderr.',
    'Options:',
    '  -o, --output FILE   write the spec to FILE (atomically) instead of stdout',
  ].join('\n'),
  run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { output: { type: 'string', short: 'o' } } });
    if (positionals.length !== 1) throw new UsageError('import takes one config.json');
    const file = positionals[0]!;
    let result: ImportResult;
    try {
      result = importHfConfig(readText(file), file);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      process.stderr.write(e instanceof ImportError ? `${e.message}\n` : `moec import: ${(e as Error).message}\n`);
      return 1;
    }
    for (const note of result.notes) process.stderr.write(`${file}: note: ${note}\n`);
    if (values.output === undefined) process.stdout.write(result.source);
    else writeFileAtomic(values.output, result.source);
    return 0;
  },
};
