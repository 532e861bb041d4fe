// Lowers a dense `mlp` (a shared expert, a dense layer's MLP) to two matrix ops over all tokens:
// gate/up with the activation in the epilogue, then down (plus bias). GEMMs on prefill, GEMVs on
// decode.
import type { AttrValue, Graph, Op } from '../ir/graph.js';
import { boolParam, type KindRef } from '../ir/model-config.js';
import { inputsByName } from '../ir/ops.js';
import { tileAttr } from '../ir/ops-lowered.js';
import { GraphRewriter } from '../ir/rewriter.js';
import type { TargetDescription } from '../ir/target.js';
import { forEachFunction, pathOf, type Pass } from './pass.js';

export const lowerDenseMlp: Pass = {
  name: 'lower-dense-mlp',
  description: 'mlp -> gate/up + activation and down as GEMMs (prefill) or GEMVs (decode).',
  run(module, { target }) {
    return forEachFunction(module, (f) => lowerFunction(f, target));
  },
};

function lowerFunction(f: Graph, target: TargetDescription): Graph {
  const r = new GraphRewriter(f);
  const decode = pathOf(f) === 'decode';
  const opcode = decode ? 'gemv' : 'gemm';
  const shape: Record<string, AttrValue> = decode ? { rows: target.gemvRows } : { tile: tileAttr(target.gemmTile) };
  for (const op of f.ops) {
    if (op.opcode !== 'mlp') {
      r.keep(op);
      continue;
    }
    const { activation, bias, gateUp, down } = readMlp(op);
    const out = op.outputs[0]!;
    const inter = r.emit1(opcode, gateUp, { epilogue: 'activation', activation, bias, ...shape }, `${out.name}.inter`);
    r.emit1(opcode, [inter, ...down], { epilogue: 'none', bias, ...shape }, out.name, out);
  }
  return r.finish();
}

function readMlp(op: Op) {
  const i = inputsByName(op);
  const activation = op.attrs['activation'] as KindRef;
  const bias = boolParam(activation, 'bias');
  return {
    activation,
    bias,
    gateUp: bias ? [i['x']!, i['gate']!, i['up']!, i['gate_bias']!, i['up_bias']!] : [i['x']!, i['gate']!, i['up']!],
    down: bias ? [i['down']!, i['down_bias']!] : [i['down']!],
  };
}
