import { parseArgs } from 'node:util';
import { printModule } from '../../ir/print.js';
import { compileModelModule, compileMoeBlockModule, passNames } from '../pipeline.js';
import { loadSpec, pluginHelp, pluginOption, UsageError, type Command } from './command.js';
import { withExpertFormats } from './compile-command.js';

export const irCommand: Command = {
  name: 'ir',
  summary: 'print the IR of a spec (whole model or one MoE block)',
  usage: 'moec ir <spec.moe> [--layer N] [--weights DIR] [--print-ir-after=<pass>|all] [--verify-each] [--disable-pass=<pass>]... [--plugin FILE]...',
  help: [
    'Prints the IR after all passes. With --layer, the MoE block lowered for WebGPU: one function per',
    'path (@prefill, @decode) of kernel-level ops; without, the whole decoder, lowered as far as the',
    'WebGPU kernels go (attention and norms have no kernel yet, so legalize-webgpu is left out). Options:',
    '  --layer N               only layer N\'s MoE block (what `moec run --layer N` executes)',
    `  --print-ir-after=P      also print the IR after pass P (${passNames().join(', ')}, or all)`,
    '  --verify-each           run the IR verifier after every pass',
    '  --disable-pass=P        leave pass P out of the pipeline (repeatable)',
    '  --weights DIR            the checkpoint, for `quantize experts = mixed(...)`: each expert\'s format chosen from it',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: { layer: { type: 'string' }, 'print-ir-after': { type: 'string' }, 'verify-each': { type: 'boolean' }, 'disable-pass': { type: 'string', multiple: true }, weights: { type: 'string' }, ...pluginOption },
    });
    if (positionals.length !== 1) throw new UsageError('ir takes one spec');
    const loaded = await loadSpec(positionals[0]!, values.plugin);
    const { registry } = loaded;
    // The report goes to stderr: stdout carries the IR.
    const config = loaded.config && (await withExpertFormats(loaded.config, positionals[0]!, values.weights, registry, 'ir', (t) => void process.stderr.write(t)));
    if (!config) return 1;
    // A plugin's passes have names too: check the flags against the registry's pipeline.
    const names = passNames(registry.passes);
    const after = values['print-ir-after'];
    if (after !== undefined && after !== 'all' && !names.includes(after)) {
      throw new UsageError(`--print-ir-after: unknown pass \`${after}\`; passes: ${names.join(', ')}, all`);
    }
    const disabled = values['disable-pass'] ?? [];
    for (const name of disabled) if (!names.slice(1).includes(name)) throw new UsageError(`--disable-pass: unknown pass \`${name}\`; passes: ${names.slice(1).join(', ')}`);
    const options = { registry, verifyEach: values['verify-each'] ?? false, disabledPasses: disabled, ...(after ? { printIrAfter: after } : {}) };
    const layer = values.layer === undefined ? undefined : Number(values.layer);
    if (layer !== undefined && !(Number.isInteger(layer) && layer >= 0 && layer < config.layers)) {
      throw new UsageError(`--layer must be a layer index 0..${config.layers - 1}, got ${values.layer}`);
    }
    let module;
    try {
      module = layer === undefined ? compileModelModule(config, options) : compileMoeBlockModule(config, layer, options);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!after) process.stdout.write(printModule(module, new Set(Object.keys(registry.kernels.ops))));
    return 0;
  },
};
