// Fused decode, dispatch 3 of 3: the down GEMV of each token's routed slots and of the shared
// expert, times the routing weights (and the shared-expert gate), summed in fixed k order: the
// combine without slot rows in memory. One workgroup per (token, n tile of H). The routed matrices
// sit in one binding, or in two expert shards (`routedShards`: w_down, then w_down1). Both
// MLPs read one binding, `inter` ([T, K*I + Is], see decode-block-shape.ts): a Qwen2-MoE block
// (shared expert, sigmoid gate) needs 8 storage bindings, WebGPU's default per stage.
import { activationArray, declareBindings, f32Array, i32Array, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { checkDecodeBlockShape, checkShardedBindings, decodeInterVec4, decodeInterWidth, decodeMlpTag, routedShardSplit, type DecodeBlockShape, type DecodeMlpShape } from '../decode-block-shape.js';
import { GEMV_LANES, GEMV_ROWS } from '../expert-gemv/expert-gemv.js';
import { weightBindings } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import type { WeightLoads } from '../weights/weight-loads.js';
import { F32 } from '../../../runtime/quant/weight-format.js';

/** The workgroup memory every kernel may assume (WebGPU's default maxComputeWorkgroupStorageSize). */
const WORKGROUP_BYTES = 16384;

/** Workgroups for `tokens` tokens: (tokens, n tiles of H, 1). */
export function decodeDownCombineGrid(shape: DecodeBlockShape, tokens: number): [number, number, number] {
  return [tokens, Math.ceil(shape.hidden / GEMV_ROWS), 1];
}

/** `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads). */
export function renderDecodeDownCombineKernel(shape: DecodeBlockShape, loads?: WeightLoads): RenderedKernel {
  checkDecodeBlockShape(shape);
  const { hidden: H, topK: K, routed, shared, sharedGate } = shape;
  const act = shape.act ?? 'f32';
  const threads = GEMV_ROWS * GEMV_LANES;
  if (threads & (threads - 1)) throw new Error(`internal: the shared-gate reduction needs a power-of-two workgroup, not ${threads}`);
  const terms = K + (shared ? 1 : 0);
  const bytes = (terms + (sharedGate ? 1 : 0)) * threads * 4;
  if (bytes > WORKGROUP_BYTES) throw new Error(`the fused decode down/combine kernel holds ${terms} partial sums per feature (${bytes} bytes of workgroup memory, more than ${WORKGROUP_BYTES}): top_k = ${K} is too large for it`);
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
  const dot = (what: string, fn: string, w: string, kdim: number, vec4: boolean) => renderTemplate('decode-down-combine/down-dot.wgsl.hbs', { what, fn, w, kdim, vec4, interVec4 }).trimEnd();
  const wgsl = renderTemplate('decode-down-combine/decode-down-combine.wgsl.hbs', {
    title: `Decode down + combine: H = ${H}, I = ${routed.intermediate} (${(routed.weights ?? F32).format})` +
      (shared ? `, shared Is = ${shared.intermediate} (${(shared.weights ?? F32).format})${sharedGate ? ', gated' : ''}` : '') + `, top-${K}${split !== undefined ? `, routed experts in shards [0, ${split}) and [${split}, E)` : ''}.`,
    header,
    rows: GEMV_ROWS,
    lanes: GEMV_LANES,
    hidden: H,
    topK: K,
    intermediate: routed.intermediate,
    interWidth: decodeInterWidth(shape),
    terms,
    bias: routed.bias,
    shared: !!shared,
    sharedBias: !!shared?.bias,
    sharedGate,
    weightLoads: [routedWeights.weightLoads, ...(shard1Weights ? [shard1Weights.weightLoads] : []), ...(sharedWeights ? [sharedWeights.weightLoads] : [])].join('\n').trimEnd(),
    routedDot: dot(split !== undefined ? 'Routed experts [0, SHARD1)' : 'Routed expert', 'routed_down', 'w_down', routed.intermediate, routedVec4),
    shard1: split ?? 0,
    shard1Dot: split !== undefined ? dot('Routed experts from SHARD1 (matrix m is expert SHARD1 + m)', 'routed_down1', 'w_down1', routed.intermediate, routedVec4) : '',
    sharedDot: shared ? dot('Shared expert', 'shared_down', 'ws_down', shared.intermediate, sharedVec4) : '',
  });
  const name = `decode_down_combine_${decodeMlpTag(routed)}x${H}${split !== undefined ? `_shards0_${split}` : ''}${shared ? `_shared${decodeMlpTag(shared)}${sharedGate ? '_gated' : ''}` : ''}${act === 'f16' ? '_f16act' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [threads, 1, 1], bindings, uniformBinding };
}
