// Gives each weight the storage format the spec's `quantize <target> = ...` lines ask for.
// Norms, biases and router correction biases stay f32: they are small and precision-critical.
import { isWeightMatrix, quantTargetOfRole, type Value } from '../ir/graph.js';
import type { DType, QuantizedType, ScalarType } from '../ir/types.js';
import type { Pass } from './pass.js';

const storageBits: Record<string, (group: number) => number> = {
  int8: (g) => 8 + 32 / g,
  int4: (g) => 4 + 16 / g,
  mxfp4: (g) => 4 + 8 / g,
};

function storageType(kind: string, params: Record<string, unknown>): DType {
  if (kind === 'f32' || kind === 'f16' || kind === 'bf16') return kind as ScalarType;
  const bits = storageBits[kind];
  if (!bits) throw new Error(`quantize-weights: no storage format for quantization kind ${kind}`);
  const group = params['group'] as number;
  const quantized: QuantizedType = { format: kind, group, bitsPerWeight: bits(group) };
  return quantized;
}

export const quantizeWeights: Pass = {
  name: 'quantize-weights',
  description: 'Assign each weight matrix the storage format of its quantization target.',
  run(graph, { config }) {
    const replaced = new Map<number, Value>();
    const params = graph.params.map((p) => {
      const target = quantTargetOfRole(p.role);
      const quant = target ? config.compile.quantize[target] : undefined;
      if (!quant || !isWeightMatrix(p)) return p; // biases and norm scales stay f32
      const q: Value = { ...p, type: { ...p.type, dtype: storageType(quant.kind, quant.params) } };
      replaced.set(p.id, q);
      return q;
    });
    const ops = graph.ops.map((op) => ({ ...op, inputs: op.inputs.map((v) => replaced.get(v.id) ?? v) }));
    return { ...graph, params, ops };
  },
};
