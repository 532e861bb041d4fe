// The router kernel family: one template for the projection and one selection partial per
// router kind (select-<kind>.wgsl.hbs). Adding a router kind = adding a partial and a case here.
import { numParam, type KindRef } from '../../../ir/model-config.js';
import { activationArray, declareBindings, f32Array, i32Array, type ActivationDtype, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { orderConstant, orderTag } from '../common/expert-order.js';
import { renderTemplate } from '../template.js';
import { builtinRouterPartials, renderPartial, type RouterKernelPartial } from './router-partials.js';

export interface RouterKernelShape {
  hidden: number;
  experts: number;
  topK: number;
  router: KindRef;
  /** The op has a router bias input / a correction_bias input. */
  bias: boolean;
  correctionBias: boolean;
  /** Storage of the hidden states x. Default f32. */
  act?: ActivationDtype;
  /**
   * Token rounding: also write `route_probs` [T, E], each expert's raw probability as
   * routerProbabilities (ir/interpret/token-rounding.ts) defines it. Default off.
   */
  probs?: boolean;
  /** Mixed precision: each expert's storage position, which the kernel writes instead of its id (passes/group-experts-by-format.ts). */
  expertOrder?: readonly number[] | undefined;
}

const WORKGROUP = 64;
/** Logits and keys of a token tile share 16 KiB of workgroup memory with the partial sums. */
const MAX_TILE_SCORES = 1024;

/** Tokens per workgroup: as many as fit MAX_TILE_SCORES logits, at most 8. */
export function routerTokensPerWorkgroup(experts: number): number {
  return Math.max(1, Math.min(8, Math.floor(MAX_TILE_SCORES / experts)));
}

/** How routerProbabilities turns a router kind's logits into raw probabilities. */
function probabilityRule(kind: string): 'softmax' | 'sigmoid' | 'relu' {
  switch (kind) {
    case 'softmax_topk':
    case 'topk_softmax':
    case 'sparsemixer':
      return 'softmax';
    case 'sigmoid_topk':
      return 'sigmoid';
    case 'relu_gate':
      return 'relu';
    default:
      throw new Error(`token rounding has no raw probability for router ${kind} (known: softmax_topk, topk_softmax, sparsemixer, sigmoid_topk, relu_gate)`);
  }
}

/** `partials`: the selection partial of each router kind (a plugin's registry adds its own). */
export function renderRouterKernel(shape: RouterKernelShape, partials: Readonly<Record<string, RouterKernelPartial>> = builtinRouterPartials): RenderedKernel {
  const { hidden, experts, topK, router } = shape;
  const partial = partials[router.kind];
  if (!partial) throw new Error(`the WebGPU backend has no router kernel for ${router.kind} (known: ${Object.keys(partials).join(', ')})`);
  if (experts > MAX_TILE_SCORES) throw new Error(`the WebGPU router handles at most ${MAX_TILE_SCORES} experts, not ${experts}`);
  const groups = 'groups' in router.params ? numParam(router, 'groups') : 1;
  if (groups > 1 && experts % groups !== 0) throw new Error(`${router.kind}: ${experts} experts cannot be split into ${groups} equal groups`);
  const storage: StorageDecl[] = [
    { name: 'x', access: 'read', type: activationArray(shape.act ?? 'f32') },
    { name: 'router_weight', access: 'read', type: f32Array },
    ...(shape.bias ? [{ name: 'router_bias', access: 'read', type: f32Array } as const] : []),
    ...(shape.correctionBias ? [{ name: 'correction_bias', access: 'read', type: f32Array } as const] : []),
    { name: 'route_ids', access: 'read_write', type: i32Array },
    { name: 'route_weights', access: 'read_write', type: f32Array },
    ...(shape.probs ? [{ name: 'route_probs', access: 'read_write', type: f32Array } as const] : []),
  ];
  const { header, bindings, uniformBinding } = declareBindings(storage, shape.act);
  const tokensPerWorkgroup = routerTokensPerWorkgroup(experts);
  // Split each dot product over more lanes when H is long, so a pass has enough work per thread.
  const lanes = hidden >= 1024 ? 16 : hidden >= 128 ? 4 : 1;
  const selection = renderPartial(partial, shape);
  const rule = shape.probs ? probabilityRule(router.kind) : undefined;
  const wgsl = renderTemplate('router/router.wgsl.hbs', {
    header,
    kind: router.kind,
    bias: shape.bias,
    hidden,
    experts,
    topK,
    tokensPerWorkgroup,
    workgroupSize: WORKGROUP,
    lanes,
    tileScores: tokensPerWorkgroup * experts,
    grouped: groups > 1,
    groups,
    topkGroups: groups > 1 ? numParam(router, 'topk_groups') || groups : 0,
    groupScoreTopTwo: router.kind === 'sigmoid_topk',
    groupScoreDoc: router.kind === 'sigmoid_topk' ? 'Group score: the sum of the two best keys in the group (DeepSeek-V3).' : 'Group score: the best key in the group (DeepSeek-V2).',
    selection,
    probs: !!shape.probs,
    probsSoftmax: rule === 'softmax',
    probsSigmoid: rule === 'sigmoid',
    probsRelu: rule === 'relu',
    expertOrder: orderConstant('EXPERT_POSITION', shape.expertOrder),
    hasExpertOrder: shape.expertOrder !== undefined,
    probsDoc: router.kind === 'softmax_topk' ? 'a softmax over the E experts (no null experts, scale or group mask)' : rule === 'softmax' ? 'a softmax over the E logits' : rule === 'sigmoid' ? 'sigmoid(logit), without the correction bias' : 'relu(logit)',
  });
  return { name: `router_${router.kind}${shape.act === 'f16' ? '_f16act' : ''}${shape.probs ? '_probs' : ''}${orderTag(shape.expertOrder)}`, wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
}
