#!/usr/bin/env node
// `npm start` (after scripts/setup.mjs has built dist/): a tour of the toolchain through the built
// CLI. For a real model's spec: check, stats and the IR of its first MoE block. Then, for each tiny
// runnable example: a random Hugging Face checkpoint and input in a temp dir, `moec compile` to
// out/<name>/, and `moec run --check` on that bundle, which compares WebGPU with the CPU interpreter;
// one of them again with activations stored in f16 (compile `dtype = f16`) where the adapter can.
// Last, text in and out: a random whole-model checkpoint of tiny-mixtral's sizes with a tiny
// tokenizer (cached in out/text-demo/), and `moec run --prompt` (then `--chat`) generating text.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLI_BUNDLE } from './build-cli.mjs';
import { vulkanIcdEnv } from './vulkan-env.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, CLI_BUNDLE);
const env = { ...process.env, ...vulkanIcdEnv() };
const NOISE = [/^Warning: max\w+ artificially reduced/, /XDG_RUNTIME_DIR is invalid/];

const EXAMPLE = 'examples/mixtral-8x7b.moe';
/** Tiny runnable examples, the HF family whose checkpoint layout their random weights use, tokens, activation dtype. */
const TINY = [
  ['examples/tiny-mixtral.moe', 'mixtral', 5, 'f32'],
  ['examples/tiny-qwen2-moe.moe', 'qwen2_moe', 5, 'f32'],
  ['examples/tiny-gpt-oss.moe', 'gpt_oss', 12, 'f32'],
  ['examples/tiny-deepseek-v3.moe', 'deepseek_v3', 5, 'f32'],
  ['examples/tiny-qwen2-moe.moe', 'qwen2_moe', 5, 'f16'],
];

/** Runs `moec <args>`, echoing the command and its output; stops the job on failure. */
function moec(args, { quiet = false } = {}) {
  console.log(`\n$ moec ${args.map((a) => (/[\s?*'"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, env, encoding: 'utf8' });
  const stderr = (r.stderr ?? '').split('\n').filter((l) => l && !NOISE.some((n) => n.test(l))).join('\n');
  if (!quiet || r.status !== 0) process.stdout.write(r.stdout ?? '');
  if (stderr) console.error(stderr);
  if (r.status !== 0) {
    console.error(`main-job: \`moec ${args[0]}\` failed (exit status ${r.status ?? r.signal})`);
    process.exit(1);
  }
  return r.stdout;
}

if (!existsSync(cli)) {
  console.error(`main-job: ${cli} is missing: run \`node scripts/setup.mjs\` first (npm start does)`);
  process.exit(1);
}
const started = performance.now();
const { checkSpec } = await import(pathToFileURL(join(root, 'dist', 'compiler', 'spec', 'check.js')).href);
const { moeLayerIndices } = await import(pathToFileURL(join(root, 'dist', 'ir', 'model-config.js')).href);
const configOf = (path) => checkSpec(readFileSync(resolve(root, path), 'utf8'), path).config;

/** Whether this machine's WebGPU adapter can run kernels that store activations in f16. */
async function adapterHasShaderF16() {
  Object.assign(process.env, env); // the same Vulkan driver the CLI runs on
  const { createNodeGpu } = await import(pathToFileURL(join(root, 'dist', 'runtime', 'node', 'dawn.js')).href);
  const { openDevice } = await import(pathToFileURL(join(root, 'dist', 'runtime', 'device.js')).href);
  const rt = await openDevice({ gpu: createNodeGpu() });
  const has = rt.features.has('shader-f16');
  rt.destroy();
  return has;
}

// ---- 1. a real model's spec: check, stats, the IR of its first MoE block ----
console.log(`== ${EXAMPLE}`);
moec(['check', EXAMPLE]);
moec(['stats', EXAMPLE]);
const firstMoe = moeLayerIndices(configOf(EXAMPLE))[0];
moec(['ir', EXAMPLE, '--layer', String(firstMoe)]);

