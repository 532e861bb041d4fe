// Fused decode, dispatch 3 of 3: the down GEMV of each token's routed slots and of the shared
// expert, times the routing weights (and the shared-expert gate), summed in fixed k order: the
// combine without slot rows in memory. One workgroup per n tile of H serves every token: it groups
// the batch's slots by expert and reads each active expert's down rows once per forward. The routed
// matrices sit in one binding, or in two expert shards (`routedShards`: w_down, then w_down1). Both
// MLPs read one binding, `inter` ([T, K*I + Is], see decode-block-shape.ts): a Qwen2-MoE block
// (shared expert, sigmoid gate) needs 8 storage bindings, WebGPU's default per stage.
import { activationArray, declareBindings, f32Array, i32Array, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { checkDecodeBlockShape, checkShardedBindings, decodeInterVec4, decodeInterWidth, decodeRows, decodeMlpTag, decodePassWidths, routedShardSplit, type DecodeBlockShape, type DecodeMlpShape } from '../decode-block-shape.js';
import { GEMV_MAX_ROWS } from '../expert-gemv/expert-gemv.js';
import { weightBindings } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import type { WeightLoads } from '../weights/weight-loads.js';
import { F32 } from '../../../runtime/quant/weight-format.js';

/** WGSL's limit on the private variables a shader uses. */
const PRIVATE_BYTES = 8192;

/** Workgroups: one per n tile of `rows` features of H, each serving every token (at most DECODE_FUSED_MAX_TOKENS). */
export function decodeDownCombineGrid(shape: DecodeBlockShape): [number, number, number] {
  return [Math.ceil(shape.hidden / decodeRows(shape)), 1, 1];
}

/** `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads). */
export function renderDecodeDownCombineKernel(shape: DecodeBlockShape, loads?: WeightLoads): RenderedKernel {
  checkDecodeBlockShape(shape);
  const { hidden: H, topK: K, routed, shared, sharedGate } = shape;
  const act = shape.act ?? 'f32';
  const rows = decodeRows(shape);
  // Each thread keeps every slot's term (and each token's shared term) in private memory, which
  // WGSL caps per shader.
  const slots = GEMV_MAX_ROWS * K;
  const terms = slots + (shared ? GEMV_MAX_ROWS : 0);
  if (terms * 4 > PRIVATE_BYTES) throw new Error(`the fused decode down/combine kernel keeps ${terms} terms per thread (${terms * 4} bytes of private memory, more than WGSL's ${PRIVATE_BYTES}): top_k = ${K} is too large for it`);
  // Each MLP's down matrix is read 4 columns at a time when its own intermediate allows; the one
  // inter binding only when every row start of it does (else 4 scalars stand in for each vec4).
  const routedVec4 = routed.intermediate % 4 === 0;
  const sharedVec4 = !!shared && shared.intermediate % 4 === 0;
  const interVec4 = decodeInterVec4(shape);
  const down = (mlp: DecodeMlpShape, name: string, bias: string, vec4: boolean) =>
    weightBindings({ names: [name], biases: mlp.bias ? [bias] : [], format: mlp.weights ?? F32, rows: H, cols: mlp.intermediate }, vec4, loads);
  const routedWeights = down(routed, 'w_down', 'b_down', routedVec4);
  const sharedWeights = shared && down(shared, 'ws_down', 'bs_down', sharedVec4);
  const split = routedShardSplit(shape);
  // The second shard's matrices; b_down stays whole [E, H], indexed by the expert itself.
  const shard1Weights = split !== undefined ? weightBindings({ names: ['w_down1'], biases: [], format: routed.weights ?? F32, rows: H, cols: routed.intermediate }, routedVec4, loads) : undefined;
  const storage: StorageDecl[] = [
    { name: 'route_ids', access: 'read', type: i32Array },
    { name: 'routing_weights', access: 'read', type: f32Array },
    { name: 'inter', access: 'read', type: activationArray(act, interVec4) },
    ...routedWeights.storage,
    ...(sharedWeights?.storage ?? []),
    ...(sharedGate
      ? ([
          { name: 'x', access: 'read', type: activationArray(act) },
          { name: 'shared_gate_weight', access: 'read', type: f32Array },
        ] as const)
      : []),
    { name: 'out', access: 'read_write', type: activationArray(act) },
    ...(shard1Weights?.storage ?? []),
  ];
  if (shard1Weights) checkShardedBindings('down/combine', storage);
  const { header, bindings, uniformBinding } = declareBindings(storage, act);
  const widths = decodePassWidths();
  const dot = (what: string, fn: string, w: string, kdim: number, vec4: boolean, routedRows: boolean) =>
    renderTemplate('decode-down-combine/down-dot.wgsl.hbs', {
      what, fn, w, kdim, vec4, interVec4, widths,
      finish: routedRows ? 'routed_term' : 'shared_term',
      // Slot t * TOPK + k's row starts at t * INTER_WIDTH + k * INTER; token t's shared row at t * INTER_WIDTH + TOPK * INTER.
      aLo: routedRows ? '(rows.lo / vec4<u32>(TOPK)) * INTER_WIDTH + (rows.lo % vec4<u32>(TOPK)) * INTER' : 'rows.lo * INTER_WIDTH + TOPK * INTER',
      aHi: routedRows ? '(rows.hi / vec4<u32>(TOPK)) * INTER_WIDTH + (rows.hi % vec4<u32>(TOPK)) * INTER' : 'rows.hi * INTER_WIDTH + TOPK * INTER',
    }).trimEnd();
  const wgsl = renderTemplate('decode-down-combine/decode-down-combine.wgsl.hbs', {
    title: `Decode down + combine: H = ${H}, I = ${routed.intermediate} (${(routed.weights ?? F32).format})` +
      (shared ? `, shared Is = ${shared.intermediate} (${(shared.weights ?? F32).format})${sharedGate ? ', gated' : ''}` : '') + `, top-${K}${split !== undefined ? `, routed experts in shards [0, ${split}) and [${split}, E)` : ''}.`,
    header,
    rows,
    // The gate's sum is written for 4 strided parts per thread, then a tree over the threads (128 parts at 32 rows).
    gateParts: 4 * rows,
    hidden: H,
    topK: K,
    intermediate: routed.intermediate,
    interWidth: decodeInterWidth(shape),
    maxRows: GEMV_MAX_ROWS,
    terms,
    interVec4,
    doneWords: Math.ceil(slots / 32),
    bias: routed.bias,
    shared: !!shared,
    sharedBias: !!shared?.bias,
    sharedGate,
    weightLoads: [routedWeights.weightLoads, ...(shard1Weights ? [shard1Weights.weightLoads] : []), ...(sharedWeights ? [sharedWeights.weightLoads] : [])].join('\n').trimEnd(),
    routedDot: dot(split !== undefined ? 'Routed experts [0, SHARD1)' : 'Routed expert', 'routed_down', 'w_down', routed.intermediate, routedVec4, true),
    shard1: split ?? 0,
    shard1Dot: split !== undefined ? dot('Routed experts from SHARD1 (matrix m is expert SHARD1 + m)', 'routed_down1', 'w_down1', routed.intermediate, routedVec4, true) : '',
    sharedDot: shared ? dot('Shared expert', 'shared_down', 'ws_down', shared.intermediate, sharedVec4, false) : '',
  });
  const name = `decode_down_combine_${decodeMlpTag(routed)}x${H}${split !== undefined ? `_shards0_${split}` : ''}${shared ? `_shared${decodeMlpTag(shared)}${sharedGate ? '_gated' : ''}` : ''}${act === 'f16' ? '_f16act' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [rows, 1, 1], bindings, uniformBinding };
}
