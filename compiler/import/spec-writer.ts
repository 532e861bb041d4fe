// A small printer for .moe source: blocks of `name = value` fields and comments, with values
// written the way a person would (1e-5, 1e6, `1408 * 2`, kind calls without default params).
import type { ParamValue } from '../../ir/model-config.js';
import { numberText, paramText } from '../../ir/param-text.js';
import { blockHeader } from '../spec/format.js';
import { defaultRegistry } from '../spec/kinds/builtin.js';
import type { KindCategory } from '../spec/kinds/registry.js';

export type SpecItem =
  | { kind: 'field'; name: string; value: string; comment?: string }
  | { kind: 'comment'; text: string }
  | { kind: 'blank' }
  | SpecBlock;

export interface SpecBlock {
  kind: 'block';
  type: string;
  label?: string;
  items: SpecItem[];
}

export const field = (name: string, value: string, comment?: string): SpecItem =>
  comment === undefined ? { kind: 'field', name, value } : { kind: 'field', name, value, comment };
export const comment = (text: string): SpecItem => ({ kind: 'comment', text });
export const blank: SpecItem = { kind: 'blank' };
export const block = (type: string, items: SpecItem[], label?: string): SpecBlock =>
  label === undefined ? { kind: 'block', type, items } : { kind: 'block', type, label, items };

/**
 * `kind(p = v, ...)`. Params equal to the kind's default are left out unless listed in `show`;
 * a string value is written as is (an enum name or an expression such as `1408 * 2`).
 */
export function kindCall(category: KindCategory, kind: string, params: Record<string, ParamValue>, show: readonly string[] = []): string {
  const definition = defaultRegistry.get(category, kind);
  if (!definition) throw new Error(`importer: no ${category} kind ${kind}`);
  const args: string[] = [];
  for (const p of definition.params) {
    const v = params[p.name];
    if (v === undefined) continue;
    if (!show.includes(p.name) && JSON.stringify(v) === JSON.stringify(p.default)) continue;
    args.push(`${p.name} = ${paramText(v, (x) => numberText(x, 1e5))}`); // large ones as a person writes them too: rope_theta = 1e6
  }
  const unknown = Object.keys(params).filter((k) => !definition.params.some((p) => p.name === k));
  if (unknown.length) throw new Error(`importer: ${kind} has no parameter ${unknown.join(', ')}`);
  return `${kind}(${args.join(', ')})`;
}

export function printSpec(header: string[], blocks: SpecBlock[]): string {
  const lines = header.map((h) => `// ${h}`);
  for (const [i, b] of blocks.entries()) {
    if (i > 0) lines.push('');
    printBlock(b, '', lines);
  }
  return lines.join('\n') + '\n';
}

function printBlock(b: SpecBlock, indent: string, lines: string[]): void {
  lines.push(indent + blockHeader(b.type, b.label));
  const inner = indent + '  ';
  for (const item of b.items) {
    switch (item.kind) {
      case 'field': lines.push(`${inner}${item.name} = ${item.value}${item.comment ? `  // ${item.comment}` : ''}`); break;
      case 'comment': lines.push(`${inner}// ${item.text}`); break;
      case 'blank': lines.push(''); break;
      case 'block': printBlock(item, inner, lines); break;
    }
  }
  lines.push(`${indent}}`);
}
