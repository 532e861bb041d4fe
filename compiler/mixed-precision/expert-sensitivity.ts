// How much each routed expert loses in each storage format: the relative squared error of its
// own weight matrices after a round trip through the runtime's codec (the values the kernels
// would compute with),  sum_m ||W_m - deq(q(W_m))||^2 / sum_m ||W_m||^2  over its matrices.
// Weights are read one expert at a time (rows [e, e+1) of each stacked [E, rows, cols] param),
// so memory stays at one expert's matrices whatever the checkpoint's size.
import { isWeightMatrix, type Graph, type Value } from '../../ir/graph.js';
import type { WeightSource } from '../../runtime/plan.js';
import { builtinFormats } from '../../runtime/quant/builtin-formats.js';
import { dequantize } from '../../runtime/quant/weight-codec.js';
import type { FormatTable, WeightFormat } from '../../runtime/quant/weight-format.js';

/** The routed-expert weight matrices of one MoE layer, each stacked [experts, rows, cols]. */
export interface MoeLayerExperts {
  /** The model layer index. */
  layer: number;
  experts: number;
  matrices: Value[];
  /** Weights of one expert: sum over its matrices of rows x cols. */
  paramsPerExpert: number;
}

/** One MoE layer's errors: error[e][c] is expert e's relative squared error in format c. */
export interface LayerSensitivity {
  layer: number;
  error: number[][];
}

export interface SensitivityOptions {
  /** Where the formats' codecs are looked up (default the builtin formats; the target's weightFormats with a plugin's). */
  formats?: FormatTable;
  /** Called after each expert is measured, e.g. for a progress bar. */
  onExpert?(layer: number, expert: number): void;
}

const LAYER_OF_NAME = /^layers\.(\d+)\./;

/** The graph's routed-expert matrices (role `expert`, biases left out) grouped by MoE layer, in layer order. */
export function moeLayerExperts(graph: Graph): MoeLayerExperts[] {
  const byLayer = new Map<number, Value[]>();
  for (const p of graph.params) {
    if (p.role !== 'expert' || !isWeightMatrix(p)) continue;
    const match = LAYER_OF_NAME.exec(p.name);
    if (!match) throw new Error(`expert weight ${p.name} does not name its layer (layers.<n>.)`);
    const layer = Number(match[1]);
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), p]);
  }
  return [...byLayer.entries()].sort(([a], [b]) => a - b).map(([layer, matrices]) => {
    const shapes = matrices.map((m) => m.type.shape as number[]);
    const experts = shapes[0]![0]!;
    const bad = matrices.find((_, i) => shapes[i]!.length !== 3 || shapes[i]!.some((d) => typeof d !== 'number') || shapes[i]![0] !== experts);
    if (bad) throw new Error(`expert weight ${bad.name} has shape [${bad.type.shape.join(', ')}], expected [${experts}, rows, cols] like the layer's other expert weights`);
    return { layer, experts, matrices, paramsPerExpert: shapes.reduce((n, s) => n + s[1]! * s[2]!, 0) };
  });
}

/** ||W - deq(q(W))||^2 of one matrix (f32 values, [rows, cols]) in `format`, summed in f64. */
export function squaredQuantizationError(values: Float32Array, shape: readonly number[], format: WeightFormat, what: string, formats: FormatTable = builtinFormats): number {
  const restored = dequantize(format, values, shape, what, formats);
  let error = 0;
  for (let i = 0; i < values.length; i++) {
    const d = values[i]! - restored[i]!;
    error += d * d;
  }
  return error;
}

function squaredNorm(values: Float32Array): number {
  let norm = 0;
  for (const w of values) norm += w * w;
  return norm;
}

/** Rows [e, e+1) of a stacked weight; a source that ignores `rows` gives the whole weight, sliced here. */
async function readExpert(weights: WeightSource, matrix: Value, expert: number): Promise<Float32Array> {
  const shape = matrix.type.shape as number[];
  const perExpert = shape[1]! * shape[2]!;
  const data = await weights.readF32(matrix.name, shape, { begin: expert, end: expert + 1 });
  if (data.length === perExpert) return data;
  if (data.length === shape[0]! * perExpert) return data.subarray(expert * perExpert, (expert + 1) * perExpert);
  throw new Error(`weight ${matrix.name} [${shape.join(', ')}] rows [${expert}, ${expert + 1}): expected ${perExpert} f32 values, the weight source gave ${data.length}`);
}

/** error[e][c] for every expert of `layer` and every format in `choices`. */
export async function measureLayerSensitivity(layer: MoeLayerExperts, weights: WeightSource, choices: readonly WeightFormat[], options: SensitivityOptions = {}): Promise<LayerSensitivity> {
  const formats = options.formats ?? builtinFormats;
  const error: number[][] = [];
  for (let e = 0; e < layer.experts; e++) {
    const errors = new Array<number>(choices.length).fill(0);
    let norm = 0;
    // In graph order (gate before up): a source whose two weights share stored tensors serves the second from its last read.
    for (const matrix of layer.matrices) {
      const values = await readExpert(weights, matrix, e);
      const shape = (matrix.type.shape as number[]).slice(1);
      norm += squaredNorm(values);
      choices.forEach((format, c) => (errors[c]! += squaredQuantizationError(values, shape, format, `${matrix.name}[${e}]`, formats)));
    }
    error.push(errors.map((x) => (norm > 0 ? x / norm : 0)));
    options.onExpert?.(layer.layer, e);
  }
  return { layer: layer.layer, error };
}

/** Every MoE layer's error[e][c], in layer order. */
export async function measureExpertSensitivity(graph: Graph, weights: WeightSource, choices: readonly WeightFormat[], options: SensitivityOptions = {}): Promise<LayerSensitivity[]> {
  const result: LayerSensitivity[] = [];
  for (const layer of moeLayerExperts(graph)) result.push(await measureLayerSensitivity(layer, weights, choices, options));
  return result;
}
