// `moec tune`: per-GPU autotuning of a spec's (or a bundle's) MoE block kernels on this machine's
// adapter (compiler/tune/tuner.ts), results kept per adapter in the cache directory and written to
// -o; `--merge` joins several runs' files (several GPUs) into one.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ModelConfig } from '../../ir/model-config.js';
import { describeAdapter, sameAdapter } from '../../runtime/tuning/adapter-identity.js';
import { emptyTuningFile, mergeTuningFiles, TUNING_FORMAT, type TuningEntry, type TuningFile } from '../../runtime/tuning/tuning-file.js';
import { cacheFileOf, readTuningFile, tuningCacheDir, writeTuningFile } from '../tune/tuning-cache.js';
import { loadSpec, pluginHelp, pluginOption, UsageError, type Command } from './command.js';
import type { TuneEvent } from '../tune/tuner.js';

const warn = (message: string): void => void process.stderr.write(`moec tune: warning: ${message}\n`);

/** `120s`, `2m`, `500ms` or plain seconds -> milliseconds. */
export function parseBudget(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new UsageError(`--budget must be a duration such as 120s, 2m or 500ms, got ${JSON.stringify(text)}`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
}

export function parseTokens(text: string): number[] {
  const tokens = text.split(',').map((t) => Number(t.trim()));
  if (!tokens.length || tokens.some((t) => !Number.isSafeInteger(t) || t < 1)) throw new UsageError(`--tokens must be positive whole numbers separated by commas, got ${JSON.stringify(text)}`);
  return tokens;
}

async function configOf(path: string, plugins: readonly string[]): Promise<{ config?: ModelConfig; registry?: Awaited<ReturnType<typeof loadSpec>>['registry'] }> {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const manifest = join(path, 'manifest.json');
    if (!existsSync(manifest)) throw new UsageError(`${path}: not a bundle (no manifest.json) and not a spec`);
    const { config } = JSON.parse(readFileSync(manifest, 'utf8')) as { config: ModelConfig };
    return { config };
  }
  const { config, registry } = await loadSpec(path, plugins);
  return { config, registry };
}

/** A progress bar (cli-progress) on a terminal: candidates done of all, ETA, the task at hand. */
async function progress(): Promise<((e: TuneEvent) => void) | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'tuning [{bar}] {value}/{total} candidates | ETA {eta_formatted} | {task}', hideCursor: true, etaBuffer: 20 }, cliProgress.Presets.shades_classic);
  let done = 0;
  return (e) => {
    if (e.kind === 'start') bar.start(e.candidates, 0, { task: '' });
    else if (e.kind === 'candidate') bar.update(++done, { task: e.task });
    else if (e.kind === 'task') bar.setTotal(Math.max(done, bar.getTotal()));
    if (e.kind === 'task' && e.task === lastTask) bar.stop();
  };
}
let lastTask = '';

const ms = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(3));

