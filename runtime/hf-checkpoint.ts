// A Hugging Face checkpoint held in memory as safetensors bytes (a test wrote them, or a page
// fetched them itself), and one read from a URL with HTTP Range requests (runtime/http-*.ts).
// Browser-safe; Node reads directories with runtime/node/checkpoint-dir.ts instead.
import { hfWeightSource, type HfWeightSource, type HfWeightSourceOptions } from './hf-weights.js';
import type { HttpRangeOptions } from './http-ranges.js';
import { httpTensorReader, type HttpShards, type HttpTensorReader } from './http-tensor-reader.js';
import { parseSafetensors, type SafetensorsFile } from './safetensors.js';
import { readTensorBytes, readTensorF32, readTensorU8 } from './safetensors-read.js';
import { INDEX_FILE, ShardIndex, shardFilesOf, SINGLE_FILE, weightMapOf } from './shard-index.js';
import { HfWeightsError, type TensorReader } from './tensor-reader.js';

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
  const location = files.map((f) => f.name).join(', ') || '(no safetensors files)';
  const parsed = files.map(({ name, bytes }) => parseSafetensors(plainBytes(bytes), name));
  const index = ShardIndex.fromShards(parsed.map((file) => [file, file.tensors.keys()] as const),
    { nameOf: (file) => file.fileName, location, error: HfWeightsError });
  const locate = (tensor: string) => index.locate(tensor, (file) => file);
  const fileOf = (tensor: string): SafetensorsFile => locate(tensor).shard;
  return {
    has: (tensor) => index.has(tensor),
    shape: (tensor) => locate(tensor).tensor.shape,
    readF32: (tensor, rows) => readTensorF32(fileOf(tensor), tensor, rows),
    readU8: (tensor, rows) => readTensorU8(fileOf(tensor), tensor, rows),
    dtype: (tensor) => locate(tensor).tensor.dtype,
    readBytes: (tensor, rows) => readTensorBytes(fileOf(tensor), tensor, rows),
    fileOf: (tensor) => fileOf(tensor).fileName,
    location,
  };
}

/** A WeightSource over a checkpoint's safetensors files; `modelType` is its config.json's model_type. */
export function hfWeightsFromSafetensors(modelType: string, files: readonly SafetensorsBytes[], options: HfWeightSourceOptions = {}): HfWeightSource {
  return hfWeightSource(modelType, safetensorsReader(files), options);
}

export interface FetchedCheckpoint {
  /** config.json's model_type. */
  modelType: string;
  config: Record<string, unknown>;
  /** The checkpoint directory's URL, ending with a slash. */
  url: string;
  /** The shard file names: those model.safetensors.index.json names, or model.safetensors. */
  files: string[];
  /** Reads tensors, or rows of them, with HTTP Range requests; call fetchHeaders before shape or a read. */
  reader: HttpTensorReader;
}

/** How fetchHfCheckpoint reads: the fetch to use, who hears about a server without Range support, the largest request. */
export type FetchCheckpointOptions = HttpRangeOptions;

/**
 * Opens a checkpoint laid out as on the Hugging Face Hub: `base`/config.json, then
 * model.safetensors.index.json (or, without one, model.safetensors, whose header is read now).
 * Shards are read with Range requests: a shard's header when its tensors are first needed, then
 * only the bytes of the tensors (or rows) asked for. A server that ignores Range gets whole-file
 * GETs instead, after a warning to `options.onWarning`.
 */
export async function fetchHfCheckpoint(base: string | URL, options: FetchCheckpointOptions = {}): Promise<FetchedCheckpoint> {
  const fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const root = new URL(String(base).endsWith('/') ? String(base) : `${String(base)}/`, globalThis.location?.href);
  const get = async (name: string, optional = false): Promise<Response | undefined> => {
    const url = new URL(name, root);
    const response = await fetchFn(url);
    if (response.ok) return response;
    void response.body?.cancel().catch(() => undefined);
    if (optional && response.status === 404) return undefined;
    throw new HfWeightsError(`${url}: HTTP ${response.status} ${response.statusText}`.trim());
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
  const index = await get(INDEX_FILE, true);
  let shards: HttpShards = { root, files: [SINGLE_FILE] };
  if (index) {
    const indexUrl = new URL(INDEX_FILE, root).href;
    const weightMap = weightMapOf(await json(INDEX_FILE, index), indexUrl, HfWeightsError);
    shards = { root, files: shardFilesOf(weightMap), weightMap, indexUrl };
  }
  const reader = await httpTensorReader(shards, { ...options, fetch: fetchFn });
  return { modelType: config.model_type, config, url: root.href, files: [...shards.files], reader };
}

/** `model.layers.L.`: the prefix every supported family gives layer L's tensors. */
const layerPrefix = (irName: string): string | undefined => {
  const layer = /^layers\.(\d+)\./.exec(irName)?.[1];
  return layer === undefined ? undefined : `model.layers.${layer}.`;
};

/**
 * fetchHfCheckpoint, then a WeightSource over it. Reading a layer's weight first fetches the
 * headers of the shards holding that layer's tensors (model.layers.L.*), so only those are read.
 */
export async function hfWeightsFromUrl(base: string | URL, options: FetchCheckpointOptions = {}): Promise<HfWeightSource> {
  const { modelType, config, url, reader } = await fetchHfCheckpoint(base, options);
  let source: HfWeightSource;
  try {
    source = hfWeightSource(modelType, reader, { config });
  } catch (e) {
    if (e instanceof HfWeightsError) throw new HfWeightsError(`${new URL('config.json', url)}: ${e.message}`);
    throw e;
  }
  const headersOfLayer = new Map<string, Promise<void>>();
  const fetchLayerHeaders = (prefix: string): Promise<void> => {
    let fetched = headersOfLayer.get(prefix);
    if (!fetched) {
      const tensors = reader.names().filter((n) => n.startsWith(prefix));
      fetched = reader.fetchHeaders(tensors); // none: hfWeightSource reports the missing tensor from the index alone
      fetched.catch(() => headersOfLayer.delete(prefix)); // a failed fetch can be retried
      headersOfLayer.set(prefix, fetched);
    }
    return fetched;
  };
  return {
    ...source,
    async readF32(irName, shape, rows) {
      const prefix = layerPrefix(irName);
      if (prefix !== undefined) await fetchLayerHeaders(prefix);
      return source.readF32(irName, shape, rows);
    },
  };
}
