// `moec pack <spec> --weights <checkpoint> -o <dir>`: the whole model's weights packed ahead of time
// in their storage formats (compiler/pack/pack-model.ts), as safetensors shards under the target's
// storage-binding limit with a manifest of their sha256; loading such a directory
// (runtime/node/packed-dir.ts, runtime/packed/) verifies each shard and packs nothing.
import { existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadSpec, pluginHelp, pluginOption, positiveIntegerFlag, readText, UsageError, type Command } from './command.js';
import { withExpertFormats } from './compile-command.js';

/** Errors whose message names the file or weight at fault: one line, exit 1. */
const REPORTED_ERRORS = new Set(['PackError', 'CheckpointError', 'SafetensorsError', 'HfWeightsError', 'WeightCodecError']);

const MB = 1e6;
const formatMB = (bytes: number): string => (bytes < 1e5 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / MB).toFixed(1)} MB`);

/** A progress bar on stderr (cli-progress: bytes written, MB/s, ETA), only when stderr is a terminal. */
async function progressBar(): Promise<{ update(done: number, total: number): void; stop(): void } | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const { default: progress } = await import('cli-progress');
  const bar = new progress.SingleBar({
    stream: process.stderr,
    format: 'packing [{bar}] {percentage}% | {value} of {total} MB | {speed} MB/s | ETA {eta_formatted}',
    formatValue: (v, _options, type) => (type === 'value' || type === 'total' ? (v / MB).toFixed(1) : String(v)),
    hideCursor: true,
    etaBuffer: 200,
  }, progress.Presets.shades_classic);
  const start = performance.now();
  let started = false;
  return {
    update(done, total) {
      const speed = (done / MB / Math.max(1e-3, (performance.now() - start) / 1000)).toFixed(1);
      if (!started) bar.start(total, done, { speed });
      else bar.update(done, { speed });
      started = true;
    },
    stop: () => bar.stop(),
  };
}


export const packCommand: Command = {
  name: 'pack',
  summary: 'pack a checkpoint\'s weights in their storage formats ahead of time: shards under the binding limit, sha256 manifest',
  usage: 'moec pack <spec.moe> --weights <checkpoint-dir> -o <dir> [--max-binding N] [--disable-pass=P]... [--workers N] [--plugin FILE]...',
  help: [
    'Compiles the whole model of a spec, reads its weights from a Hugging Face checkpoint and writes them into <dir> as',
    'the plan stores them on the GPU (quantized experts as packed words, other weights as f32): one safetensors tensor per',
    'weight buffer, named after it, in shards of at most the storage-binding limit, and manifest.json with each shard\'s',
    'sha256 and the plan\'s weights fingerprint. Loading the directory verifies each shard as it reads it (a mismatching',
    'one is refused, naming it), refuses a pack made for another spec or plan, and packs nothing. Packing runs in worker',
    'threads, one weight buffer piece at a time, so memory stays bounded; a progress bar shows on a terminal.',
    'The directory is written atomically: a failure leaves it as it was. An existing <dir> is replaced only if it is',
    'empty or a previous pack.',
    'Options:',
    '  --weights DIR           Hugging Face checkpoint: config.json and model.safetensors or shards + index',
    '  -o, --output DIR        the packed directory (required)',
    '  --max-binding N         pack for a plan compiled with this maxStorageBufferBindingSize (as moec compile --max-binding);',
    '                          the shards are at most N bytes',
    '  --disable-pass=P        leave pass P out, as the bundle was compiled (repeatable)',
    '  --workers N             worker threads (default: the CPUs available, at most 8)',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: {
        weights: { type: 'string' }, output: { type: 'string', short: 'o' }, 'max-binding': { type: 'string' },
        'disable-pass': { type: 'string', multiple: true }, workers: { type: 'string' }, ...pluginOption,
      },
    });
    if (positionals.length !== 1) throw new UsageError('pack takes one spec');
    if (values.weights === undefined) throw new UsageError('pack needs --weights DIR, a Hugging Face checkpoint');
    if (!existsSync(values.weights) || !statSync(values.weights).isDirectory()) throw new UsageError(`--weights ${values.weights}: no such directory`);
    if (!values.output) throw new UsageError('pack needs -o <dir>, the packed directory to write');
    const maxBinding = positiveIntegerFlag('max-binding', values['max-binding']);
    if (maxBinding !== undefined && !(maxBinding >= 1024 && maxBinding % 4 === 0)) {
      throw new UsageError(`--max-binding must be a byte count, a multiple of 4 of at least 1024, got ${values['max-binding']}`);
    }
    const workers = positiveIntegerFlag('workers', values.workers);
    const specFile = positionals[0]!;
    const loaded = await loadSpec(specFile, values.plugin);
    const { registry } = loaded;
    const config = loaded.config && (await withExpertFormats(loaded.config, specFile, values.weights, registry, 'pack'));
    if (!config) return 1;
    const { packModel, refuseToReplace } = await import('../pack/pack-model.js'); // worker_threads and the compiler load only when packing
    try {
      refuseToReplace(values.output);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const bar = await progressBar();
    try {
      const result = await packModel(config, {
        registry, checkpoint: values.weights, output: values.output, specFile, specSource: readText(specFile),
        disabledPasses: values['disable-pass'] ?? [],
        ...(maxBinding ? { maxStorageBufferBindingSize: maxBinding } : {}),
        ...(workers ? { workers } : {}),
        ...(bar ? { onProgress: (done: number, total: number) => bar.update(done, total) } : {}),
      });
      bar?.stop();
      const { manifest } = result;
      const buffers = manifest.shards.reduce((n, s) => n + s.tensors.length, 0);
      process.stdout.write(`${values.output}: ${manifest.model}, ${buffers} weight buffers in ${manifest.shards.length} shard${manifest.shards.length === 1 ? '' : 's'} ` +
        `(${formatMB(result.bytes)}; at most ${formatMB(result.largestShardWeights)} of weights each, the binding limit ${formatMB(manifest.maxStorageBufferBindingSize)})\n`);
      process.stdout.write(`packed ${formatMB(result.checkpointBytes)} of checkpoint in ${result.seconds.toFixed(2)} s ` +
        `(${(result.checkpointBytes / MB / result.seconds).toFixed(1)} MB/s) with ${result.workers} worker${result.workers === 1 ? '' : 's'}, peak memory ${formatMB(result.peakRssBytes)}\n`);
      return 0;
    } catch (e) {
      bar?.stop();
      if (e instanceof Error && REPORTED_ERRORS.has(e.name)) {
        process.stderr.write(`moec pack: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
        return 1;
      }
      throw e;
    }
  },
};
