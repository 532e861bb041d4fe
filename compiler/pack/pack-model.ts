// `moec pack`'s driver: a spec's whole-model plan, its weights read from a Hugging Face checkpoint
// and packed in worker threads (pack-worker.ts) into the shards shard-layout.ts lays out, then
// manifest.json (runtime/packed/packed-format.ts) with each shard's sha256. Streams: a worker
// holds one piece of one weight buffer at a time (the runtime's read size, DEFAULT_MAX_READ_BYTES
// of f32) and writes it straight to its shard, so memory does not grow with the checkpoint. The
// directory is staged beside the target and renamed into place: a failure leaves nothing.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, closeSync, ftruncateSync, openSync, writeSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../../ir/model-config.js';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { packedBuffersOf, planWeightsFingerprint, PACKED_FORMAT, PACKED_MANIFEST, type PackedManifest } from '../../runtime/packed/packed-format.js';
import type { ModelPlan } from '../../runtime/plan.js';
import { weightReadUnits } from '../../runtime/weight-upload.js';
import { compileModel } from '../model-plan.js';
import type { PlanOptions } from '../moe-block-plan.js';
import type { PackUnit, PackWorkerData, PackWorkerReply } from './pack-worker.js';
import { layoutShards, type ShardLayout } from './shard-layout.js';

/** An error the user can fix (the output directory, the checkpoint, a weight its format cannot store): one line. */
export class PackError extends Error {
  override readonly name = 'PackError';
}

export interface PackOptions extends Pick<PlanOptions, 'registry' | 'disabledPasses' | 'maxStorageBufferBindingSize'> {
  /** The Hugging Face checkpoint directory. */
  checkpoint: string;
  /** The packed directory to write (replaced if it is empty or a previous pack). */
  output: string;
  /** The spec's text, whose sha256 the manifest records, and its file (for messages). */
  specSource: string;
  specFile?: string;
  /** Worker threads (default: the CPUs available, at most 8). */
  workers?: number;
  /** The most f32 bytes a worker reads at once (default: the runtime's DEFAULT_MAX_READ_BYTES). */
  maxReadBytes?: number;
  /** Called as bytes of packed weights are written: done of total. */
  onProgress?(done: number, total: number): void;
}

export interface PackResult {
  manifest: PackedManifest;
  /** Bytes of the shards written. */
  bytes: number;
  /** The most weight bytes one shard holds (its file adds a header of a few hundred bytes). */
  largestShardWeights: number;
  /** Bytes of the checkpoint's safetensors files. */
  checkpointBytes: number;
  seconds: number;
  workers: number;
  /** The process's peak resident memory (every thread), from getrusage. */
  peakRssBytes: number;
}

/** The worker script beside this module: dist/compiler/pack/ from tsc, dist/cli/ in the bundled CLI. */
const WORKER_URL = new URL('./pack-worker.js', import.meta.url);

/** Throws a PackError unless `dir` is absent, empty or a previous pack (so it may be replaced). */
export function refuseToReplace(dir: string): void {
  if (!existsSync(dir)) return;
  const ok = statSync(dir).isDirectory() && (readdirSync(dir).length === 0 || readJsonFormat(join(dir, PACKED_MANIFEST)) === PACKED_FORMAT);
  if (!ok) throw new PackError(`${dir}: exists and is not a moec packed directory (no manifest.json of format ${PACKED_FORMAT}); refusing to replace it`);
}

function readJsonFormat(path: string): unknown {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown }).format;
  } catch {
    return undefined;
  }
}

const checkpointBytesOf = (dir: string): number =>
  readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

/** Hex sha256 of a file, read as a stream. */
function sha256OfFile(path: string): Promise<string> {
  return new Promise((ok, fail) => {
    const hash = createHash('sha256');
    createReadStream(path).on('data', (chunk) => hash.update(chunk)).on('error', fail).on('end', () => ok(hash.digest('hex')));
  });
}

/** Creates each shard file at its full size with its header written; the workers fill in the words. */
function createShardFiles(dir: string, shards: readonly ShardLayout[]): void {
  for (const shard of shards) {
    const fd = openSync(join(dir, shard.file), 'w');
    try {
      writeSync(fd, shard.header);
      ftruncateSync(fd, shard.bytes);
    } finally {
      closeSync(fd);
    }
  }
}

