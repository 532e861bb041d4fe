// Tensor types of the IR. The token count is symbolic ('T'); everything else is a number.

/**
 * A row count that grows with the token count: ceil((perToken * T + constant) / divisor). The
 * lowered IR sizes its buffers with these (e.g. K T + E (BM - 1) padded expert rows); the
 * runtime's TokenExpr is the same thing.
 */
export interface TokenDim {
  perToken: number;
  constant: number;
  divisor?: number;
}

export type Dim = number | string | TokenDim;

export type ScalarType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';

/** A weight stored in a quantized format; computed in the graph's activation dtype. */
export interface QuantizedType {
  format: string;
  group: number;
  bitsPerWeight: number;
}

/** One expert's storage under a mixed dtype: a float type or a quantized format. */
export type ExpertDType = 'f32' | 'f16' | 'bf16' | QuantizedType;

/**
 * Stacked expert weights with a storage format per expert (the leading dim), from `quantize
 * experts = mixed(...)`. No kernel reads one: passes/group-experts-by-format.ts orders the experts
 * by format and shard-experts slices them into runs of one format each.
 */
export interface MixedType {
  experts: ExpertDType[];
}

export type DType = ScalarType | QuantizedType | MixedType;

export const isMixed = (dtype: DType): dtype is MixedType => typeof dtype === 'object' && 'experts' in dtype;

/** Each run of equal formats as `int4<g32> x3`, in order. */
function mixedText(dtype: MixedType): string {
  const runs: string[] = [];
  let previous = '';
  let count = 0;
  for (const e of [...dtype.experts.map((d) => dtypeName(d)), '']) {
    if (e === previous) count++;
    else {
      if (count) runs.push(count > 1 ? `${previous} x${count}` : previous);
      [previous, count] = [e, 1];
    }
  }
  return `mixed<${runs.join(', ')}>`;
}

export interface TensorType {
  shape: Dim[];
  dtype: DType;
}

export const TOKENS = 'T';

export function dtypeName(dtype: DType): string {
  if (typeof dtype === 'string') return dtype;
  return isMixed(dtype) ? mixedText(dtype) : `${dtype.format}<g${dtype.group}>`;
}

/** Storage bits per element; a mixed dtype's mean over its experts (all of one weight's experts have the same size). */
export function bitsPerElement(dtype: DType): number {
  if (typeof dtype === 'string') return dtype === 'f16' || dtype === 'bf16' ? 16 : 32;
  if (isMixed(dtype)) return dtype.experts.reduce((sum, d) => sum + bitsPerElement(d), 0) / dtype.experts.length;
  return dtype.bitsPerWeight;
}

/** `perToken T + constant` tokens, divided (rounding up) by `divisor`; plain `T` or a number where it is one. */
export function tokenDim(perToken: number, constant = 0, divisor = 1): Dim {
  if (perToken === 0) return Math.ceil(constant / divisor);
  if (perToken === 1 && constant === 0 && divisor === 1) return TOKENS;
  return divisor === 1 ? { perToken, constant } : { perToken, constant, divisor };
}

/** A dim as perToken T + constant over divisor (T itself is 1 T + 0). */
export function asTokenDim(d: Dim): TokenDim {
  if (typeof d === 'number') return { perToken: 0, constant: d };
  if (typeof d === 'string') {
    if (d !== TOKENS) throw new Error(`dimension ${d} is not the token count`);
    return { perToken: 1, constant: 0 };
  }
  return d;
}

export function dimText(d: Dim): string {
  if (typeof d !== 'object') return String(d);
  const t = d.perToken === 1 ? TOKENS : `${d.perToken}${TOKENS}`;
  const sum = d.constant === 0 ? t : `${t} + ${d.constant}`;
  if (d.divisor === undefined || d.divisor === 1) return d.constant === 0 ? sum : `(${sum})`;
  return `ceil((${sum}) / ${d.divisor})`;
}

export function sameDim(a: Dim, b: Dim): boolean {
  if (typeof a !== 'object' || typeof b !== 'object') return a === b;
  return a.perToken === b.perToken && a.constant === b.constant && (a.divisor ?? 1) === (b.divisor ?? 1);
}

export function typeToString(t: TensorType): string {
  return `[${t.shape.map(dimText).join(', ')}] ${dtypeName(t.dtype)}`;
}

export function sameType(a: TensorType, b: TensorType): boolean {
  return dtypeName(a.dtype) === dtypeName(b.dtype) && a.shape.length === b.shape.length && a.shape.every((d, i) => sameDim(d, b.shape[i]!));
}

/** The value of a dim with the symbolic dims bound (e.g. { T: 7 }). */
export function dimValue(d: Dim, bindings: Record<string, number>): number {
  if (typeof d === 'number') return d;
  if (typeof d === 'string') {
    const v = bindings[d];
    if (v === undefined) throw new Error(`dimension ${d} is not bound`);
    return v;
  }
  const t = bindings[TOKENS];
  if (t === undefined) throw new Error(`dimension ${dimText(d)} needs ${TOKENS}, which is not bound`);
  return Math.ceil((d.perToken * t + d.constant) / (d.divisor ?? 1));
}

/** Number of elements with the symbolic dims bound (e.g. { T: 7 }). */
export function elementCount(shape: readonly Dim[], bindings: Record<string, number> = {}): number {
  return shape.reduce<number>((n, d) => n * dimValue(d, bindings), 1);
}
