// A packed directory (`moec pack`): a model plan's weight buffers already in their storage
// formats, as safetensors shards (one tensor per weight buffer, named after it: U32 words when
// packed, F32 values otherwise), each at most the plan's storage-binding limit, and manifest.json:
//
//   {"format": "moec-packed/1", "model", "specSha256", "weightsFingerprint", "maxStorageBufferBindingSize",
//    "shards": [{"file", "sha256", "bytes", "tensors": [buffer names in file order]}]}
//
// weightsFingerprint is the sha256 of the plan's weight layout (names, shapes, formats, storage and
// the buffers' rows), so a pack made for another spec, target or plan is refused. Browser-safe:
// hashes with WebCrypto (Node 20 has it as globalThis.crypto too).
import type { ModelPlan, PlanBuffer, PlanWeight } from '../plan.js';
import type { SafetensorsDtype } from '../safetensors.js';

export const PACKED_FORMAT = 'moec-packed/1';
export const PACKED_MANIFEST = 'manifest.json';

export interface PackedShard {
  /** The shard's file name, relative to the directory. */
  file: string;
  /** Hex sha256 of the whole file. */
  sha256: string;
  bytes: number;
  /** The weight buffers it holds, in file order. */
  tensors: string[];
}

export interface PackedManifest {
  format: typeof PACKED_FORMAT;
  model: string;
  specSha256: string;
  weightsFingerprint: string;
  maxStorageBufferBindingSize: number;
  shards: PackedShard[];
}

export class PackedWeightsError extends Error {
  override readonly name = 'PackedWeightsError';
}

/** What a pack reads of a plan. */
export type PackedPlan = Pick<ModelPlan, 'name' | 'weights' | 'buffers' | 'rope'>;

/** A weight buffer and its plan weight. */
export interface PackedBuffer {
  buffer: PlanBuffer;
  weight: PlanWeight;
}

/** The weight buffers a pack holds, in the order a load reads them: every weight's, in plan order, but the rope table's (computed at load). */
export function packedBuffersOf(plan: PackedPlan): PackedBuffer[] {
  return plan.weights
    .filter((w) => w.name !== plan.rope?.weight)
    .flatMap((weight) => plan.buffers.filter((b) => b.role === 'weight' && b.weight?.param === weight.name).map((buffer) => ({ buffer, weight })));
}

/** The safetensors dtype a weight buffer is stored as. */
export const tensorDtypeOf = (buffer: PlanBuffer): SafetensorsDtype => (buffer.dtype === 'u32' ? 'U32' : 'F32');

/** Bytes of a weight buffer's contents. */
export const bufferBytesOf = (buffer: PlanBuffer): number => buffer.elements.constant * 4;

const hex = (digest: ArrayBuffer): string => Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');

/** Hex sha256 of `data`, with WebCrypto. */
export async function sha256Hex(data: Uint8Array<ArrayBuffer> | string): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return hex(await globalThis.crypto.subtle.digest('SHA-256', bytes));
}

/** sha256 of what a pack depends on in the plan: each packed buffer's weight (name, shape, format, storage), rows, format and size. */
export function planWeightsFingerprint(plan: PackedPlan): Promise<string> {
  const layout = packedBuffersOf(plan).map(({ buffer, weight }) => [
    buffer.name, buffer.dtype, buffer.elements.constant, buffer.weight!.rowBegin, buffer.weight!.rowEnd,
    weight.name, weight.shape, weight.format.format, weight.format.group ?? null, weight.storage,
    // Mixed precision only (so earlier packs keep their fingerprint): reordered rows, the buffer's own format.
    ...(buffer.weight!.rows || buffer.weight!.format ? [buffer.weight!.rows ?? null, buffer.weight!.format ?? null] : []),
  ]);
  return sha256Hex(JSON.stringify(layout));
}

const isHash = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** manifest.json's text, checked field by field; `where` names the file in messages. */
export function parsePackedManifest(text: string, where: string): PackedManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PackedWeightsError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const fail = (field: string, what: string): never => {
    throw new PackedWeightsError(`${where}: ${field} ${what}; pack the weights again with \`moec pack\``);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('the manifest', 'is not a JSON object');
  const m = json as Record<string, unknown>;
  if (m['format'] !== PACKED_FORMAT) fail('format', `is ${JSON.stringify(m['format'])}, not "${PACKED_FORMAT}" (not a moec packed directory, or one from another version)`);
  if (typeof m['model'] !== 'string') fail('model', 'is not a string');
  if (!isHash(m['specSha256'])) fail('specSha256', 'is not a hex sha256');
  if (!isHash(m['weightsFingerprint'])) fail('weightsFingerprint', 'is not a hex sha256');
  if (!isCount(m['maxStorageBufferBindingSize'])) fail('maxStorageBufferBindingSize', 'is not a byte count');
  if (!Array.isArray(m['shards'])) fail('shards', 'is not an array');
  const files = new Set<string>();
  (m['shards'] as unknown[]).forEach((s, i) => {
    const shard = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>;
    const file = shard['file'];
    // A plain file name: a manifest must not reach outside its directory.
    if (typeof file !== 'string' || !/^[\w.-]+\.safetensors$/.test(file) || files.has(file)) fail(`shards[${i}].file`, 'is not a distinct *.safetensors file name');
    files.add(file as string);
    if (!isHash(shard['sha256'])) fail(`shards[${i}].sha256`, 'is not a hex sha256');
    if (!isCount(shard['bytes'])) fail(`shards[${i}].bytes`, 'is not a byte count');
    if (!Array.isArray(shard['tensors']) || !shard['tensors'].every((t) => typeof t === 'string')) fail(`shards[${i}].tensors`, 'is not an array of buffer names');
  });
  return m as unknown as PackedManifest;
}