/** Packs `config`'s weights from options.checkpoint into options.output. */
export async function packModel(config: ModelConfig, options: PackOptions): Promise<PackResult> {
  const start = performance.now();
  const output = resolve(options.output);
  refuseToReplace(output); // before the work, not after
  const workerFile = fileURLToPath(WORKER_URL);
  if (!existsSync(workerFile)) throw new Error(`${workerFile} missing: moec pack runs from the build (npm run build)`);
  const { plan, target } = compileWholeModel(config, options);
  const limit = target.limits.maxStorageBufferBindingSize;
  const { weights: source } = openHfCheckpoint(options.checkpoint);
  const packedWeights = plan.weights.filter((w) => w.name !== plan.rope?.weight);
  source.checkWeights(packedWeights);

  const shards = layoutShards(packedBuffersOf(plan), limit);
  const units = weightReadUnits({ name: plan.name, weights: packedWeights, buffers: plan.buffers }, source);
  const formatModules = (options.registry?.plugins ?? []).flatMap((p) => p.formats ?? [])
    .filter((f) => packedWeights.some((w) => [w.format, ...(w.expertFormats ?? [])].some((format) => format.format === f.name))).map((f) => f.runtime);

  mkdirSync(dirname(output), { recursive: true });
  const staging = mkdtempSync(join(dirname(output), `.${basename(output)}.tmp-`));
  try {
    createShardFiles(staging, shards);
    const hashes = await packShards(staging, shards, units, plan, { checkpoint: options.checkpoint, formatModules, ...(options.maxReadBytes ? { maxReadBytes: options.maxReadBytes } : {}) }, options);
    const manifest: PackedManifest = {
      format: PACKED_FORMAT,
      model: config.name,
      specSha256: createHash('sha256').update(options.specSource).digest('hex'),
      weightsFingerprint: await planWeightsFingerprint(plan),
      maxStorageBufferBindingSize: limit,
      shards: shards.map((s, i) => ({ file: s.file, sha256: hashes[i]!, bytes: s.bytes, tensors: s.tensors.map((t) => t.buffer) })),
    };
    writeFileSync(join(staging, PACKED_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    replaceDirectory(staging, output);
    return {
      manifest,
      bytes: shards.reduce((n, s) => n + s.bytes, 0),
      largestShardWeights: Math.max(0, ...shards.map((s) => s.bytes - s.header.byteLength)),
      checkpointBytes: checkpointBytesOf(options.checkpoint),
      seconds: (performance.now() - start) / 1000,
      workers: workerCount(options, units.length),
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}

/** The whole model's plan; the compiler refusing the spec is a PackError naming it (as moec compile reports it). */
function compileWholeModel(config: ModelConfig, options: PackOptions): ReturnType<typeof compileModel> {
  try {
    return compileModel(config, options);
  } catch (e) {
    if (e instanceof TypeError || e instanceof ReferenceError) throw e; // a bug, not the spec
    throw new PackError(`${options.specFile ?? config.name}: ${(e as Error).message}`);
  }
}

const workerCount = (options: PackOptions, units: number): number => Math.max(1, Math.min(options.workers ?? Math.min(8, availableParallelism()), units));

/** Moves `staging` to `target`, replacing a previous pack there (put back if the move fails). */
function replaceDirectory(staging: string, target: string): void {
  let previous: string | undefined;
  try {
    if (existsSync(target)) {
      previous = `${staging}.old`;
      renameSync(target, previous);
    }
    renameSync(staging, target);
  } catch (e) {
    if (previous && !existsSync(target)) renameSync(previous, target);
    throw e;
  }
  if (previous) rmSync(previous, { recursive: true, force: true });
}

/**
 * Runs every unit on a pool of workers, one unit per worker at a time; hashes each shard once its
 * last buffer is written. Returns the shards' sha256 in order. The first error stops the pool.
 */
async function packShards(dir: string, shards: readonly ShardLayout[], units: ReturnType<typeof weightReadUnits>, plan: ModelPlan,
  data: PackWorkerData, options: PackOptions): Promise<string[]> {
  const where = new Map<string, { shard: number; position: number }>();
  shards.forEach((s, shard) => s.tensors.forEach((t) => where.set(t.buffer, { shard, position: t.position })));
  const pending = shards.map((s) => s.tensors.length);
  const total = shards.reduce((n, s) => n + s.tensors.reduce((m, t) => m + t.bytes, 0), 0);
  const hashes: Promise<string>[] = new Array(shards.length);
  const messages: PackUnit[] = units.map((jobs, id) => ({
    id,
    jobs: jobs.map(({ w, buffer }) => {
      const at = where.get(buffer.name);
      if (!at) throw new Error(`internal: ${plan.name}: buffer ${buffer.name} has no place in the shards`);
      return { w, buffer, file: join(dir, shards[at.shard]!.file), position: at.position };
    }),
  }));
  let done = 0;
  options.onProgress?.(0, total);
  const workers: Worker[] = [];
  try {
    await new Promise<void>((ok, fail) => {
      let next = 0;
      let finished = 0;
      let failed = false;
      const stop = (e: Error): void => {
        if (failed) return;
        failed = true;
        fail(e);
      };
      const feed = (worker: Worker): void => {
        if (next < messages.length) worker.postMessage(messages[next++]!);
      };
      for (let i = 0; i < workerCount(options, messages.length); i++) {
        const worker = new Worker(WORKER_URL, { workerData: data });
        workers.push(worker);
        worker.on('error', (e) => stop(e));
        worker.on('exit', (code) => code !== 0 && stop(new Error(`a pack worker exited with code ${code}`)));
        worker.on('message', (reply: PackWorkerReply) => {
          if (failed) return;
          if (reply.type === 'progress') {
            done += reply.bytes;
            options.onProgress?.(done, total);
            return;
          }
          if (reply.type === 'error') return stop(workerError(reply));
          for (const job of messages[reply.id]!.jobs) {
            const shard = where.get(job.buffer.name)!.shard;
            if (--pending[shard]! === 0) hashes[shard] = sha256OfFile(join(dir, shards[shard]!.file));
          }
          if (++finished === messages.length) ok();
          else feed(worker);
        });
        feed(worker);
      }
      if (messages.length === 0) ok();
    });
    return await Promise.all(hashes.map((h, i) => h ?? sha256OfFile(join(dir, shards[i]!.file))));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Errors a user can cause keep their name (the CLI prints them in one line); others keep the worker's stack. */
const USER_ERRORS = new Set(['CheckpointError', 'SafetensorsError', 'HfWeightsError', 'WeightCodecError', 'GpuError']);

function workerError(reply: Extract<PackWorkerReply, { type: 'error' }>): Error {
  if (USER_ERRORS.has(reply.name)) return new PackError(reply.message);
  const error = new Error(`a pack worker failed: ${reply.message}`);
  if (reply.stack) error.stack = `${error.message}\n  in the worker: ${reply.stack}`;
  return error;
}
