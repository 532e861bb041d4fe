// Lowers `linear` (the LM head) to one matrix op over all tokens: a GEMM on prefill, a GEMV on
// decode, with the bias in its epilogue.
import type { AttrValue, Graph } from '../ir/graph.js';
import { inputsByName } from '../ir/ops.js';
import { tileAttr } from '../ir/ops-lowered.js';
import { GraphRewriter } from '../ir/rewriter.js';
import type { TargetDescription } from '../ir/target.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const lowerLinear: Pass = {
  name: 'lower-linear',
  description: 'linear -> a GEMM (prefill) or GEMV (decode) with its bias.',
  run(module, { target }) {
    return forEachFunction(module, (f) => lowerFunction(f, target));
  },
};

function lowerFunction(f: Graph, target: TargetDescription): Graph {
  if (!f.ops.some((op) => op.opcode === 'linear')) return f;
  const r = new GraphRewriter(f);
  const decode = pathOf(f) === 'decode';
  const shape: Record<string, AttrValue> = decode ? { rows: target.gemvRows } : { tile: tileAttr(target.gemmTile) };
  for (const op of f.ops) {
    if (op.opcode !== 'linear') {
      r.keep(op);
      continue;
    }
    const i = inputsByName(op);
    const bias = op.attrs['bias'] === true;
    r.emit1(decode ? 'gemv' : 'gemm', [i['x']!, i['weight']!, ...(bias ? [i['bias']!] : [])], { epilogue: 'none', bias, ...shape }, op.outputs[0]!.name, op.outputs[0]);
  }
  return r.finish();
}
