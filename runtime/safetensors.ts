// The safetensors format (https://github.com/huggingface/safetensors), browser-safe:
// 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data area.
// Every check names the file and, where one is involved, the tensor.

import { float16BitsToFloat32 } from './float16.js';
import type { RowRange } from './plan.js';

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

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

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

/**
 * Where rows [rows.begin, rows.end) of a tensor's leading dimension lie in the file: its byte
 * offset and length (the whole tensor without `rows`). Throws, naming the file and the tensor,
 * for a range outside the tensor or a tensor with no leading dimension.
 */
export function tensorRowBytes(tensor: TensorInfo, fileName: string, rows?: RowRange): { fileOffset: number; byteLength: number } {
  if (!rows) return { fileOffset: tensor.fileOffset, byteLength: tensor.byteLength };
  const [leading] = tensor.shape;
  const { begin, end } = rows;
  if (leading === undefined || !Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || begin > end || end > leading) {
    throw new SafetensorsError(fileName, `rows [${begin}, ${end}) are not a range within shape ${formatShape(tensor.shape)}`, tensor.name);
  }
  const rowBytes = leading === 0 ? 0 : tensor.byteLength / leading;
  return { fileOffset: tensor.fileOffset + begin * rowBytes, byteLength: (end - begin) * rowBytes };
}

/**
 * Converts raw little-endian elements of `tensor` (all of its bytes, or a range of whole rows) to
 * f32. Copies first, so the source needs no alignment (safetensors only aligns the data area to 8).
 * Typed arrays use host byte order; every WebGPU host is little-endian, like the format.
 */
export function decodeTensorF32(raw: Uint8Array, tensor: TensorInfo, fileName: string): Float32Array {
  if (raw.byteLength % DTYPE_BYTES[tensor.dtype] !== 0) {
    throw new SafetensorsError(fileName, `${raw.byteLength} bytes are not whole ${tensor.dtype} elements`, tensor.name);
  }
  // Uint8Array.prototype.slice copies even for a Node Buffer, whose own slice() shares its pool.
  const copy = Uint8Array.prototype.slice.call(raw, 0, raw.byteLength).buffer;
  switch (tensor.dtype) {
    case 'F32':
      return new Float32Array(copy);
    case 'F64':
      return Float32Array.from(new Float64Array(copy));
    case 'F16':
      return float16BitsToFloat32(new Uint16Array(copy));
    case 'BF16': {
      const bits = new Uint16Array(copy);
      const widened = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) widened[i] = bits[i]! << 16; // bf16 is the top half of an f32
      return new Float32Array(widened.buffer);
    }
    default:
      throw new SafetensorsError(fileName, `dtype ${tensor.dtype} cannot be read as f32`, tensor.name);
  }
}

/** A copy of raw bytes of a U8 tensor (MXFP4 blocks and scales); any other dtype is an error naming the tensor. */
export function decodeTensorU8(raw: Uint8Array, tensor: TensorInfo, fileName: string): Uint8Array {
  if (tensor.dtype !== 'U8') throw new SafetensorsError(fileName, `dtype ${tensor.dtype}, expected U8 (raw bytes)`, tensor.name);
  return Uint8Array.prototype.slice.call(raw, 0, raw.byteLength);
}

/** A copy of raw little-endian bytes of any tensor (FP8 codes, say), whole elements only. */
export function decodeTensorBytes(raw: Uint8Array, tensor: TensorInfo, fileName: string): Uint8Array {
  if (raw.byteLength % DTYPE_BYTES[tensor.dtype] !== 0) {
    throw new SafetensorsError(fileName, `${raw.byteLength} bytes are not whole ${tensor.dtype} elements`, tensor.name);
  }
  return Uint8Array.prototype.slice.call(raw, 0, raw.byteLength);
}

function tensorOf(file: SafetensorsFile, name: string): TensorInfo {
  const tensor = file.tensors.get(name);
  if (!tensor) throw new SafetensorsError(file.fileName, 'no such tensor in this file', name);
  return tensor;
}

function tensorBytes(file: SafetensorsFile, tensor: TensorInfo, rows?: RowRange): Uint8Array {
  const { fileOffset, byteLength } = tensorRowBytes(tensor, file.fileName, rows);
  return file.bytes.subarray(fileOffset, fileOffset + byteLength);
}

/** Reads a tensor of an in-memory file as f32, converting F16, BF16 and F64; with `rows`, only those rows of its leading dim. */
export function readTensorF32(file: SafetensorsFile, name: string, rows?: RowRange): Float32Array {
  const tensor = tensorOf(file, name);
  return decodeTensorF32(tensorBytes(file, tensor, rows), tensor, file.fileName);
}

/** Reads a U8 tensor of an in-memory file (a copy); with `rows`, only those rows of its leading dim. */
export function readTensorU8(file: SafetensorsFile, name: string, rows?: RowRange): Uint8Array {
  const tensor = tensorOf(file, name);
  return decodeTensorU8(tensorBytes(file, tensor, rows), tensor, file.fileName);
}

/** Reads any tensor's raw bytes from an in-memory file (a copy); with `rows`, only those rows of its leading dim. */
export function readTensorBytes(file: SafetensorsFile, name: string, rows?: RowRange): Uint8Array {
  const tensor = tensorOf(file, name);
  return decodeTensorBytes(tensorBytes(file, tensor, rows), tensor, file.fileName);
}

export interface TensorToEncode {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Raw little-endian elements; F16 and BF16 are given as Uint16Array bits, F8_E4M3 and F8_E5M2 as Uint8Array codes. */
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file. Tensors are laid out by element size, largest first,
 * so each one starts aligned to its element size (as the reference writer does).
 */
export function encodeSafetensors(
  tensors: Record<string, TensorToEncode>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = Object.entries(tensors).sort(
    ([nameA, a], [nameB, b]) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (nameA < nameB ? -1 : nameA > nameB ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, tensor] of entries) {
    const expected = tensor.shape.reduce((n, d) => n * d, 1) * DTYPE_BYTES[tensor.dtype];
    if (tensor.data.byteLength !== expected) {
      throw new SafetensorsError('<encode>', `data is ${tensor.data.byteLength} bytes, shape ` +
        `${formatShape(tensor.shape)} of ${tensor.dtype} needs ${expected}`, name);
    }
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.byteLength / 8) * 8; // padded with spaces so the data area is 8-aligned
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLength);
  let cursor = 8 + headerLength;
  for (const [, tensor] of entries) {
    out.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), cursor);
    cursor += tensor.data.byteLength;
  }
  return out;
}
