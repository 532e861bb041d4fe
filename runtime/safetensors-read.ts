// Reading tensors out of safetensors files, browser-safe: where a tensor's rows lie in its file,
// and its raw little-endian bytes as f32 values, U8 bytes or raw codes (the Node directory and
// HTTP readers fetch the bytes themselves; readTensor* read files held in memory).
import { float16BitsToFloat32 } from './float16.js';
import type { RowRange } from './plan.js';
import { DTYPE_BYTES, SafetensorsError, type SafetensorsFile, type TensorInfo, formatShape } from './safetensors.js';


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

function requireWholeElements(raw: Uint8Array, tensor: TensorInfo, fileName: string): void {
  if (raw.byteLength % DTYPE_BYTES[tensor.dtype] !== 0) {
    throw new SafetensorsError(fileName, `${raw.byteLength} bytes are not whole ${tensor.dtype} elements`, tensor.name);
  }
}

/**
 * Converts raw little-endian elements of `tensor` (all of its bytes, or a range of whole rows) to
 * f32. Copies first, so the source needs no alignment (safetensors only aligns the data area to 8).
 * Typed arrays use host byte order; every WebGPU host is little-endian, like the format.
 */
export function decodeTensorF32(raw: Uint8Array, tensor: TensorInfo, fileName: string): Float32Array {
  requireWholeElements(raw, tensor, fileName);
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
  requireWholeElements(raw, tensor, fileName);
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

