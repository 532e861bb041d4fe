// Fused decode, dispatch 2 of 3: the grouped gate/up GEMV of the routed experts (one workgroup per
// distinct expert and n tile, like expert-gemv) with the shared expert folded in as slot k = K, an
// expert every token chose, in the same dispatch. Every routed matrix sits in one binding: a
// sharded block (expert shards in several bindings) keeps the unfused path's per-shard GEMVs.
// Both MLPs write one binding, `inter` ([T, K*I + Is], see decode-block-shape.ts).
import { activationArray, declareBindings, i32Array, renderActivation, type ActivationKernels, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { checkDecodeBlockShape, decodeInterWidth, decodeMlpTag, type DecodeBlockShape, type DecodeMlpShape } from '../decode-block-shape.js';
import { GEMV_CHUNK, GEMV_LANES, GEMV_MAX_ROWS, GEMV_ROWS } from '../expert-gemv/expert-gemv.js';
import { weightBindings } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import type { WeightLoads } from '../weights/weight-loads.js';
import { F32 } from '../../../runtime/quant/weight-format.js';

/** Workgroups for `tokens` tokens: (n tiles over the larger intermediate, K (+ 1 for the shared expert), tokens). */
export function decodeGateUpGrid(shape: DecodeBlockShape, tokens: number): [number, number, number] {
  const widest = Math.max(shape.routed.intermediate, shape.shared?.intermediate ?? 0);
  return [Math.ceil(widest / GEMV_ROWS), shape.topK + (shape.shared ? 1 : 0), tokens];
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
  // Both MLPs reduce over H: one vec4 decision for x and every weight.
  const vec4 = H % 4 === 0;
  const group = (mlp: DecodeMlpShape, prefix: 'w' | 'ws') => {
    const b = prefix === 'w' ? 'b' : 'bs';
    return weightBindings({ names: [`${prefix}_gate`, `${prefix}_up`], biases: mlp.bias ? [`${b}_gate`, `${b}_up`] : [], format: mlp.weights ?? F32, rows: mlp.intermediate, cols: H }, vec4, loads);
  };
  const routedWeights = group(routed, 'w');
  const sharedWeights = shared && group(shared, 'ws');
  const storage: StorageDecl[] = [
    { name: 'x', access: 'read', type: activationArray(act, vec4) },
    { name: 'route_ids', access: 'read', type: i32Array },
    ...routedWeights.storage,
    ...(sharedWeights?.storage ?? []),
    { name: 'inter', access: 'read_write', type: activationArray(act) },
  ];
  const { header, bindings, uniformBinding } = declareBindings(storage, act);
  const rowsFn = (mlp: DecodeMlpShape, part: 'routed' | 'shared', actFn: string) =>
    renderTemplate('decode-gate-up/gate-up-rows.wgsl.hbs', {
      what: part === 'routed' ? 'Routed experts' : 'Shared expert',
      fn: `${part}_gate_up`,
      rowDoc: part === 'routed' ? 'slot rows[j] = t * TOPK + k (x row t)' : 'token rows[j] = t',
      outDoc: part === 'routed' ? 't * INTER_WIDTH + k * INTER' : 't * INTER_WIDTH + TOPK * INTER',
      outRow: part === 'routed' ? '((*rows)[j] / TOPK) * INTER_WIDTH + ((*rows)[j] % TOPK) * INTER' : '(*rows)[j] * INTER_WIDTH + TOPK * INTER',
      aRow: part === 'routed' ? '((*rows)[base + j] / TOPK)' : '(*rows)[base + j]',
      ndim: mlp.intermediate,
      vec4,
      wGate: part === 'routed' ? 'w_gate' : 'ws_gate',
      wUp: part === 'routed' ? 'w_up' : 'ws_up',
      bias: mlp.bias,
      bGate: part === 'routed' ? 'b_gate' : 'bs_gate',
      bUp: part === 'routed' ? 'b_up' : 'bs_up',
      act: actFn,
    }).trimEnd();
  const sharedAct = shared && sharedActivation(routed, shared, shape.activations);
  const wgsl = renderTemplate('decode-gate-up/decode-gate-up.wgsl.hbs', {
    title: `Decode gate/up: H = ${H}, I = ${routed.intermediate} (${(routed.weights ?? F32).format})` +
      (shared ? `, shared Is = ${shared.intermediate} (${(shared.weights ?? F32).format})` : '') + `, top-${K}.`,
    header,
    rows: GEMV_ROWS,
    lanes: GEMV_LANES,
    hidden: H,
    intermediate: routed.intermediate,
    sharedIntermediate: shared?.intermediate ?? 0,
    interWidth: decodeInterWidth(shape),
    topK: K,
    maxRows: GEMV_MAX_ROWS,
    chunk: GEMV_CHUNK,
    shared: !!shared,
    weightLoads: [routedWeights.weightLoads, ...(sharedWeights ? [sharedWeights.weightLoads] : [])].join('\n').trimEnd(),
    activation: renderActivation(routed.activation, shape.activations).trimEnd(),
    sharedActivation: sharedAct ? sharedAct.wgsl : '',
    routedRows: rowsFn(routed, 'routed', 'act'),
    sharedRows: shared && sharedAct ? rowsFn(shared, 'shared', sharedAct.fn) : '',
  });
  const name = `decode_gateup_${H}x${decodeMlpTag(routed)}${shared ? `_shared${decodeMlpTag(shared)}` : ''}${act === 'f16' ? '_f16act' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [GEMV_ROWS * GEMV_LANES, 1, 1], bindings, uniformBinding };
}