export function resultTable(entries: readonly TuningEntry[]): string {
  const rows = [['family', 'tokens', 'default', 'kept', 'default ms', 'tuned ms', 'speedup', 'measured', 'refused', 'state']];
  for (const e of entries) {
    const text = (p: Record<string, number>) => Object.entries(p).map(([k, v]) => `${k}${v}`).join(' ');
    rows.push([e.family, String(e.tokens), text(e.default), `${text(e.config)} (${e.kept})`, ms(e.defaultMs), ms(e.tunedMs),
      e.defaultMs && e.tunedMs ? `${(e.defaultMs / e.tunedMs).toFixed(2)}x` : '-', String(e.measured.length), String(e.refused.length), e.done ? 'done' : 'budget'] as string[]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export const tuneCommand: Command = {
  name: 'tune',
  summary: 'autotune a spec\'s kernels on this GPU; results cached per adapter (and -o)',
  usage: 'moec tune <spec.moe|bundle-dir> [--tokens 1,8,64,512] [--budget 120s] [-o tuning.json] [--cache-dir DIR]\n       moec tune --merge a.json b.json ... -o all.json',
  help: [
    'Tunes the first MoE layer\'s block on this machine\'s WebGPU adapter, per kernel family and token',
    'bucket: the grouped GEMM tiles (gate/up and down; prefill buckets above 8 tokens), the fused',
    'decode kernels\' rows per workgroup (decode.rows; buckets up to 8) and the decode/prefill',
    'crossover (buckets 2..8). Each candidate is checked against the CPU interpreter on',
    'random data (a wrong one is reported, never kept; one the adapter refuses is skipped with the',
    'reason) and timed (GPU timestamps when the adapter has timestamp-query, else wall clock; median);',
    'the fastest is re-timed against the default and kept only if it wins beyond the noise.',
    'Results go, after every candidate, to <cache-dir>/<adapter>.json, so an interrupted run resumes.',
    'Options:',
    '  --tokens LIST      token buckets (default 1,8,64,512)',
    '  --budget TIME      time for the whole search, e.g. 120s, 5m (default 120s); stops with the best so far',
    '  -o, --output FILE  also write (merge into) this tuning file',
    '  --cache-dir DIR    the tuning cache (default $MOEC_CACHE_DIR, else $XDG_CACHE_HOME/moec, else ~/.cache/moec)',
    '  --layer N          the MoE layer to tune (default the first)',
    '  --max-candidates N most tiles tried per GEMM and bucket (default 24)',
    '  --merge FILES...   merge tuning files (runs on several GPUs) into -o; nothing is tuned',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
      tokens: { type: 'string' }, budget: { type: 'string' }, output: { type: 'string', short: 'o' }, 'cache-dir': { type: 'string' },
      layer: { type: 'string' }, 'max-candidates': { type: 'string' }, merge: { type: 'boolean' }, ...pluginOption,
    } });
    if (values.merge) {
      if (!values.output) throw new UsageError('--merge needs -o <file>, the merged tuning file');
      if (!positionals.length) throw new UsageError('--merge needs the tuning files to merge');
      const files = positionals.map((p) => {
        if (!existsSync(p)) throw new UsageError(`${p}: no such file`);
        return readTuningFile(p, warn);
      }).filter((f): f is TuningFile => f !== undefined);
      const merged = mergeTuningFiles(files);
      writeTuningFile(values.output, merged);
      process.stdout.write(`${values.output}: ${merged.adapters.length} adapter(s), ${merged.adapters.reduce((n, a) => n + a.entries.length, 0)} entries from ${files.length} file(s)\n`);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('tune takes one spec or bundle directory');
    const budgetMs = parseBudget(values.budget ?? '120s');
    const tokens = values.tokens === undefined ? undefined : parseTokens(values.tokens);
    const layer = values.layer === undefined ? undefined : Number(values.layer);
    const maxCandidates = values['max-candidates'] === undefined ? undefined : Number(values['max-candidates']);
    const { config, registry } = await configOf(positionals[0]!, values.plugin ?? []);
    if (!config) return 1;
    const [{ useSoftwareVulkanIfNeeded }, { openDevice }, { tuneMoeBlock }, { adapterIdentity }] = await Promise.all([
      import('./run-command.js'), import('../../runtime/device.js'), import('../tune/tuner.js'), import('../../runtime/tuning/adapter-identity.js')]);
    await useSoftwareVulkanIfNeeded();
    const { createNodeGpu } = await import('../../runtime/node/dawn.js');
    const rt = await openDevice({ gpu: createNodeGpu(), label: 'moec tune' });
    try {
      const identity = adapterIdentity(rt.info, rt.adapter);
      const cacheFile = cacheFileOf(tuningCacheDir(values['cache-dir']), identity);
      const file = readTuningFile(cacheFile, warn) ?? emptyTuningFile();
      const bar = await progress();
      const result = await tuneMoeBlock(rt, config, {
        tokens, budgetMs, file, save: (f) => writeTuningFile(cacheFile, f), ...(registry ? { plan: { registry } } : {}),
        ...(layer !== undefined ? { layer } : {}), ...(maxCandidates !== undefined ? { maxCandidates } : {}),
        onEvent(e) {
          if (e.kind === 'start') {
            lastTask = e.tasks.at(-1) ?? '';
            process.stderr.write(`adapter: ${describeAdapter(e.adapter)}; ${e.tasks.length} task(s), ${e.candidates} candidate(s), timed with ${e.clock}\n`);
          }
          bar?.(e);
        },
      });
      for (const r of result.refused) process.stderr.write(`refused: ${r}\n`);
      process.stdout.write(resultTable(result.entries));
      if (result.outOfBudget) process.stdout.write(`the budget ran out: the best so far is kept; rerun to continue (${cacheFile})\n`);
      process.stdout.write(`cache: ${cacheFile}\n`);
      if (values.output) {
        const previous = existsSync(values.output) ? readTuningFile(values.output, warn) : undefined;
        const mine: TuningFile = { format: TUNING_FORMAT, adapters: file.adapters.filter((a) => sameAdapter(a.adapter, result.adapter)) };
        writeTuningFile(values.output, mergeTuningFiles([...(previous ? [previous] : []), mine]));
        process.stdout.write(`wrote ${values.output}\n`);
      }
      return 0;
    } finally {
      rt.destroy();
    }
  },
};
