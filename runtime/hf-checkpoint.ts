// A Hugging Face checkpoint held in memory as safetensors bytes (a browser fetched them, or a
// test wrote them), and fetching one from a URL. Browser-safe; Node reads directories with
// runtime/node/checkpoint-dir.ts instead.
import { hfWeightSource, HfWeightsError, type HfWeightSource, type TensorReader } from './hf-weights.js';
import { parseSafetensors, readTensorF32, readTensorU8, type SafetensorsFile } from './safetensors.js';

export interface SafetensorsBytes {
  /** File name, used in error messages (e.g. model-00001-of-00002.safetensors). */
  name: string;
  bytes: Uint8Array | ArrayBuffer;
}

/** A plain Uint8Array view: a Node Buffer's slice() shares memory, which the decoder's copy relies on not doing. */
function plainBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  return bytes instanceof Uint8Array ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new Uint8Array(bytes);
}

/** A TensorReader over parsed safetensors files; a tensor in two files is an error. */
export function safetensorsReader(files: readonly SafetensorsBytes[]): TensorReader {
  const fileOf = new Map<string, SafetensorsFile>();
  for (const { name, bytes } of files) {
    const file = parseSafetensors(plainBytes(bytes), name);
    for (const tensor of file.tensors.keys()) {
      const other = fileOf.get(tensor);
      if (other) throw new HfWeightsError(`${name}: tensor "${tensor}" is also in ${other.fileName}; which one to load is ambiguous`);
      fileOf.set(tensor, file);
    }
  }
  const locate = (tensor: string): SafetensorsFile => {
    const file = fileOf.get(tensor);
    if (!file) throw new HfWeightsError(`${files.map((f) => f.name).join(', ')}: tensor "${tensor}" not found`);
    return file;
  };
  return {
    has: (tensor) => fileOf.has(tensor),
    shape: (tensor) => locate(tensor).tensors.get(tensor)!.shape,
    readF32: (tensor, rows) => readTensorF32(locate(tensor), tensor, rows),
    readU8: (tensor, rows) => readTensorU8(locate(tensor), tensor, rows),
    fileOf: (tensor) => locate(tensor).fileName,
    location: files.map((f) => f.name).join(', ') || '(no safetensors files)',
  };
}

/** A WeightSource over a checkpoint's safetensors files; `modelType` is its config.json's model_type. */
export function hfWeightsFromSafetensors(modelType: string, files: readonly SafetensorsBytes[]): HfWeightSource {
  return hfWeightSource(modelType, safetensorsReader(files));
}

export interface FetchedCheckpoint {
  /** config.json's model_type. */
  modelType: string;
  config: Record<string, unknown>;
  files: SafetensorsBytes[];
}

/**
 * Fetches a checkpoint laid out as on the Hugging Face Hub: `base`/config.json, then
 * model.safetensors.index.json and the shards it names, or else model.safetensors.
 * Whole files are fetched: point it at a checkpoint holding what you run.
 */
export async function fetchHfCheckpoint(base: string | URL, fetchFn: typeof fetch = fetch): Promise<FetchedCheckpoint> {
  const root = new URL(String(base).endsWith('/') ? String(base) : `${String(base)}/`, globalThis.location?.href);
  const get = async (name: string, optional = false): Promise<Response | undefined> => {
    const url = new URL(name, root);
    const response = await fetchFn(url);
    if (response.ok) return response;
    if (optional && response.status === 404) return undefined;
    throw new HfWeightsError(`${url}: HTTP ${response.status} ${response.statusText}`);
  };
  const json = async (name: string, response: Response): Promise<Record<string, unknown>> => {
    try {
      const value: unknown = await response.json();
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new HfWeightsError(`${new URL(name, root)}: not a JSON object`);
  };

  const config = await json('config.json', (await get('config.json'))!);
  if (typeof config.model_type !== 'string') throw new HfWeightsError(`${new URL('config.json', root)}: no "model_type" string`);
  const index = await get('model.safetensors.index.json', true);
  let names = ['model.safetensors'];
  if (index) {
    const weightMap = (await json('model.safetensors.index.json', index)).weight_map;
    if (typeof weightMap !== 'object' || weightMap === null || !Object.values(weightMap).every((f) => typeof f === 'string')) {
      throw new HfWeightsError(`${new URL('model.safetensors.index.json', root)}: "weight_map" is not an object of tensor name -> file name`);
    }
    names = [...new Set(Object.values(weightMap as Record<string, string>))];
  }
  const files = await Promise.all(names.map(async (name) => ({ name, bytes: new Uint8Array(await (await get(name))!.arrayBuffer()) })));
  return { modelType: config.model_type, config, files };
}

/** fetchHfCheckpoint, then hfWeightsFromSafetensors. */
export async function hfWeightsFromUrl(base: string | URL, fetchFn: typeof fetch = fetch): Promise<HfWeightSource> {
  const checkpoint = await fetchHfCheckpoint(base, fetchFn);
  return hfWeightsFromSafetensors(checkpoint.modelType, checkpoint.files);
}
