// How parameter values are written as text: the IR printer, the HF importer's spec writer and
// the editor's docs share it. The spec formatter does not: it reprints source text as written.
import type { KindRef, ParamValue } from './model-config.js';

/** Floats below 1e-3, and numbers from `largeFrom` up, in exponent form when that is shorter: 1e-5, 1e6. */
export function numberText(x: number, largeFrom = Infinity): string {
  const plain = String(x);
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-3 || abs >= largeFrom)) {
    const exp = x.toExponential().replace('e+', 'e');
    if (exp.length < plain.length) return exp;
  }
  return plain;
}

/** A number, a list (strings quoted, kinds as calls), a bool, or a string as is (an enum name or an expression such as `1408 * 2`). */
export function paramText(v: ParamValue, number: (x: number) => string = numberText): string {
  if (typeof v === 'number') return number(v);
  if (Array.isArray(v)) return `[${v.map((x) => (typeof x === 'number' ? number(x) : typeof x === 'string' ? JSON.stringify(x) : kindText(x, number))).join(', ')}]`;
  return String(v);
}

/** A kind with every param: `int4(group = 32)`, or its bare name without params. */
export function kindText(k: KindRef, number: (x: number) => string = numberText): string {
  const params = Object.entries(k.params).map(([name, v]) => `${name} = ${paramText(v, number)}`);
  return params.length ? `${k.kind}(${params.join(', ')})` : k.kind;
}
