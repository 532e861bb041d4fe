import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ModelConfig } from '../../ir/model-config.js';
import type { PlanOptions } from '../moe-block-plan.js';
import type { TunedTarget } from '../tune/apply-tuning.js';
import type { LoadCandidateOptions } from '../tune/load-candidates.js';
import { DEFAULT_LOAD_CANDIDATES, DEFAULT_LOAD_PREFILL_TOKENS } from '../../runtime/tuning/load-candidates.js';
import type { BundleManifest } from '../../codegen/bundle/manifest.js';
import type { Registry } from '../plugins/registry.js';
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
  usage: 'moec compile <spec.moe> -o <dir> [--weights <checkpoint-dir>] [--tuning <file|auto>] [--load-candidates N] [--disable-pass=<pass>]... [--plugin FILE]...',
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
    '  --weights DIR      the Hugging Face checkpoint, for `quantize experts = mixed(...)`: each expert\'s format is',
    '                     chosen from its weights\' quantization error and the routing trace (HiGHS); prints the choice',
    '  --tuning FILE|auto bake in `moec tune` results: one plan set per adapter in FILE (auto: every file in the',
    '                     tuning cache), picked at load on the matching adapter; other adapters get the defaults',
    '  --tuning-tokens N  the token count whose bucket gives the prefill GEMM tiles (default: the largest tuned);',
    '                     the fused decode kernels\' rows per workgroup come from the bucket nearest 1 token',
    '  --cache-dir DIR    the tuning cache for --tuning auto (default $MOEC_CACHE_DIR, $XDG_CACHE_HOME/moec, ~/.cache/moec)',
    `  --load-candidates N  plan sets with other grouped GEMM tiles for load({ tune: 'first-load' }) to time on the user's`,
    `                     adapter (default ${DEFAULT_LOAD_CANDIDATES}; 0: none, a smaller model.js); timed at --tuning-tokens tokens (default ${DEFAULT_LOAD_PREFILL_TOKENS})`,
    "  --load-crossovers B,..  also offer these decode/prefill crossovers (below the default), each with every tile set",
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { output: { type: 'string', short: 'o' }, weights: { type: 'string' }, 'disable-pass': { type: 'string', multiple: true }, 'max-binding': { type: 'string' }, tuning: { type: 'string' }, 'tuning-tokens': { type: 'string' }, 'cache-dir': { type: 'string' }, 'load-candidates': { type: 'string' }, 'load-crossovers': { type: 'string' }, ...pluginOption } });
    const maxBinding = values['max-binding'] === undefined ? undefined : Number(values['max-binding']);
    if (maxBinding !== undefined && !(Number.isSafeInteger(maxBinding) && maxBinding >= 1024 && maxBinding % 4 === 0)) {
      throw new UsageError(`--max-binding must be a byte count, a multiple of 4 of at least 1024, got ${values['max-binding']}`);
    }
    if (positionals.length !== 1) throw new UsageError('compile takes one spec');
    if (!values.output) throw new UsageError('compile needs -o <dir>, the bundle directory to write');
    const specFile = positionals[0]!;
    const loaded = await loadSpec(specFile, values.plugin);
    if (!loaded.config) return 1;
    const { source, registry } = loaded;
    const config = await withExpertFormats(loaded.config, specFile, values.weights, registry);
    if (!config) return 1;
    // Loaded on use: esbuild and Handlebars would slow every other command's start.
    const [{ compileBundle }, { BundleWriteError }] = await Promise.all([import('../compile-bundle.js'), import('../../codegen/bundle/write-bundle.js')]);
    const planOptions = { registry, disabledPasses: values['disable-pass'] ?? [], ...(maxBinding ? { maxStorageBufferBindingSize: maxBinding } : {}) };
    const tuned = values.tuning === undefined ? [] : await tunedTargetsOf(values.tuning, values['tuning-tokens'], values['cache-dir'], config, planOptions);
    const loadCandidates = loadCandidateOptions(values['load-candidates'], values['load-crossovers'], values['tuning-tokens']);
    try {
      const manifest = await compileBundle(config, source, specFile, values.output, planOptions, tuned, loadCandidates);
      const bytes = manifest.files['model.js']!.bytes;
      process.stdout.write(`${values.output}: ${manifest.model}, ${manifest.moeLayers.length} MoE layer(s), ` +
        `${manifest.kernels.length} distinct kernel(s), model.js ${(bytes / 1024).toFixed(1)} KiB\n`);
      process.stdout.write(dispatchReport(manifest.plans));
      process.stdout.write(wholeModelReport(manifest.wholeModel));
      for (const t of manifest.tuning.adapters ?? []) process.stdout.write(`tuned plans: ${t.source}\n`);
      const sets = manifest.tuning.loadCandidates?.sets.length ?? 0;
      if (sets) process.stdout.write(`load-time candidates: ${sets} plan set(s) for load({ tune: 'first-load' }), timed at ${manifest.tuning.loadCandidates!.prefillTokens} tokens\n`);
      return 0;
    } catch (e) {
      if (e instanceof BundleWriteError) throw new UsageError(e.message);
      process.stderr.write(`moec compile: ${specFile}: ${(e as Error).message}\n`);
      return 1;
    }
  },
};

