// A stable text form of a graph, for --print-ir-after and golden tests.
import { isKindRef, type AttrValue, type Graph, type Module, type Op, type Value } from './graph.js';
import type { KindRef } from './model-config.js';
import { dispatchCount } from './ops-lowered.js';
import { kindText, paramText } from './param-text.js';
import { typeToString } from './types.js';

/** Every resolved param, defaults included (a spec writer leaves those out). */
export function formatKind(k: KindRef): string {
  return kindText(k);
}

/** Large numbers stay plain (1000000, where a spec writes 1e6): the IR text is what golden files compare. */
function formatParam(v: AttrValue): string {
  return isKindRef(v) ? formatKind(v) : paramText(v);
}

const ref = (v: Value) => `%${v.name}`;

function formatOp(op: Op): string {
  const lhs = op.outputs.map(ref).join(', ');
  const types = op.outputs.map((o) => typeToString(o.type)).join(', ');
  return `  ${lhs} = ${op.opcode}(${op.inputs.map(ref).join(', ')})${formatAttrs(op.attrs)} : ${types}`;
}

function formatAttrs(attrs: Record<string, AttrValue> | undefined): string {
  const entries = Object.entries(attrs ?? {});
  return entries.length ? ` {${entries.map(([k, v]) => `${k} = ${formatParam(v)}`).join(', ')}}` : '';
}

export function printGraph(graph: Graph): string {
  const lines = [`graph @${graph.name}(${graph.inputs.map((v) => `${ref(v)}: ${typeToString(v.type)}`).join(', ')})${formatAttrs(graph.attrs)} {`];
  for (const p of graph.params) lines.push(`  param ${ref(p)}: ${typeToString(p.type)} ${p.role}`);
  for (const s of graph.state ?? []) lines.push(`  state ${ref(s)}: ${typeToString(s.type)}`);
  for (const op of graph.ops) lines.push(formatOp(op));
  lines.push(`  return ${graph.outputs.map(ref).join(', ')}`, '}');
  return lines.join('\n') + '\n';
}

/**
 * One function prints as before; after split-paths, each path's function in turn, with its kernel
 * launches once lowered (`kernelOpcodes`: a registry's opcodes with a kernel, a plugin's included).
 */
export function printModule(module: Module, kernelOpcodes?: ReadonlySet<string>): string {
  if (module.functions.length === 1) return printGraph(module.functions[0]!);
  const printed = module.functions.map((f) => {
    const dispatches = dispatchCount(f.ops, kernelOpcodes);
    return printGraph(f) + (dispatches === undefined ? '' : `// @${f.name}: ${dispatches} dispatches\n`);
  });
  return [`// module @${module.name}`, ...printed].join('\n');
}
