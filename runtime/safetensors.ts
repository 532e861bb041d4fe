// The safetensors format (https://github.com/huggingface/safetensors), browser-safe:
// 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data area.
// This file parses and validates the header; safetensors-read.ts reads tensors' values,
// safetensors-encode.ts writes files. Every check names the file and, where one is involved, the tensor.

export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1,
  BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Offsets as written in the header, relative to the start of the data area. */
  readonly dataOffsets: readonly [number, number];
  /** Offset of the first byte from the start of the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly fileName: string;
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  /** Where the data area starts in the file (8 + header length). */
  readonly dataStart: number;
}

export interface SafetensorsFile extends SafetensorsHeader {
  readonly bytes: Uint8Array;
}

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(
    readonly fileName: string,
    readonly detail: string,
    readonly tensorName?: string,
  ) {
    const where = tensorName === undefined ? '' : ` tensor ${JSON.stringify(tensorName)}:`;
    super(`${fileName}:${where} ${detail}`.replace(/\s*\n\s*/g, ' '));
  }
}

/** The reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

/** A shape as messages print it: `[2, 3]`. */
export const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_BYTES, value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function asBytes(data: Uint8Array | ArrayBuffer): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

/**
 * How many leading bytes of a file parseSafetensorsHeader needs, given its first (up to) 8 bytes:
 * 8 + the header length, or only those bytes when they already show what is wrong (a file too
 * short, a length past its end or over the limit), which the parser then reports.
 */
export function headerPrefixLength(lengthBytes: Uint8Array, fileByteLength: number): number {
  if (lengthBytes.byteLength < 8) return lengthBytes.byteLength;
  const claimed = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  const plausible = claimed <= BigInt(fileByteLength - 8) && claimed <= BigInt(MAX_HEADER_BYTES);
  return plausible ? 8 + Number(claimed) : 8;
}

/**
 * Reads and validates the header. `prefix` must hold at least the first 8 + N bytes;
 * `fileByteLength` is the size of the whole file, so callers can parse a header
 * without holding the data area in memory.
 */
export function parseSafetensorsHeader(
  prefix: Uint8Array,
  fileByteLength: number,
  fileName: string,
): SafetensorsHeader {
  const fail = (detail: string, tensorName?: string): never => {
    throw new SafetensorsError(fileName, detail, tensorName);
  };
  if (fileByteLength < 8 || prefix.byteLength < 8) {
    fail(`file is ${Math.min(fileByteLength, prefix.byteLength)} bytes, too short for the 8-byte header length`);
  }
  const headerLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(fileByteLength - 8)) {
    fail(`header length ${headerLength} runs past the end of the file (${fileByteLength} bytes)`);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const dataStart = 8 + Number(headerLength);
  if (prefix.byteLength < dataStart) {
    fail(`only ${prefix.byteLength} bytes given, the header needs ${dataStart}`);
  }
  const dataLength = fileByteLength - dataStart;

  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, dataStart));
    header = JSON.parse(text);
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('header is not a JSON object');
  }

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        fail('__metadata__ is not an object of strings');
      }
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(`__metadata__ entry ${JSON.stringify(key)} is not a string`);
        metadata[key] = value as string;
      }
      continue;
    }
    tensors.set(name, parseTensorEntry(name, entry, dataStart, dataLength, fail));
  }
  rejectOverlaps(tensors, fail);
  return { fileName, tensors, metadata, dataStart };
}

function parseTensorEntry(
  name: string,
  entry: unknown,
  dataStart: number,
  dataLength: number,
  fail: (detail: string, tensorName?: string) => never,
): TensorInfo {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    fail('entry is not an object with dtype, shape and data_offsets', name);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isDtype(dtype)) {
    fail(`unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    fail(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    fail(`data_offsets ${JSON.stringify(offsets)} is not two non-negative integers`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`data_offsets [${begin}, ${end}] begin after they end`, name);
  if (end > dataLength) {
    fail(`data_offsets [${begin}, ${end}] run past the end of the data area (${dataLength} bytes)`, name);
  }
  // A product above 2^53 loses precision but then exceeds any real file, so it still mismatches.
  const expectedBytes = (shape as number[]).reduce((n, d) => n * d, 1) * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (end - begin !== expectedBytes) {
    fail(
      `data_offsets [${begin}, ${end}] do not match shape ${formatShape(shape as number[])} ` +
        `of ${dtype} (${expectedBytes} bytes)`,
      name,
    );
  }
  return {
    name,
    dtype: dtype as SafetensorsDtype,
    shape: shape as number[],
    dataOffsets: [begin, end],
    fileOffset: dataStart + begin,
    byteLength: end - begin,
  };
}

function rejectOverlaps(tensors: Map<string, TensorInfo>, fail: (detail: string, tensorName?: string) => never): void {
  const sorted = [...tensors.values()].sort(
    (a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1],
  );
  let previous: TensorInfo | undefined;
  for (const tensor of sorted) {
    if (previous && tensor.dataOffsets[0] < previous.dataOffsets[1]) {
      fail(
        `data_offsets [${tensor.dataOffsets.join(', ')}] overlap those of tensor ` +
          `${JSON.stringify(previous.name)} [${previous.dataOffsets.join(', ')}]`,
        tensor.name,
      );
    }
    if (!previous || tensor.dataOffsets[1] >= previous.dataOffsets[1]) previous = tensor;
  }
}

/** Parses a whole safetensors file held in memory. */
export function parseSafetensors(bytes: Uint8Array | ArrayBuffer, fileName: string): SafetensorsFile {
  const view = asBytes(bytes);
  return { ...parseSafetensorsHeader(view, view.byteLength, fileName), bytes: view };
}

