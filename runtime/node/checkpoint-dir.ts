// Node-only: a Hugging Face checkpoint directory (config.json + safetensors shards).
// Headers are read when a file is first needed; tensor bytes are read one tensor (or a range of
// its rows) at a time.

import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { RowRange } from '../plan.js';
import { headerPrefixLength, parseSafetensorsHeader, type SafetensorsDtype, type SafetensorsHeader, type TensorInfo, formatShape } from '../safetensors.js';
import { decodeTensorF32, decodeTensorU8, tensorRowBytes } from '../safetensors-read.js';
import { INDEX_FILE, isPlainObject, requireShardFiles, ShardIndex, shardFilesOf, SINGLE_FILE, weightMapOf } from '../shard-index.js';

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}


/** Reads `length` bytes at `position`, failing loudly on a short read (a file truncated under us). */
function readRange(fd: number, position: number, length: number, path: string, tensor?: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new CheckpointError(`${path}: file ended after ${position + done} bytes while reading${tensor === undefined ? '' : ` tensor "${tensor}"`}`);
    done += n;
  }
  return out;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CheckpointError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

export class CheckpointDir {
  /** Parsed config.json. */
  readonly config: Record<string, unknown>;
  private readonly headers = new Map<string, SafetensorsHeader>();
  /** Tensor name -> shard file name, by the index or, without one, by the shards' headers. */
  private readonly index: ShardIndex<string>;

  private constructor(
    readonly dir: string,
    /** Shard file names (relative to dir) in the order they are searched. */
    readonly files: readonly string[],
    config: Record<string, unknown>,
    weightMap: Record<string, string> | undefined,
  ) {
    this.config = config;
    const naming = { nameOf: (file: string) => join(dir, file), location: dir, searched: files.join(', '), error: CheckpointError };
    this.index = weightMap
      ? ShardIndex.fromWeightMap(weightMap, INDEX_FILE, naming)
      : ShardIndex.fromShards(files.map((file) => [file, this.header(file).tensors.keys()] as const), naming);
  }

  /** Opens `dir`: config.json, then model.safetensors.index.json, model.safetensors, or every *.safetensors. */
  static open(dir: string): CheckpointDir {
    const configPath = join(dir, 'config.json');
    const config = readJson(configPath);
    if (!isPlainObject(config)) throw new CheckpointError(`${configPath}: not a JSON object`);

    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(indexPath)) {
      const weightMap = weightMapOf(readJson(indexPath), indexPath, CheckpointError);
      requireShardFiles(weightMap, indexPath, (file) => existsSync(join(dir, file)), dir, CheckpointError);
      return new CheckpointDir(dir, shardFilesOf(weightMap), config, weightMap);
    }
    if (existsSync(join(dir, SINGLE_FILE))) return new CheckpointDir(dir, [SINGLE_FILE], config, undefined);
    const shards = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    if (shards.length === 0) {
      throw new CheckpointError(`${dir}: no ${SINGLE_FILE}, ${INDEX_FILE} or other *.safetensors file`);
    }
    return new CheckpointDir(dir, shards, config, undefined);
  }

  /** Every tensor name the checkpoint holds (by its index, or by the headers of its files). */
  names(): string[] {
    return this.index.names();
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  /** The path of the file holding `name`. */
  pathOf(name: string): string {
    return join(this.dir, this.locate(name).file);
  }

  info(name: string): TensorInfo {
    return this.locate(name).tensor;
  }

  shape(name: string): number[] {
    return [...this.info(name).shape];
  }

  dtype(name: string): SafetensorsDtype {
    return this.info(name).dtype;
  }

  /** Reads one tensor as f32 (F16, BF16 and F64 are converted); with `rows`, only those rows of its leading dim. */
  readF32(name: string, rows?: RowRange): Float32Array {
    const { tensor, path, bytes } = this.readRaw(name, rows);
    return decodeTensorF32(bytes, tensor, path);
  }

  /** Reads a U8 tensor's bytes (MXFP4 blocks and scales); with `rows`, only those rows of its leading dim. */
  readU8(name: string, rows?: RowRange): Uint8Array {
    const { tensor, path, bytes } = this.readRaw(name, rows);
    return decodeTensorU8(bytes, tensor, path);
  }

  /** Reads any tensor's raw bytes (FP8 codes); with `rows`, only those rows of its leading dim. */
  readBytes(name: string, rows?: RowRange): Uint8Array {
    return this.readRaw(name, rows).bytes; // read into a fresh buffer: nothing to copy
  }

  /** The bytes of `name` (or of rows of it), reading only those from its file. */
  private readRaw(name: string, rows?: RowRange): { tensor: TensorInfo; path: string; bytes: Uint8Array } {
    const { file, tensor } = this.locate(name);
    const path = join(this.dir, file);
    const { fileOffset, byteLength } = tensorRowBytes(tensor, path, rows);
    const fd = openSync(path, 'r');
    try {
      return { tensor, path, bytes: readRange(fd, fileOffset, byteLength, path, name) };
    } finally {
      closeSync(fd);
    }
  }

  /** Like readF32, but first checks the shape the model expects. */
  require(name: string, expectedShape: readonly number[]): Float32Array {
    const { file, tensor } = this.locate(name);
    const same = tensor.shape.length === expectedShape.length && tensor.shape.every((d, i) => d === expectedShape[i]);
    if (!same) {
      throw new CheckpointError(
        `${join(this.dir, file)}: tensor "${name}" has shape ${formatShape(tensor.shape)}, expected ${formatShape(expectedShape)}`,
      );
    }
    return this.readF32(name);
  }

  private locate(name: string): { file: string; tensor: TensorInfo } {
    const { shard, tensor } = this.index.locate(name, (file) => this.header(file));
    return { file: shard, tensor };
  }

  /** Parses a shard's header on first use, reading only the header bytes. */
  private header(file: string): SafetensorsHeader {
    const cached = this.headers.get(file);
    if (cached) return cached;
    const path = join(this.dir, file);
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const lengthBytes = readRange(fd, 0, Math.min(8, size), path);
      const prefixLength = headerPrefixLength(lengthBytes, size);
      const prefix = prefixLength > lengthBytes.byteLength ? readRange(fd, 0, prefixLength, path) : lengthBytes;
      const header = parseSafetensorsHeader(prefix, size, path);
      this.headers.set(file, header);
      return header;
    } finally {
      closeSync(fd);
    }
  }
}
