// Fused decode, dispatch 2 of 3: the grouped gate/up GEMV of the routed experts (one workgroup per
// distinct expert and n tile, like expert-gemv) with the shared expert folded in as slot k = K, an
// expert every token chose, in the same dispatch. The routed matrices sit in one binding, or in
// two expert shards (`routedShards`: w_gate/w_up, then w_gate1/w_up1), picked per workgroup.
// Both MLPs write one binding, `inter` ([T, K*I + Is], see decode-block-shape.ts).
import { activationArray, declareBindings, i32Array, renderActivation, type ActivationKernels, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { checkDecodeBlockShape, checkShardedBindings, decodeInterWidth, decodeRows, decodeMlpTag, decodePassWidths, routedShardSplit, type DecodeBlockShape, type DecodeMlpShape } from '../decode-block-shape.js';
import { GEMV_MAX_ROWS } from '../expert-gemv/expert-gemv.js';
import { weightBindings } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import type { WeightLoads } from '../weights/weight-loads.js';
import { F32 } from '../../../runtime/quant/weight-format.js';

/** Workgroups for `tokens` tokens: (n tiles of `rows` over the larger intermediate, K (+ 1 for the shared expert), tokens). */
export function decodeGateUpGrid(shape: DecodeBlockShape, tokens: number): [number, number, number] {
  const widest = Math.max(shape.routed.intermediate, shape.shared?.intermediate ?? 0);
  return [Math.ceil(widest / decodeRows(shape)), shape.topK + (shape.shared ? 1 : 0), tokens];
}

/** The shared expert's activation: `act` itself when it renders the same WGSL, else a copy named act_shared. */
function sharedActivation(routed: DecodeMlpShape, shared: DecodeMlpShape, activations?: ActivationKernels): { fn: string; wgsl: string } {
  const wgsl = renderActivation(shared.activation, activations);
  if (wgsl === renderActivation(routed.activation, activations)) return { fn: 'act', wgsl: '' };
  const renamed = wgsl.replace(/\bfn act\(/, 'fn act_shared(');
  if (renamed === wgsl) throw new Error(`internal: the ${shared.activation.kind} activation template does not define fn act(`);
  return { fn: 'act_shared', wgsl: renamed.trimEnd() };
}

/** `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads). */
export function renderDecodeGateUpKernel(shape: DecodeBlockShape, loads?: WeightLoads): RenderedKernel {
  checkDecodeBlockShape(shape);
  const { hidden: H, topK: K, routed, shared } = shape;
  const act = shape.act ?? 'f32';
  const rows = decodeRows(shape);
  // Both MLPs reduce over H: one vec4 decision for x and every weight.
  const vec4 = H % 4 === 0;
  const group = (mlp: DecodeMlpShape, prefix: 'w' | 'ws') => {
    const b = prefix === 'w' ? 'b' : 'bs';
    return weightBindings({ names: [`${prefix}_gate`, `${prefix}_up`], biases: mlp.bias ? [`${b}_gate`, `${b}_up`] : [], format: mlp.weights ?? F32, rows: mlp.intermediate, cols: H }, vec4, loads);
  };
  const routedWeights = group(routed, 'w');
  const sharedWeights = shared && group(shared, 'ws');
  const split = routedShardSplit(shape);
  // The second shard's matrices; its biases would be the whole b_gate/b_up, already bound.
  const shard1Weights = split !== undefined ? weightBindings({ names: ['w_gate1', 'w_up1'], biases: [], format: routed.weights ?? F32, rows: routed.intermediate, cols: H }, vec4, loads) : undefined;
  const storage: StorageDecl[] = [
    { name: 'x', access: 'read', type: activationArray(act, vec4) },
    { name: 'route_ids', access: 'read', type: i32Array },
    ...routedWeights.storage,
    ...(sharedWeights?.storage ?? []),
    { name: 'inter', access: 'read_write', type: activationArray(act) },
    ...(shard1Weights?.storage ?? []),
  ];
  if (shard1Weights) checkShardedBindings('gate/up', storage);
  const { header, bindings, uniformBinding } = declareBindings(storage, act);
  const rowsFn = (mlp: DecodeMlpShape, part: 'routed' | 'routed1' | 'shared', actFn: string) =>
    renderTemplate('decode-gate-up/gate-up-rows.wgsl.hbs', {
      what: part === 'routed' ? (split !== undefined ? 'Routed experts [0, SHARD1)' : 'Routed experts') : part === 'routed1' ? 'Routed experts from SHARD1 (matrix m is expert SHARD1 + m)' : 'Shared expert',
      fn: part === 'routed1' ? 'routed_gate_up1' : `${part}_gate_up`,
      rowDoc: part !== 'shared' ? 'slot row = t * TOPK + k (x row t)' : 'token row = t',
      outDoc: part !== 'shared' ? 't * INTER_WIDTH + k * INTER' : 't * INTER_WIDTH + TOPK * INTER',
      outRow: part !== 'shared' ? '(row / TOPK) * INTER_WIDTH + (row % TOPK) * INTER' : 'row * INTER_WIDTH + TOPK * INTER',
      aLo: part !== 'shared' ? '(rows.lo / TOPK) * H' : 'rows.lo * H',
      aHi: part !== 'shared' ? '(rows.hi / TOPK) * H' : 'rows.hi * H',
      ndim: mlp.intermediate,
      vec4,
      widths: decodePassWidths(),
      wGate: { routed: 'w_gate', routed1: 'w_gate1', shared: 'ws_gate' }[part],
      wUp: { routed: 'w_up', routed1: 'w_up1', shared: 'ws_up' }[part],
      bias: mlp.bias,
      // The biases stay whole [E, I]: the second shard's matrix m is expert SHARD1 + m there.
      biasMatrix: part === 'routed1' ? '(SHARD1 + m)' : 'm',
      bGate: part === 'routed' ? 'b_gate' : 'bs_gate',
      bUp: part === 'routed' ? 'b_up' : 'bs_up',
      act: actFn,
    }).trimEnd();
  const sharedAct = shared && sharedActivation(routed, shared, shape.activations);
  const wgsl = renderTemplate('decode-gate-up/decode-gate-up.wgsl.hbs', {
    title: `Decode gate/up: H = ${H}, I = ${routed.intermediate} (${(routed.weights ?? F32).format})` +
      (shared ? `, shared Is = ${shared.intermediate} (${(shared.weights ?? F32).format})` : '') + `, top-${K}${split !== undefined ? `, routed experts in shards [0, ${split}) and [${split}, E)` : ''}.`,
    header,
    rows,
    hidden: H,
    intermediate: routed.intermediate,
    sharedIntermediate: shared?.intermediate ?? 0,
    interWidth: decodeInterWidth(shape),
    topK: K,
    maxRows: GEMV_MAX_ROWS,
    shared: !!shared,
    weightLoads: [routedWeights.weightLoads, ...(shard1Weights ? [shard1Weights.weightLoads] : []), ...(sharedWeights ? [sharedWeights.weightLoads] : [])].join('\n').trimEnd(),
    activation: renderActivation(routed.activation, shape.activations).trimEnd(),
    sharedActivation: sharedAct ? sharedAct.wgsl : '',
    routedRows: rowsFn(routed, 'routed', 'act'),
    shard1: split ?? 0,
    shard1Rows: split !== undefined ? rowsFn(routed, 'routed1', 'act') : '',
    sharedRows: shared && sharedAct ? rowsFn(shared, 'shared', sharedAct.fn) : '',
  });
  const name = `decode_gateup_${H}x${decodeMlpTag(routed)}${split !== undefined ? `_shards0_${split}` : ''}${shared ? `_shared${decodeMlpTag(shared)}` : ''}${act === 'f16' ? '_f16act' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [rows, 1, 1], bindings, uniformBinding };
}
