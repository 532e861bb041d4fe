// A TensorReader over safetensors shards at URLs, reading with HTTP Range requests: a shard's
// header when first needed (its 8-byte length, then the header bytes), then only the bytes of the
// tensors, or rows of them, asked for. Browser-safe.
import { HfWeightsError, type TensorReader } from './hf-weights.js';
import { HttpRangeFile, type HttpRangeOptions, type TransferCount } from './http-ranges.js';
import type { RowRange } from './plan.js';
import {
  decodeTensorBytes, decodeTensorF32, decodeTensorU8, MAX_HEADER_BYTES, parseSafetensorsHeader, tensorRowBytes,
  type SafetensorsDtype, type SafetensorsHeader, type TensorInfo,
} from './safetensors.js';

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
  const claimed = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  // A length past the end (or over the limit) is reported by the parser from the 8 bytes alone.
  if (claimed > BigInt(size - 8) || claimed > BigInt(MAX_HEADER_BYTES)) return parseSafetensorsHeader(lengthBytes, size, file.url);
  const headerBytes = await file.read(8, 8 + Number(claimed), what);
  const prefix = new Uint8Array(8 + headerBytes.byteLength);
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
  const fileOfTensor = new Map<string, string>(Object.entries(shards.weightMap ?? {}));

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

  if (!shards.weightMap) {
    const fileHeaders = await Promise.all(shards.files.map((file) => header(file)));
    for (const [i, file] of shards.files.entries()) {
      for (const name of fileHeaders[i]!.tensors.keys()) {
        const other = fileOfTensor.get(name);
        if (other !== undefined) throw new HfWeightsError(`${urlOf(file)}: tensor "${name}" is also in ${urlOf(other)}; which one to load is ambiguous`);
        fileOfTensor.set(name, file);
      }
    }
  }
  const location = shards.indexUrl ?? shards.files.map(urlOf).join(', ');

  const locate = (name: string): { url: string; file: HttpRangeFile; tensor: TensorInfo } => {
    const fileName = fileOfTensor.get(name);
    if (fileName === undefined) throw new HfWeightsError(`${location}: tensor "${name}" not found`);
    const file = files.get(fileName)!;
    const fileHeader = loaded.get(fileName);
    if (!fileHeader) {
      throw new HfWeightsError(`${file.url}: tensor "${name}": the header of this file has not been fetched yet (call fetchHeaders first)`);
    }
    const tensor = fileHeader.tensors.get(name);
    if (!tensor) throw new HfWeightsError(`${file.url}: tensor "${name}" is listed in ${location} but not in this file`);
    return { url: file.url, file, tensor };
  };

  const readRaw = async (name: string, rows: RowRange | undefined): Promise<{ url: string; tensor: TensorInfo; bytes: Uint8Array }> => {
    const { url, file, tensor } = locate(name);
    const { fileOffset, byteLength } = tensorRowBytes(tensor, url, rows);
    const what = rows ? `tensor "${name}" rows [${rows.begin}, ${rows.end})` : `tensor "${name}"`;
    return { url, tensor, bytes: await file.read(fileOffset, fileOffset + byteLength, what) };
  };

  return {
    has: (name) => fileOfTensor.has(name),
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
      const file = fileOfTensor.get(name);
      return file === undefined ? location : urlOf(file);
    },
    location,
    names: () => [...fileOfTensor.keys()],
    async fetchHeaders(names) {
      const needed = new Map<string, string | undefined>();
      if (names) {
        for (const name of names) {
          const file = fileOfTensor.get(name);
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
