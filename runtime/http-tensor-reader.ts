// A TensorReader over safetensors shards at URLs, reading with HTTP Range requests: a shard's
// header when first needed (its 8-byte length, then the header bytes), then only the bytes of the
// tensors, or rows of them, asked for. Browser-safe.
import { HttpRangeFile, type HttpRangeOptions, type TransferCount } from './http-ranges.js';
import type { RowRange } from './plan.js';
import { headerPrefixLength, parseSafetensorsHeader, type SafetensorsDtype, type SafetensorsHeader, type TensorInfo } from './safetensors.js';
import { decodeTensorBytes, decodeTensorF32, decodeTensorU8, tensorRowBytes } from './safetensors-read.js';
import { ShardIndex, type ShardNaming } from './shard-index.js';
import { HfWeightsError, type TensorReader } from './tensor-reader.js';

export interface HttpTensorReader extends TensorReader {
  readF32(name: string, rows?: RowRange): Promise<Float32Array>;
  readU8(name: string, rows?: RowRange): Promise<Uint8Array>;
  dtype(name: string): SafetensorsDtype;
  readBytes(name: string, rows?: RowRange): Promise<Uint8Array>;
  /** Every tensor name the checkpoint holds (by its index, or by the header of its only file). */
  names(): string[];
  /**
   * Fetches the headers of the shards holding `names` (every shard without `names`), each once.
   * `shape`, `readF32` and `readU8` need a tensor's shard header first.
   */
  fetchHeaders(names?: readonly string[]): Promise<void>;
  /** Requests made and body bytes received so far, headers included. */
  readonly transferred: Readonly<TransferCount>;
}

export interface HttpShards {
  /** The checkpoint directory's URL, ending with a slash. */
  root: URL;
  /** Shard file names, relative to root. */
  files: readonly string[];
  /** model.safetensors.index.json's weight_map (tensor -> file); without it every file's header is read to find the tensors. */
  weightMap?: Record<string, string>;
  /** The index's URL, for a tensor it does not list. */
  indexUrl?: string;
}

/** Reads the header of `file`: 8 bytes for its length, then the header bytes, checked against the file's size. */
async function fetchHeader(file: HttpRangeFile, forWhat: string): Promise<SafetensorsHeader> {
  const what = `the safetensors header${forWhat}`;
  const lengthBytes = await file.read(0, 8, what);
  const size = file.size!;
  const prefixLength = headerPrefixLength(lengthBytes, size);
  if (prefixLength <= 8) return parseSafetensorsHeader(lengthBytes, size, file.url);
  const headerBytes = await file.read(8, prefixLength, what);
  const prefix = new Uint8Array(prefixLength);
  prefix.set(lengthBytes);
  prefix.set(headerBytes, 8);
  return parseSafetensorsHeader(prefix, size, file.url);
}

/**
 * A reader over `shards`. With an index, nothing is fetched until a header is needed; without
 * one, every file's header is fetched now (it is how the tensors are found).
 */
export async function httpTensorReader(shards: HttpShards, options: HttpRangeOptions = {}): Promise<HttpTensorReader> {
  const transferred: TransferCount = { requests: 0, bytes: 0 };
  const urlOf = (file: string): string => new URL(file, shards.root).href;
  const files = new Map(shards.files.map((f) => [f, new HttpRangeFile(urlOf(f), options, transferred)]));
  const headers = new Map<string, Promise<SafetensorsHeader>>();
  const loaded = new Map<string, SafetensorsHeader>();

  const header = (file: string, forTensor?: string): Promise<SafetensorsHeader> => {
    let made = headers.get(file);
    if (!made) {
      made = fetchHeader(files.get(file)!, forTensor === undefined ? '' : ` (for tensor "${forTensor}")`).then((h) => {
        loaded.set(file, h);
        return h;
      });
      made.catch(() => headers.delete(file)); // a failed fetch can be retried
      headers.set(file, made);
    }
    return made;
  };

  const location = shards.indexUrl ?? shards.files.map(urlOf).join(', ');
  const naming: ShardNaming<string> = { nameOf: urlOf, location, error: HfWeightsError };
  const index = shards.weightMap
    ? ShardIndex.fromWeightMap(shards.weightMap, location, naming)
    : ShardIndex.fromShards(await Promise.all(shards.files.map(async (file) => [file, (await header(file)).tensors.keys()] as const)), naming);

  const fetchedHeader = (fileName: string, name: string): SafetensorsHeader => {
    const fileHeader = loaded.get(fileName);
    if (!fileHeader) {
      throw new HfWeightsError(`${urlOf(fileName)}: tensor "${name}": the header of this file has not been fetched yet (call fetchHeaders first)`);
    }
    return fileHeader;
  };
  const locate = (name: string): { url: string; file: HttpRangeFile; tensor: TensorInfo } => {
    const { shard, tensor } = index.locate(name, fetchedHeader);
    const file = files.get(shard)!;
    return { url: file.url, file, tensor };
  };

  const readRaw = async (name: string, rows: RowRange | undefined): Promise<{ url: string; tensor: TensorInfo; bytes: Uint8Array }> => {
    const { url, file, tensor } = locate(name);
    const { fileOffset, byteLength } = tensorRowBytes(tensor, url, rows);
    const what = rows ? `tensor "${name}" rows [${rows.begin}, ${rows.end})` : `tensor "${name}"`;
    return { url, tensor, bytes: await file.read(fileOffset, fileOffset + byteLength, what) };
  };

  return {
    has: (name) => index.has(name),
    shape: (name) => locate(name).tensor.shape,
    async readF32(name, rows) {
      const { url, tensor, bytes } = await readRaw(name, rows);
      return decodeTensorF32(bytes, tensor, url);
    },
    async readU8(name, rows) {
      const { url, tensor, bytes } = await readRaw(name, rows);
      return decodeTensorU8(bytes, tensor, url);
    },
    dtype: (name) => locate(name).tensor.dtype,
    async readBytes(name, rows) {
      const { url, tensor, bytes } = await readRaw(name, rows);
      return decodeTensorBytes(bytes, tensor, url);
    },
    fileOf: (name) => {
      const file = index.shardOf(name);
      return file === undefined ? location : urlOf(file);
    },
    location,
    names: () => index.names(),
    async fetchHeaders(names) {
      const needed = new Map<string, string | undefined>();
      if (names) {
        for (const name of names) {
          const file = index.shardOf(name);
          if (file !== undefined && !needed.has(file)) needed.set(file, name);
        }
      } else {
        for (const file of shards.files) needed.set(file, undefined);
      }
      await Promise.all([...needed].map(([file, forTensor]) => header(file, forTensor)));
    },
    transferred,
  };
}
