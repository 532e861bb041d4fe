// One `moec pack` worker thread: opens the checkpoint itself and, for each read unit the driver
// sends (one weight buffer, or the same rows of weights stored together), reads and packs it piece
// by piece with the runtime's own code (encodeWeightBuffers: what a load would upload) and writes
// each piece at its offset in the shard file, so it holds one piece at a time. Runs from dist/
// (tsc) and from the bundled CLI (dist/cli/pack-worker.js, scripts/build-cli.mjs).
import { closeSync, openSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import type { PlanBuffer, PlanWeight, WeightSource } from '../../runtime/plan.js';
import type { FormatDefinition } from '../../runtime/quant/weight-format.js';
import { encodeWeightBuffers } from '../../runtime/weight-upload.js';

export interface PackWorkerData {
  /** The Hugging Face checkpoint directory. */
  checkpoint: string;
  /** Runtime modules of plugin formats (their default export is the FormatDefinition). */
  formatModules: string[];
  maxReadBytes?: number;
}

/** A read unit: each job's buffer goes to `file` at byte `position`. */
export interface PackUnit {
  id: number;
  jobs: { w: PlanWeight; buffer: PlanBuffer; file: string; position: number }[];
}

export type PackWorkerReply =
  | { type: 'progress'; bytes: number }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; name: string; message: string; stack?: string };

/** Writes all of `bytes` at `position` of `fd`. */
function writeAt(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

async function packUnit(source: WeightSource, unit: PackUnit, formats: FormatDefinition[], maxReadBytes: number | undefined, port: NonNullable<typeof parentPort>): Promise<void> {
  const fds = unit.jobs.map((job) => openSync(job.file, 'r+'));
  try {
    const pieces = encodeWeightBuffers(source, unit.jobs, { formats, ...(maxReadBytes ? { maxReadBytes } : {}) });
    for await (const { job, offset, words } of pieces) {
      writeAt(fds[job]!, new Uint8Array(words.buffer, words.byteOffset, words.byteLength), unit.jobs[job]!.position + offset * 4);
      port.postMessage({ type: 'progress', bytes: words.byteLength } satisfies PackWorkerReply);
    }
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

async function serve(port: NonNullable<typeof parentPort>, data: PackWorkerData): Promise<void> {
  // A failure here (a checkpoint that cannot open) is answered to the first unit.
  const ready = (async () => {
    const formats = await Promise.all(data.formatModules.map(async (path) => (await import(pathToFileURL(path).href) as { default: FormatDefinition }).default));
    return { source: openHfCheckpoint(data.checkpoint).weights, formats };
  })();
  ready.catch(() => {}); // reported per unit
  port.on('message', (unit: PackUnit) => {
    ready
      .then(({ source, formats }) => packUnit(source, unit, formats, data.maxReadBytes, port))
      .then(() => port.postMessage({ type: 'done', id: unit.id } satisfies PackWorkerReply))
      .catch((e: unknown) => {
        const error = e instanceof Error ? e : new Error(String(e));
        port.postMessage({ type: 'error', id: unit.id, name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) } satisfies PackWorkerReply);
      });
  });
}

if (parentPort) void serve(parentPort, workerData as PackWorkerData);
