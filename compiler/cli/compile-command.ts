import { parseArgs } from 'node:util';
import type { BundleManifest } from '../../codegen/bundle/manifest.js';
import { loadSpec, pluginHelp, pluginOption, UsageError, type Command } from './command.js';

/** `dispatches per MoE block: prefill 7, decode 3 (layers 0..23)`, one line per distinct pair. */
function dispatchReport(plans: BundleManifest['plans']): string {
  const byCounts = new Map<string, number[]>();
  for (const p of plans) {
    const key = `prefill ${p.prefill.dispatches}, decode ${p.decode.dispatches} (T <= ${p.decode.maxTokens})`;
    byCounts.set(key, [...(byCounts.get(key) ?? []), p.layer]);
  }
  return [...byCounts].map(([counts, layers]) => `dispatches per MoE block: ${counts}, layers ${layers.length > 3 ? `${layers[0]}..${layers.at(-1)}` : layers.join(', ')}\n`).join('');
}

export const compileCommand: Command = {
  name: 'compile',
  summary: 'compile a spec into a deployable WebGPU bundle (model.js, model.d.ts, manifest.json)',
  usage: 'moec compile <spec.moe> -o <dir> [--disable-pass=<pass>]... [--plugin FILE]...',
  help: [
    'Compiles the MoE block of every MoE layer to WGSL and writes, into <dir>:',
    '  model.js       one ES module (runtime + plans + kernels) that loads in Node and in browsers',
    '  model.d.ts     its typed API: load({ gpu, weights }) -> Model with runMoeBlock(layer, hidden, tokens)',
    '  manifest.json  spec sha256, moec version, kernels with hashes, tuning used, weight layout (IR and HF names)',
    '  README.md      how to load it in Node and in a browser',
    'The directory is written atomically: a failure leaves it as it was. An existing <dir> is',
    'replaced only if it is empty or a previous bundle.',
    'Options:',
    '  -o, --output DIR   the bundle directory (required)',
    '  --max-binding N    compile for adapters whose maxStorageBufferBindingSize is N bytes (default: WebGPU\'s',
    '                     134217728); experts are sharded to fit it, and the bundle refuses a smaller adapter',
    '  --disable-pass=P   leave pass P out of the pipeline (repeatable; e.g. fuse-decode)',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { output: { type: 'string', short: 'o' }, 'disable-pass': { type: 'string', multiple: true }, 'max-binding': { type: 'string' }, ...pluginOption } });
    const maxBinding = values['max-binding'] === undefined ? undefined : Number(values['max-binding']);
    if (maxBinding !== undefined && !(Number.isSafeInteger(maxBinding) && maxBinding >= 1024 && maxBinding % 4 === 0)) {
      throw new UsageError(`--max-binding must be a byte count, a multiple of 4 of at least 1024, got ${values['max-binding']}`);
    }
    if (positionals.length !== 1) throw new UsageError('compile takes one spec');
    if (!values.output) throw new UsageError('compile needs -o <dir>, the bundle directory to write');
    const specFile = positionals[0]!;
    const { config, source, registry } = await loadSpec(specFile, values.plugin);
    if (!config) return 1;
    // Loaded on use: esbuild and Handlebars would slow every other command's start.
    const [{ compileBundle }, { BundleWriteError }] = await Promise.all([import('../compile-bundle.js'), import('../../codegen/bundle/write-bundle.js')]);
    try {
      const manifest = await compileBundle(config, source, specFile, values.output, { registry, disabledPasses: values['disable-pass'] ?? [], ...(maxBinding ? { maxStorageBufferBindingSize: maxBinding } : {}) });
      const bytes = manifest.files['model.js']!.bytes;
      process.stdout.write(`${values.output}: ${manifest.model}, ${manifest.moeLayers.length} MoE layer(s), ` +
        `${manifest.kernels.length} distinct kernel(s), model.js ${(bytes / 1024).toFixed(1)} KiB\n`);
      process.stdout.write(dispatchReport(manifest.plans));
      process.stdout.write(wholeModelReport(manifest.wholeModel));
      return 0;
    } catch (e) {
      if (e instanceof BundleWriteError) throw new UsageError(e.message);
      process.stderr.write(`moec compile: ${specFile}: ${(e as Error).message}\n`);
      return 1;
    }
  },
};

/** `whole model: prefill 59 dispatches, decode 39 + sampler 20 per token, context 4096 (f32 KV cache)`, or why the bundle has none. */
function wholeModelReport(model: BundleManifest['wholeModel']): string {
  if (!model.available) return `whole model: not in this bundle (MoE blocks only): ${model.reason}\n`;
  return `whole model: prefill ${model.prefill.dispatches} dispatches, decode ${model.decode.dispatches} + sampler ${model.sampler.dispatches} per token, ` +
    `context ${model.context} (${model.kvCache} KV cache)\n`;
}
