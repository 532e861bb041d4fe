// Gives each weight the storage format the spec's `quantize <target>` lines ask for.
// Norms, biases and router correction biases stay f32: they are small and precision-critical.
// The format's cost comes from its kind (compiler/spec/kinds/quantization.ts, or a plugin's).
// Under `quantize experts = mixed(...)` each routed expert gets the format chosen for it
// (config.compile.expertFormats, from compiler/mixed-precision/): the weight's dtype is mixed.
import { isWeightMatrix, quantTargetOfRole, type Graph, type Value } from '../ir/graph.js';
import type { KindRef, ModelConfig } from '../ir/model-config.js';
import type { DType, ExpertDType } from '../ir/types.js';
import { forEachFunction, type Pass, type PassKinds } from './pass.js';

function storageType(quant: KindRef, kinds: PassKinds): ExpertDType {
  const storage = kinds.get('quant', quant.kind)?.storage?.(quant.params);
  if (!storage) throw new Error(`quantize-weights: no storage format for quantization kind ${quant.kind}`);
  if ('float' in storage) return storage.float;
  const { bits, scaleBits, group } = storage;
  return { format: quant.kind, group, bitsPerWeight: bits + scaleBits / group };
}

export const quantizeWeights: Pass = {
  name: 'quantize-weights',
  description: 'Assign each weight matrix the storage format of its quantization target (per expert under mixed).',
  run(module, { config, kinds }) {
    return forEachFunction(module, (graph) => quantizeParams(graph, config, kinds));
  },
};

/** The model layer a param belongs to, from its name (`layers.3.moe.experts.gate`, ir/build-model.ts). */
const layerOf = (p: Value): number | undefined => {
  const m = /^layers\.(\d+)\./.exec(p.name);
  return m ? Number(m[1]) : undefined;
};

/** Each expert's dtype from the formats chosen for its layer. */
function mixedType(p: Value, config: ModelConfig, kinds: PassKinds): DType {
  const layer = layerOf(p);
  const chosen = layer === undefined ? undefined : config.compile.expertFormats?.[layer];
  if (!chosen) {
    throw new Error(`quantize experts = mixed(...): no format chosen for ${p.name}'s experts; the choice is made from the weights ` +
      'and the routing trace: pass the checkpoint with --weights DIR (moec compile, run, pack, ir, stats)');
  }
  const experts = p.type.shape[0];
  if (chosen.length !== experts) throw new Error(`quantize experts = mixed(...): ${chosen.length} formats chosen for the ${String(experts)} experts of ${p.name}`);
  return { experts: chosen.map((k) => storageType(k, kinds)) };
}

function quantizeParams(graph: Graph, config: ModelConfig, kinds: PassKinds): Graph {
  const replaced = new Map<number, Value>();
  const params = graph.params.map((p) => {
    const target = quantTargetOfRole(p.role);
    const quant = target ? config.compile.quantize[target] : undefined;
    if (!quant || !isWeightMatrix(p)) return p; // biases and norm scales stay f32
    const dtype = quant.kind === 'mixed' && p.role === 'expert' ? mixedType(p, config, kinds) : storageType(quant, kinds);
    const q: Value = { ...p, type: { ...p.type, dtype } };
    replaced.set(p.id, q);
    return q;
  });
  const ops = graph.ops.map((op) => ({ ...op, inputs: op.inputs.map((v) => replaced.get(v.id) ?? v) }));
  return { ...graph, params, ops };
}
