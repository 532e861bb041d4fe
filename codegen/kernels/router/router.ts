// The router kernel family: one template for the projection and one selection partial per
// router kind (select-<kind>.wgsl.hbs). Adding a router kind = adding a partial and a case here.
import { boolParam, numParam, type KindRef } from '../../../ir/model-config.js';
import { activationArray, declareBindings, f32Array, i32Array, type ActivationDtype, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { f32Literal, renderTemplate } from '../template.js';

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
}

const WORKGROUP = 64;
/** Logits and keys of a token tile share 16 KiB of workgroup memory with the partial sums. */
const MAX_TILE_SCORES = 1024;

export const routerKinds = ['softmax_topk', 'sigmoid_topk', 'topk_softmax', 'sparsemixer', 'relu_gate'] as const;

/** Tokens per workgroup: as many as fit MAX_TILE_SCORES logits, at most 8. */
export function routerTokensPerWorkgroup(experts: number): number {
  return Math.max(1, Math.min(8, Math.floor(MAX_TILE_SCORES / experts)));
}

function selectionContext(shape: RouterKernelShape): Record<string, unknown> {
  const r = shape.router;
  switch (r.kind) {
    case 'softmax_topk': {
      const nullExperts = numParam(r, 'null_experts');
      if (nullExperts > 0 && numParam(r, 'groups') > 1) throw new Error('softmax_topk: null_experts with groups > 1 is not defined (null experts belong to no group)');
      return { renormalize: boolParam(r, 'renormalize'), scale: f32Literal(numParam(r, 'scale')), nullExperts, grouped: numParam(r, 'groups') > 1 };
    }
    case 'sigmoid_topk':
      return { renormalize: boolParam(r, 'renormalize'), scale: f32Literal(numParam(r, 'scale')), correctionBias: shape.correctionBias, grouped: numParam(r, 'groups') > 1 };
    case 'topk_softmax':
      return { bias: shape.bias };
    case 'sparsemixer':
      if (shape.topK !== 2) throw new Error(`sparsemixer routes exactly 2 experts per token, not top_k = ${shape.topK}`);
      return { window: f32Literal(2 * numParam(r, 'jitter_eps')) };
    case 'relu_gate':
      return {};
    default:
      throw new Error(`the WebGPU backend has no router kernel for ${r.kind} (supported: ${routerKinds.join(', ')})`);
  }
}

export function renderRouterKernel(shape: RouterKernelShape): RenderedKernel {
  const { hidden, experts, topK, router } = shape;
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
  ];
  const { header, bindings, uniformBinding } = declareBindings(storage, shape.act);
  const tokensPerWorkgroup = routerTokensPerWorkgroup(experts);
  // Split each dot product over more lanes when H is long, so a pass has enough work per thread.
  const lanes = hidden >= 1024 ? 16 : hidden >= 128 ? 4 : 1;
  const selection = renderTemplate(`router/select-${router.kind}.wgsl.hbs`, selectionContext(shape));
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
  });
  return { name: `router_${router.kind}${shape.act === 'f16' ? '_f16act' : ''}`, wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
}