/**
 * The config with each mixed-precision expert's format chosen from the checkpoint (`--weights`),
 * its report printed; the config as is without `mixed(...)`; undefined after reporting an error.
 */
export async function withExpertFormats(config: ModelConfig, specFile: string, weightsDir: string | undefined, registry: Registry,
  command = 'compile', report: (text: string) => void = (t) => void process.stdout.write(t)): Promise<ModelConfig | undefined> {
  const { applyMixedPrecision, mixedExperts } = await import('../mixed-precision/apply-mixed-precision.js');
  if (!mixedExperts(config)) return config;
  if (weightsDir === undefined) throw new UsageError(`${specFile}: quantize experts = mixed(...) chooses each expert's format from its weights: pass the checkpoint with --weights DIR`);
  const { openHfCheckpoint } = await import('../../runtime/node/checkpoint-weights.js');
  try {
    const { config: resolved, mixed } = await applyMixedPrecision(config, { specFile, weights: openHfCheckpoint(weightsDir).weights, kinds: registry.kinds, formats: registry.formats });
    report(`${mixed!.report}\n`);
    return resolved;
  } catch (e) {
    process.stderr.write(`moec ${command}: ${specFile}: ${(e as Error).message}\n`);
    return undefined;
  }
}

/** --load-candidates, --load-crossovers and --tuning-tokens as the compiler's options (count 0: none). */
function loadCandidateOptions(count: string | undefined, crossovers: string | undefined, tokens: string | undefined): LoadCandidateOptions {
  const whole = (text: string, flag: string, min: number): number => {
    const n = Number(text);
    if (!(Number.isSafeInteger(n) && n >= min)) throw new UsageError(`${flag} must be a whole number >= ${min}, got ${text}`);
    return n;
  };
  return {
    count: count === undefined ? DEFAULT_LOAD_CANDIDATES : whole(count, '--load-candidates', 0),
    ...(crossovers ? { crossovers: crossovers.split(',').map((b) => whole(b.trim(), '--load-crossovers', 1)) } : {}),
    ...(tokens !== undefined ? { prefillTokens: whole(tokens, '--tuning-tokens', 1) } : {}),
  };
}

/** The tuned targets of `--tuning FILE` or `--tuning auto` (the cache directory) for this spec; a damaged file is reported and ignored. */
async function tunedTargetsOf(tuning: string, tokens: string | undefined, cacheDir: string | undefined, config: ModelConfig, plan: PlanOptions): Promise<TunedTarget[]> {
  const [{ readTuningCache, readTuningFile, tuningCacheDir }, { tunedTargets }] = await Promise.all([import('../tune/tuning-cache.js'), import('../tune/apply-tuning.js')]);
  const warn = (m: string) => void process.stderr.write(`moec compile: warning: ${m}\n`);
  const prefillTokens = tokens === undefined ? undefined : Number(tokens);
  if (prefillTokens !== undefined && !(Number.isSafeInteger(prefillTokens) && prefillTokens >= 1)) throw new UsageError(`--tuning-tokens must be a positive whole number, got ${tokens}`);
  let file;
  let origin: string;
  if (tuning === 'auto') {
    origin = `cache ${tuningCacheDir(cacheDir)}`;
    file = readTuningCache(tuningCacheDir(cacheDir), warn);
  } else {
    if (!existsSync(tuning)) throw new UsageError(`--tuning: ${tuning}: no such file (give a \`moec tune -o\` file, or auto for the tuning cache)`);
    origin = tuning;
    file = readTuningFile(tuning, warn);
  }
  const targets = file ? tunedTargets(file, config, plan, { warn, origin, ...(prefillTokens ? { prefillTokens } : {}) }) : [];
  if (!targets.length) warn(`--tuning ${tuning}: no entry fits this spec on any adapter; the bundle has the default tiles only`);
  return targets;
}

/** `whole model: prefill 59 dispatches, decode 39 + sampler 20 per token, context 4096 (f32 KV cache)`, or why the bundle has none. */
function wholeModelReport(model: BundleManifest['wholeModel']): string {
  if (!model.available) return `whole model: not in this bundle (MoE blocks only): ${model.reason}\n`;
  return `whole model: prefill ${model.prefill.dispatches} dispatches, decode ${model.decode.dispatches} + sampler ${model.sampler.dispatches} per token, ` +
    `context ${model.context} (${model.kvCache} KV cache)\n`;
}
