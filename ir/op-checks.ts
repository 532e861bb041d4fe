// Checks shared by the op table's shape rules (ir/ops.ts, ir/ops-lowered.ts).
import type { AttrValue } from './graph.js';
import type { KindRef } from './model-config.js';
import { dimText, dtypeName, sameDim, TOKENS, type Dim, type TensorType } from './types.js';

export class IRTypeError extends Error {}

export type Inputs = Record<string, TensorType>;
export type Attrs = Record<string, AttrValue>;

export interface OpDefinition {
  doc: string;
  inputNames(attrs: Attrs): string[];
  outputNames: string[];
  /** Outputs written over an input's storage (output index -> input name): codegen gives both one buffer. */
  inPlace?: Readonly<Record<number, string>>;
  infer(inputs: Inputs, attrs: Attrs): TensorType[];
}

export function kindAttr(attrs: Attrs, name: string): KindRef {
  const v = attrs[name];
  if (typeof v !== 'object' || Array.isArray(v)) throw new IRTypeError(`attribute ${name} must be a kind`);
  return v;
}

export function numAttr(attrs: Attrs, name: string): number {
  const v = attrs[name];
  if (typeof v !== 'number') throw new IRTypeError(`attribute ${name} must be a number`);
  return v;
}

export function expectShape(what: string, t: TensorType, shape: Dim[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => !sameDim(d, shape[i]!))) {
    throw new IRTypeError(`${what} has shape [${t.shape.map(dimText).join(', ')}], expected [${shape.map(dimText).join(', ')}]`);
  }
}

export function expectActivation(what: string, t: TensorType): Dim {
  if (t.shape.length !== 2 || t.shape[0] !== TOKENS) throw new IRTypeError(`${what} must be [${TOKENS}, n], got [${t.shape.map(dimText).join(', ')}]`);
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new IRTypeError(`${what} must be f32 or f16, got ${dtypeName(t.dtype)}`);
  return t.shape[1]!;
}

/** Token rounding's added pairs: extra_ids [X, 2] (token, expert; -1 unused), extra_weights [X]. */
export function expectExtras(inputs: Inputs, extras: number): void {
  if (inputs['extra_ids']) expectShape('extra_ids', inputs['extra_ids'], [extras, 2]);
  if (inputs['extra_weights']) expectShape('extra_weights', inputs['extra_weights'], [extras]);
}

export const activation = (width: Dim, dtype: TensorType['dtype'] = 'f32'): TensorType => ({ shape: [TOKENS, width], dtype });

