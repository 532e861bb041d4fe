// Node-only: a Hugging Face checkpoint directory as the WeightSource of a bundle or executor.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointDir, CheckpointError } from './checkpoint-dir.js';
import { hfWeightSource, type HfWeightSource } from '../hf-weights.js';
import { INDEX_FILE } from '../shard-index.js';
import { HfWeightsError, type TensorReader } from '../tensor-reader.js';

export function checkpointReader(checkpoint: CheckpointDir): TensorReader {
  // A missing tensor is reported against the file that should list it: the index, or the only file.
  const index = join(checkpoint.dir, INDEX_FILE);
  const location = existsSync(index) ? index : checkpoint.files.length === 1 ? join(checkpoint.dir, checkpoint.files[0]!) : checkpoint.dir;
  return {
    has: (name) => checkpoint.has(name),
    shape: (name) => checkpoint.shape(name),
    readF32: (name, rows) => checkpoint.readF32(name, rows),
    readU8: (name, rows) => checkpoint.readU8(name, rows),
    dtype: (name) => checkpoint.dtype(name),
    readBytes: (name, rows) => checkpoint.readBytes(name, rows),
    fileOf: (name) => checkpoint.pathOf(name),
    location,
  };
}

export interface OpenedCheckpoint {
  checkpoint: CheckpointDir;
  /** config.json's model_type. */
  modelType: string;
  weights: HfWeightSource;
}

/** Opens `dir` (config.json + safetensors) and maps its tensors to IR weights by its model_type (and FP8 block size). */
export function openHfCheckpoint(dir: string): OpenedCheckpoint {
  const checkpoint = CheckpointDir.open(dir);
  const modelType = checkpoint.config.model_type;
  if (typeof modelType !== 'string') throw new CheckpointError(`${join(dir, 'config.json')}: no "model_type" string`);
  try {
    return { checkpoint, modelType, weights: hfWeightSource(modelType, checkpointReader(checkpoint), { config: checkpoint.config }) };
  } catch (e) {
    if (e instanceof HfWeightsError) throw new HfWeightsError(`${join(dir, 'config.json')}: ${e.message}`);
    throw e;
  }
}
