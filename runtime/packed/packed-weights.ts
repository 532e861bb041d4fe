// Reading a packed directory (packed-format.ts) as the weights of a model plan: the manifest is
// checked against the plan (its weights fingerprint), and each shard's sha256 against the manifest
// when the shard is read, before any of its bytes is used; a mismatching shard is refused, naming
// its file. The buffers come back as stored, so loading packs nothing (EncodedWeightSource).
// Shards are read whole, one at a time, in the order a load asks for them. Browser-safe.
import type { PlanBuffer } from '../plan.js';
import { parseSafetensorsHeader, type SafetensorsHeader } from '../safetensors.js';
import type { EncodedWeightSource } from '../weight-upload.js';
import {
  packedBuffersOf, parsePackedManifest, planWeightsFingerprint, sha256Hex, tensorDtypeOf,
  PACKED_FORMAT, PACKED_MANIFEST, PackedWeightsError, type PackedManifest, type PackedPlan, type PackedShard,
} from './packed-format.js';

/** Where a packed directory's files come from: a folder (runtime/node/packed-dir.ts), a URL (packedFilesAtUrl). */
export interface PackedFiles {
  /** The directory, for messages. */
  readonly location: string;
  /** File `name` as messages name it (a path or a URL). */
  nameOf(name: string): string;
  /** The whole file `name`. */
  read(name: string): Promise<Uint8Array<ArrayBuffer>>;
}

export interface PackedWeightSource extends EncodedWeightSource {
  readonly manifest: PackedManifest;
}

/** A shard read and verified: its bytes and parsed header. */
interface VerifiedShard {
  shard: PackedShard;
  bytes: Uint8Array;
  header: SafetensorsHeader;
}

/**
 * Opens the packed directory `files` for `plan` (the plan it was packed for: same weights,
 * formats and buffers, or a PackedWeightsError saying so). Shards are verified as they are read.
 */
export async function openPackedWeights(files: PackedFiles, plan: PackedPlan): Promise<PackedWeightSource> {
  const where = files.nameOf(PACKED_MANIFEST);
  const manifest = parsePackedManifest(new TextDecoder().decode(await files.read(PACKED_MANIFEST)), where);
  if (manifest.weightsFingerprint !== (await planWeightsFingerprint(plan))) {
    throw new PackedWeightsError(`${where}: packed for model "${manifest.model}" (spec sha256 ${manifest.specSha256.slice(0, 12)}...), ` +
      `whose weights, formats or buffers differ from those of "${plan.name}": pack the checkpoint again with ` +
      '`moec pack <spec> --weights <checkpoint> -o <dir>` from the spec (and --max-binding) this model was compiled with');
  }
  const shardOf = new Map<string, PackedShard>();
  for (const shard of manifest.shards) {
    for (const tensor of shard.tensors) {
      if (shardOf.has(tensor)) throw new PackedWeightsError(`${where}: buffer ${tensor} is listed in both ${shardOf.get(tensor)!.file} and ${shard.file}`);
      shardOf.set(tensor, shard);
    }
  }
  const missing = packedBuffersOf(plan).filter(({ buffer }) => !shardOf.has(buffer.name));
  if (missing.length) throw new PackedWeightsError(`${where}: no shard holds buffer${missing.length === 1 ? '' : 's'} ${missing.slice(0, 3).map((b) => b.buffer.name).join(', ')}${missing.length > 3 ? ', ...' : ''}`);

  let current: VerifiedShard | undefined;
  const verified = async (shard: PackedShard): Promise<VerifiedShard> => {
    if (current?.shard === shard) return current;
    current = undefined; // one shard held at a time
    const name = files.nameOf(shard.file);
    const bytes = await files.read(shard.file);
    if (bytes.byteLength !== shard.bytes) throw new PackedWeightsError(`${name}: is ${bytes.byteLength} bytes, the manifest says ${shard.bytes}; refusing the damaged shard (pack again with \`moec pack\`)`);
    const sha256 = await sha256Hex(bytes);
    if (sha256 !== shard.sha256) {
      throw new PackedWeightsError(`${name}: sha256 ${sha256} does not match the manifest's ${shard.sha256}; refusing the damaged shard (pack again with \`moec pack\`)`);
    }
    let header: SafetensorsHeader;
    try {
      header = parseSafetensorsHeader(bytes, bytes.byteLength, name);
    } catch (e) {
      throw new PackedWeightsError((e as Error).message);
    }
    return (current = { shard, bytes, header });
  };

  const readBufferWords = async (buffer: PlanBuffer): Promise<Uint32Array | Float32Array | undefined> => {
    const shard = shardOf.get(buffer.name);
    if (!shard) return undefined;
    const { bytes, header } = await verified(shard);
    const tensor = header.tensors.get(buffer.name);
    const words = buffer.elements.constant;
    const dtype = tensorDtypeOf(buffer);
    if (!tensor || tensor.dtype !== dtype || tensor.shape.length !== 1 || tensor.shape[0] !== words) {
      throw new PackedWeightsError(`${files.nameOf(shard.file)}: tensor "${buffer.name}" is ${tensor ? `${tensor.dtype} [${tensor.shape.join(', ')}]` : 'missing'}, ` +
        `the plan needs ${dtype} [${words}]; pack the checkpoint again with \`moec pack\``);
    }
    let data = bytes.subarray(tensor.fileOffset, tensor.fileOffset + tensor.byteLength);
    if (data.byteOffset % 4 !== 0) data = data.slice(); // typed arrays of words need aligned bytes
    return dtype === 'U32' ? new Uint32Array(data.buffer, data.byteOffset, words) : new Float32Array(data.buffer, data.byteOffset, words);
  };

  return {
    manifest,
    readBufferWords,
    readF32(name) {
      throw new PackedWeightsError(`${files.location}: a packed directory holds the plan's weight buffers as stored, not the f32 values of ${name}`);
    },
  };
}

/** Whether `value` is a PackedFiles (what load() takes for a packed directory in Node). */
export const isPackedFiles = (value: unknown): value is PackedFiles =>
  typeof value === 'object' && value !== null && typeof (value as PackedFiles).read === 'function' && typeof (value as PackedFiles).nameOf === 'function';

/**
 * `files` if they hold a packed directory (a manifest.json of format moec-packed/1), its manifest
 * read once; undefined when the manifest is missing, unreadable or of another format.
 */
export async function detectPackedFiles(files: PackedFiles): Promise<PackedFiles | undefined> {
  let manifest: Uint8Array<ArrayBuffer>;
  try {
    manifest = await files.read(PACKED_MANIFEST);
    if ((JSON.parse(new TextDecoder().decode(manifest)) as { format?: unknown } | null)?.format !== PACKED_FORMAT) return undefined;
  } catch {
    return undefined;
  }
  return { location: files.location, nameOf: (name) => files.nameOf(name), read: (name) => (name === PACKED_MANIFEST ? Promise.resolve(manifest) : files.read(name)) };
}

/** A packed directory served over HTTP(S) (or any URL `fetch` reads), each file fetched whole. */
export function packedFilesAtUrl(url: string | URL, fetchFile: typeof fetch = globalThis.fetch): PackedFiles {
  const text = String(url);
  const base = new URL(text.endsWith('/') ? text : `${text}/`, (globalThis as { location?: { href: string } }).location?.href);
  const nameOf = (name: string): string => new URL(name, base).href;
  return {
    location: base.href,
    nameOf,
    async read(name) {
      const response = await fetchFile(nameOf(name));
      if (!response.ok) throw new PackedWeightsError(`${nameOf(name)}: HTTP ${response.status} ${response.statusText}`.trim());
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}
