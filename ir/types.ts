// Tensor types of the IR. The token count is symbolic ('T'); everything else is a number.

export type Dim = number | string;

export type ScalarType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';

/** A weight stored in a quantized format; computed in the graph's activation dtype. */
export interface QuantizedType {
  format: string;
  group: number;
  bitsPerWeight: number;
}

export type DType = ScalarType | QuantizedType;

export interface TensorType {
  shape: Dim[];
  dtype: DType;
}

export const TOKENS = 'T';

export function dtypeName(dtype: DType): string {
  return typeof dtype === 'string' ? dtype : `${dtype.format}<g${dtype.group}>`;
}

export function bitsPerElement(dtype: DType): number {
  if (typeof dtype !== 'string') return dtype.bitsPerWeight;
  return dtype === 'f16' || dtype === 'bf16' ? 16 : 32;
}

export function typeToString(t: TensorType): string {
  return `[${t.shape.join(', ')}] ${dtypeName(t.dtype)}`;
}

export function sameType(a: TensorType, b: TensorType): boolean {
  return dtypeName(a.dtype) === dtypeName(b.dtype) && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** Number of elements with the symbolic dims bound (e.g. { T: 7 }). */
export function elementCount(shape: readonly Dim[], bindings: Record<string, number> = {}): number {
  return shape.reduce<number>((n, d) => {
    const v = typeof d === 'number' ? d : bindings[d];
    if (v === undefined) throw new Error(`dimension ${d} is not bound`);
    return n * v;
  }, 1);
}
