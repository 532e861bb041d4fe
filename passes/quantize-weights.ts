// Gives each weight the storage format the spec's `quantize <target> = ...` lines ask for.
// Norms, biases and router correction biases stay f32: they are small and precision-critical.
// The format's cost comes from its kind (compiler/spec/kinds/quantization.ts, or a plugin's).
import { isWeightMatrix, quantTargetOfRole, type Graph, type Value } from '../ir/graph.js';
import type { KindRef, ModelConfig } from '../ir/model-config.js';
import type { DType } from '../ir/types.js';
import { forEachFunction, type Pass, type PassKinds } from './pass.js';

function storageType(quant: KindRef, kinds: PassKinds): DType {
  const storage = kinds.get('quant', quant.kind)?.storage?.(quant.params);
  if (!storage) throw new Error(`quantize-weights: no storage format for quantization kind ${quant.kind}`);
  if ('float' in storage) return storage.float;
  const { bits, scaleBits, group } = storage;
  return { format: quant.kind, group, bitsPerWeight: bits + scaleBits / group };
}

export const quantizeWeights: Pass = {
  name: 'quantize-weights',
  description: 'Assign each weight matrix the storage format of its quantization target.',
  run(module, { config, kinds }) {
    return forEachFunction(module, (graph) => quantizeParams(graph, config, kinds));
  },
};

function quantizeParams(graph: Graph, config: ModelConfig, kinds: PassKinds): Graph {
  const replaced = new Map<number, Value>();
  const params = graph.params.map((p) => {
    const target = quantTargetOfRole(p.role);
    const quant = target ? config.compile.quantize[target] : undefined;
    if (!quant || !isWeightMatrix(p)) return p; // biases and norm scales stay f32
    const q: Value = { ...p, type: { ...p.type, dtype: storageType(quant, kinds) } };
    replaced.set(p.id, q);
    return q;
  });
  const ops = graph.ops.map((op) => ({ ...op, inputs: op.inputs.map((v) => replaced.get(v.id) ?? v) }));
  return { ...graph, params, ops };
}
