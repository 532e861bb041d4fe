import { parseArgs } from 'node:util';
import { formatDiagnostic } from '../spec/diagnostics.js';
import { formatSpec } from '../spec/format.js';
import { readText, UsageError, writeFileAtomic, type Command } from './command.js';

export const fmtCommand: Command = {
  name: 'fmt',
  summary: 'format .moe specs in the canonical layout',
  usage: 'moec fmt <spec.moe>... [--write | --check]',
  help: [
    'Prints each spec formatted (two-space indent, one field per line, comments kept). Options:',
    '  --write   rewrite the files that are not formatted, in place',
    '  --check   print nothing formatted; list the files that are not formatted and exit 1 if any',
    'A spec with a syntax error is reported (exit status 1) and nothing is printed or written.',
  ].join('\n'),
  run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { write: { type: 'boolean' }, check: { type: 'boolean' } } });
    if (positionals.length === 0) throw new UsageError('no spec given');
    if (values.write && values.check) throw new UsageError('--write and --check cannot be combined');

    // Format everything first: one broken spec means nothing is printed or written.
    const results = positionals.map((path) => {
      const source = readText(path);
      return { path, source, ...formatSpec(source, path) };
    });
    let broken = 0;
    for (const { path, source, text, diagnostics } of results) {
      for (const d of diagnostics) process.stderr.write(formatDiagnostic(d, source) + '\n');
      if (text === undefined) {
        broken++;
        process.stderr.write(`${path}: not formatted: fix the syntax errors above first\n`);
      }
    }
    if (broken) return 1;

    const changed = results.filter((r) => r.text !== r.source);
    if (values.check) {
      for (const { path } of changed) process.stdout.write(`${path}: not formatted\n`);
      if (changed.length) process.stderr.write(`run \`moec fmt --write ${changed.map((r) => r.path).join(' ')}\` to format ${changed.length === 1 ? 'it' : 'them'}\n`);
      return changed.length ? 1 : 0;
    }
    if (values.write) {
      for (const { path, text } of changed) {
        writeFileAtomic(path, text!);
        process.stdout.write(`${path}: formatted\n`);
      }
      return 0;
    }
    for (const { text } of results) process.stdout.write(text!);
    return 0;
  },
};
