// Which shard of a checkpoint holds each tensor: model.safetensors.index.json's weight_map, or,
// without an index, the shards' headers (a tensor in two shards is ambiguous). The one set of
// checks and messages behind the Node directory, in-memory and HTTP readers. Browser-safe.
import type { SafetensorsHeader, TensorInfo } from './safetensors.js';

/** The file of a checkpoint that is not sharded. */
export const SINGLE_FILE = 'model.safetensors';
/** A sharded checkpoint's index: { "weight_map": { tensor name: shard file name } }. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** What a reader throws: CheckpointError in Node, HfWeightsError in a browser. */
export type ErrorClass = new (message: string) => Error;

/** How a reader's messages name its shards and its error. */
export interface ShardNaming<Shard> {
  /** A shard as messages name it: its path, URL or file name. */
  nameOf(shard: Shard): string;
  /** Where a tensor in no shard was looked for: the directory, the index, the files. */
  location: string;
  /** What was searched, added to a tensor-not-found message as ` (searched ...)`. */
  searched?: string;
  error: ErrorClass;
}

/** A JSON object (not null, not an array). */
export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The weight_map of a parsed index (`indexName` in messages), checked to map tensor names to file names. */
export function weightMapOf(index: unknown, indexName: string, error: ErrorClass): Record<string, string> {
  const weightMap = isPlainObject(index) ? index.weight_map : undefined;
  if (!isPlainObject(weightMap) || !Object.values(weightMap).every((f) => typeof f === 'string')) {
    throw new error(`${indexName}: "weight_map" is not an object of tensor name -> file name`);
  }
  return weightMap as Record<string, string>;
}

/** The shard files a weight_map names, each once, in the order it first names them. */
export const shardFilesOf = (weightMap: Record<string, string>): string[] => [...new Set(Object.values(weightMap))];

/** Throws, naming the index (`indexName`), the file and a tensor it should hold, for the first file of a weight_map that does not `exist` in `where`. */
export function requireShardFiles(weightMap: Record<string, string>, indexName: string, exists: (file: string) => boolean,
  where: string, error: ErrorClass): void {
  for (const file of shardFilesOf(weightMap)) {
    if (exists(file)) continue;
    const tensor = Object.keys(weightMap).find((name) => weightMap[name] === file)!;
    throw new error(`${indexName}: weight_map names file "${file}" (for tensor "${tensor}"), which does not exist in ${where}`);
  }
}

/** Tensor name -> the shard that holds it. */
export class ShardIndex<Shard> {
  private constructor(
    private readonly shardOfTensor: Map<string, Shard>,
    private readonly naming: ShardNaming<Shard>,
    /** The index as messages name it, when there is one: a shard may lack a tensor it lists. */
    private readonly indexName: string | undefined,
  ) {}

  /** From an index's weight_map; its shards' headers are read when their tensors are needed. */
  static fromWeightMap(weightMap: Record<string, string>, indexName: string, naming: ShardNaming<string>): ShardIndex<string> {
    return new ShardIndex(new Map(Object.entries(weightMap)), naming, indexName);
  }

  /** From each shard's tensor names (its header's), in order; a tensor in two shards is an error. */
  static fromShards<Shard>(shards: Iterable<readonly [Shard, Iterable<string>]>, naming: ShardNaming<Shard>): ShardIndex<Shard> {
    const shardOfTensor = new Map<string, Shard>();
    for (const [shard, names] of shards) {
      for (const name of names) {
        const other = shardOfTensor.get(name);
        if (other !== undefined) {
          throw new naming.error(`${naming.nameOf(shard)}: tensor "${name}" is also in ${naming.nameOf(other)}; which one to load is ambiguous`);
        }
        shardOfTensor.set(name, shard);
      }
    }
    return new ShardIndex(shardOfTensor, naming, undefined);
  }

  has(name: string): boolean {
    return this.shardOfTensor.has(name);
  }

  /** Every tensor name the checkpoint holds. */
  names(): string[] {
    return [...this.shardOfTensor.keys()];
  }

  /** The shard holding `name`, or undefined. */
  shardOf(name: string): Shard | undefined {
    return this.shardOfTensor.get(name);
  }

  /**
   * `name`'s entry in the header of its shard, which `headerOf` gives (or throws for, e.g. one not
   * fetched yet). Throws for a tensor in no shard, or one the index lists in a shard that lacks it.
   */
  locate(name: string, headerOf: (shard: Shard, name: string) => SafetensorsHeader): { shard: Shard; tensor: TensorInfo } {
    const { nameOf, location, searched, error } = this.naming;
    const shard = this.shardOfTensor.get(name);
    if (shard === undefined) throw new error(`${location}: tensor "${name}" not found${searched === undefined ? '' : ` (searched ${searched})`}`);
    const tensor = headerOf(shard, name).tensors.get(name);
    if (!tensor) throw new error(`${nameOf(shard)}: tensor "${name}" is listed in ${this.indexName ?? location} but not in this file`);
    return { shard, tensor };
  }
}
