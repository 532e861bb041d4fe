// Writing safetensors files (tests' checkpoints, `moec run`'s outputs). Browser-safe.
import { DTYPE_BYTES, SafetensorsError, type SafetensorsDtype, formatShape } from './safetensors.js';


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