// ---- 2. tiny runnable examples: random checkpoint -> compile -> run --check ----
const work = mkdtempSync(join(tmpdir(), 'moec-main-job-'));
try {
  // The checkpoint and tokenizer writers are TypeScript (test/fixtures); esbuild makes them runnable here.
  const { build } = await import('esbuild');
  const fixtures = ['make-checkpoint', 'make-tokenizer'].map((name) => join(root, 'test', 'fixtures', `${name}.ts`));
  await build({ entryPoints: fixtures, bundle: true, platform: 'node', format: 'esm', outdir: work, outExtension: { '.js': '.mjs' }, logLevel: 'error' });
  const { writeRandomCheckpoint, writeHiddenStates, specText } = await import(pathToFileURL(join(work, 'make-checkpoint.mjs')).href);
  const { writeTinyTokenizer } = await import(pathToFileURL(join(work, 'make-tokenizer.mjs')).href);

  const hasF16 = await adapterHasShaderF16();
  const summary = [];
  for (const [example, family, tokens, dtype] of TINY) {
    if (!existsSync(join(root, example))) continue;
    let spec = example;
    if (dtype === 'f16') {
      if (!hasF16) {
        console.log(`\n== ${example} with f16 activations: skipped, this adapter has no shader-f16`);
        continue;
      }
      spec = join(work, example.replace(/^.*\//, '').replace('.moe', '-f16.moe'));
      writeFileSync(spec, readFileSync(join(root, example), 'utf8').replace(/dtype = f32/, 'dtype = f16'));
    }
    const config = configOf(spec);
    const name = dtype === 'f16' ? `${config.name}-f16` : config.name;
    const moe = config.moe;
    const intermediate = moe.expert.params.intermediate;
    const shared = moe.shared?.params.intermediate;
    const sizes = {
      hidden: config.hidden, experts: moe.experts, topK: moe.topK, intermediate, layers: config.layers, firstDense: moe.firstLayer,
      ...(shared !== undefined && family === 'qwen2_moe' ? { sharedIntermediate: shared } : {}),
      ...(shared !== undefined && family.startsWith('deepseek') ? { sharedExperts: shared / intermediate } : {}),
    };
    const layer = moeLayerIndices(config)[0];
    const checkpoint = join(work, name);
    const input = join(work, `${name}.in.safetensors`);
    console.log(`\n== ${example}${dtype === 'f16' ? ' with f16 activations' : ''}: random ${family} checkpoint (${JSON.stringify(sizes)}), ${tokens} tokens`);
    writeRandomCheckpoint(checkpoint, family, sizes, { seed: 1, shards: 2 });
    writeHiddenStates(input, tokens, config.hidden, 2);
    const bundle = join('out', name);
    moec(['compile', spec, '-o', bundle]);
    const t0 = performance.now();
    const out = moec(['run', bundle, '--weights', checkpoint, '--layer', String(layer), '--input', input,
      '--output', join(work, `${name}.out.safetensors`), '--check']);
    const error = /relative error vs CPU reference: (\S+)/.exec(out)?.[1] ?? '?';
    summary.push({ model: config.name, family, activations: dtype, layer, tokens, 'rel. error vs CPU': error, 'run (s)': ((performance.now() - t0) / 1000).toFixed(1) });
  }
  console.log('\n== WebGPU bundles vs the CPU reference interpreter');
  console.table(summary);

  // ---- 3. text in, text out: the whole decoder generating from a prompt ----
  const { spec, checkpoint } = textDemoCheckpoint({ writeRandomCheckpoint, writeTinyTokenizer, specText });
  console.log(`\n== text in, text out: ${spec} with a random checkpoint and a 64-token tokenizer (random weights: the text is noise, the path is the point)`);
  moec(['run', spec, '--weights', checkpoint, '--prompt', 'the cat sat on the mat', '--max-tokens', '16']);
  moec(['run', spec, '--weights', checkpoint, '--prompt', 'is the cat on the mat?', '--chat', '--max-tokens', '16']);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/**
 * A whole-model random checkpoint of examples/tiny-mixtral.moe's sizes (vocab 64, as the fixture
 * writes it) with the fixture tokenizer and its spec, under out/text-demo/; written once and reused
 * while the fixtures that make it are unchanged.
 */
function textDemoCheckpoint({ writeRandomCheckpoint, writeTinyTokenizer, specText }) {
  const config = configOf('examples/tiny-mixtral.moe');
  const sizes = { hidden: config.hidden, experts: config.moe.experts, topK: config.moe.topK, intermediate: config.moe.expert.params.intermediate, layers: config.layers };
  const dir = join('out', 'text-demo');
  const spec = join(dir, 'tiny-mixtral-text.moe');
  const checkpoint = join(dir, 'tiny-mixtral-text');
  const stamp = join(root, dir, 'stamp');
  const key = createHash('sha256').update(JSON.stringify(sizes));
  for (const file of ['make-checkpoint.ts', 'decoder-tensors.ts', 'make-tokenizer.ts']) key.update(readFileSync(join(root, 'test', 'fixtures', file)));
  const fingerprint = key.digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === fingerprint) return { spec, checkpoint };
  rmSync(join(root, dir), { recursive: true, force: true });
  mkdirSync(join(root, dir), { recursive: true });
  writeRandomCheckpoint(join(root, checkpoint), 'mixtral', sizes, { seed: 1, wholeModel: true });
  writeTinyTokenizer(join(root, checkpoint));
  writeFileSync(join(root, spec), specText('mixtral', sizes, 'tiny-mixtral-text'));
  writeFileSync(stamp, fingerprint); // last: a run stopped halfway writes it all again
  return { spec, checkpoint };
}

console.log(`main-job: done in ${((performance.now() - started) / 1000).toFixed(1)} s; bundles are in out/`);
