// Node-only: a packed directory (`moec pack`, runtime/packed/) on disk as the weights of a model
// plan. Each shard is read whole when the load reaches it and verified against the manifest.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKED_FORMAT, PACKED_MANIFEST, PackedWeightsError, type PackedPlan } from '../packed/packed-format.js';
import { openPackedWeights, type PackedFiles, type PackedWeightSource } from '../packed/packed-weights.js';

/** Whether `dir` looks like a packed directory: its manifest.json names the packed format. */
export function isPackedDir(dir: string): boolean {
  const manifest = join(dir, PACKED_MANIFEST);
  if (!existsSync(manifest)) return false;
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { format?: unknown }).format === PACKED_FORMAT;
  } catch {
    return false;
  }
}

/** The files of packed directory `dir`; a missing or unreadable file is a PackedWeightsError naming it. */
export function packedFilesInDir(dir: string): PackedFiles {
  return {
    location: dir,
    nameOf: (name) => join(dir, name),
    async read(name) {
      try {
        return await readFile(join(dir, name));
      } catch (e) {
        throw new PackedWeightsError(`${join(dir, name)}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    },
  };
}

/** Opens packed directory `dir` for `plan`: see openPackedWeights. */
export function openPackedDir(dir: string, plan: PackedPlan): Promise<PackedWeightSource> {
  return openPackedWeights(packedFilesInDir(dir), plan);
}
