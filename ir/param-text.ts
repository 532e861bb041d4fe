// How parameter values are written as text: the IR printer, the HF importer's spec writer and
// the editor's docs share it. The spec formatter does not: it reprints source text as written.
import type { ParamValue } from './model-config.js';

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

/** A number, a list (strings quoted), a bool, or a string as is (an enum name or an expression such as `1408 * 2`). */
export function paramText(v: ParamValue, number: (x: number) => string = numberText): string {
  if (typeof v === 'number') return number(v);
  if (Array.isArray(v)) return `[${v.map((x) => (typeof x === 'number' ? number(x) : JSON.stringify(x))).join(', ')}]`;
  return String(v);
}
