import { parseArgs } from 'node:util';
import { printGraph } from '../../ir/print.js';
import { compileModelGraph, compileMoeBlockGraph, passNames } from '../pipeline.js';
import { loadSpec, UsageError, type Command } from './command.js';

export const irCommand: Command = {
  name: 'ir',
  summary: 'print the IR of a spec (whole model or one MoE block)',
  usage: 'moec ir <spec.moe> [--layer N] [--print-ir-after=<pass>|all] [--verify-each]',
  help: [
    'Prints the IR after all passes. Options:',
    '  --layer N               only layer N\'s MoE block (what `moec run --layer N` executes)',
    `  --print-ir-after=P      also print the IR after pass P (${passNames().join(', ')}, or all)`,
    '  --verify-each           run the IR verifier after every pass',
  ].join('\n'),
  run(args) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: { layer: { type: 'string' }, 'print-ir-after': { type: 'string' }, 'verify-each': { type: 'boolean' } },
    });
    if (positionals.length !== 1) throw new UsageError('ir takes one spec');
    const after = values['print-ir-after'];
    if (after !== undefined && after !== 'all' && !passNames().includes(after)) {
      throw new UsageError(`--print-ir-after: unknown pass \`${after}\`; passes: ${passNames().join(', ')}, all`);
    }
    const { config } = loadSpec(positionals[0]!);
    if (!config) return 1;
    const options = { verifyEach: values['verify-each'] ?? false, ...(after ? { printIrAfter: after } : {}) };
    const layer = values.layer === undefined ? undefined : Number(values.layer);
    if (layer !== undefined && !(Number.isInteger(layer) && layer >= 0 && layer < config.layers)) {
      throw new UsageError(`--layer must be a layer index 0..${config.layers - 1}, got ${values.layer}`);
    }
    let graph;
    try {
      graph = layer === undefined ? compileModelGraph(config, options) : compileMoeBlockGraph(config, layer, options);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!after) process.stdout.write(printGraph(graph));
    return 0;
  },
};
