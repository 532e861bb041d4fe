// Where each weight buffer of a pack goes, decided before anything is packed: buffers in load order
// (packedBuffersOf) fill safetensors shards of at most `limit` bytes each (header included; a
// buffer too large to share one gets a shard of its own, over the limit by its header only). Every
// size is known from the plan, so each shard's header is written first and the workers write the
// buffers' words at fixed offsets, in any order.
import { bufferBytesOf, PACKED_FORMAT, tensorDtypeOf, type PackedBuffer } from '../../runtime/packed/packed-format.js';

export interface ShardTensor {
  buffer: string;
  /** Byte offset of its words in the file. */
  position: number;
  bytes: number;
}

export interface ShardLayout {
  file: string;
  /** The file's first bytes: the 8-byte header length and the JSON header, padded to 8 bytes. */
  header: Uint8Array;
  /** The whole file's size. */
  bytes: number;
  tensors: ShardTensor[];
}

const METADATA = `"__metadata__":${JSON.stringify({ format: PACKED_FORMAT })}`;

/** `{"__metadata__":...,entries}` padded with spaces to a multiple of 8 bytes, as safetensors writers do. */
const headerLength = (entryChars: number, entries: number): number => Math.ceil((2 + METADATA.length + entryChars + entries) / 8) * 8;

/** The header entry of a buffer whose words take bytes [begin, end) of the data area (names and dtypes are ASCII). */
const entryOf = ({ buffer }: PackedBuffer, begin: number): string =>
  `${JSON.stringify(buffer.name)}:${JSON.stringify({ dtype: tensorDtypeOf(buffer), shape: [buffer.elements.constant], data_offsets: [begin, begin + bufferBytesOf(buffer)] })}`;

function finish(entries: string[], members: PackedBuffer[], data: number): Omit<ShardLayout, 'file'> {
  const json = new TextEncoder().encode(`{${[METADATA, ...entries].join(',')}}`);
  const length = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + length).fill(0x20, 8 + json.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(length), true);
  header.set(json, 8);
  let position = header.byteLength;
  const tensors = members.map(({ buffer }) => {
    const tensor = { buffer: buffer.name, position, bytes: bufferBytesOf(buffer) };
    position += tensor.bytes;
    return tensor;
  });
  return { header, bytes: header.byteLength + data, tensors };
}

/** Shards of at most `limit` bytes holding `buffers` in order, named weights-0000i-of-0000n.safetensors. */
export function layoutShards(buffers: readonly PackedBuffer[], limit: number): ShardLayout[] {
  if (!buffers.every(({ buffer }) => /^[\x20-\x7e]*$/.test(buffer.name))) throw new Error('internal: weight buffer names are ASCII');
  const shards: Omit<ShardLayout, 'file'>[] = [];
  let entries: string[] = [];
  let members: PackedBuffer[] = [];
  let entryChars = 0;
  let data = 0;
  for (const b of buffers) {
    const entry = entryOf(b, data);
    const size = 8 + headerLength(entryChars + entry.length, entries.length + 1) + data + bufferBytesOf(b.buffer);
    if (members.length && size > limit) {
      shards.push(finish(entries, members, data));
      [entries, members, entryChars, data] = [[], [], 0, 0];
      const first = entryOf(b, 0);
      entries.push(first);
      entryChars += first.length;
    } else {
      entries.push(entry);
      entryChars += entry.length;
    }
    members.push(b);
    data += bufferBytesOf(b.buffer);
  }
  if (members.length) shards.push(finish(entries, members, data));
  const pad = (n: number): string => String(n).padStart(5, '0');
  return shards.map((s, i) => ({ file: `weights-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`, ...s }));
}
