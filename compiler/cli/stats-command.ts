import { parseArgs } from 'node:util';
import { compileModelGraph } from '../pipeline.js';
import { computeStats, formatStats } from '../stats.js';
import { loadSpec, pluginHelp, pluginOption, UsageError, type Command } from './command.js';
import { withExpertFormats } from './compile-command.js';

export const statsCommand: Command = {
  name: 'stats',
  summary: 'parameters, active parameters, FLOPs per token and weight bytes of a spec',
  usage: 'moec stats <spec.moe> [--json] [--context N] [--weights DIR] [--plugin FILE]...',
  help: [
    'Options:',
    '  --json         print {"totalParams", "activeParams", "activeParamsNonEmbedding", "flopsPerToken", "weightBytes", ...}',
    '  --context N    context length for FLOPs per token (default: the spec\'s compile.context, 4096)',
    '  --weights DIR   the checkpoint, for `quantize experts = mixed(...)`: each expert\'s format chosen from it',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, context: { type: 'string' }, weights: { type: 'string' }, ...pluginOption } });
    if (positionals.length !== 1) throw new UsageError('stats takes one spec');
    const context = values.context === undefined ? undefined : Number(values.context);
    if (context !== undefined && !(Number.isSafeInteger(context) && context > 0 && context <= 2 ** 24)) throw new UsageError(`--context must be a whole number from 1 to ${2 ** 24}, got ${values.context}`);
    const loaded = await loadSpec(positionals[0]!, values.plugin);
    const { registry } = loaded;
    // The report goes to stderr: stdout carries the figures.
    const config = loaded.config && (await withExpertFormats(loaded.config, positionals[0]!, values.weights, registry, 'stats', (t) => void process.stderr.write(t)));
    if (!config) return 1;
    const stats = computeStats(compileModelGraph(config, { registry }), config, context);
    process.stdout.write(values.json ? JSON.stringify(stats, null, 2) + '\n' : formatStats(config.name, stats));
    return 0;
  },
};
