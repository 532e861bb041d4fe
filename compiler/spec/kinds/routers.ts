// Router kinds: how token-to-expert scores are computed and the top-k chosen and weighted.
// Semantics follow ../shared/moe-reference.md; the CPU interpreter implements each one.
import type { ParamValue } from '../../../ir/model-config.js';
import type { FieldSchema, KindContext, KindDefinition, KindIssue } from './registry.js';

const groupParams: FieldSchema[] = [
  { name: 'groups', doc: 'Number of expert groups for group-limited selection (DeepSeek n_group); 1 disables it.', value: { type: 'int', min: 1 }, default: 1 },
  { name: 'topk_groups', doc: 'Groups kept per token before the top-k inside them (DeepSeek topk_group); defaults to all groups.', value: { type: 'int', min: 1 }, default: 0 },
  { name: 'scale', doc: 'Multiplier on the final routing weights (DeepSeek routed_scaling_factor).', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1 },
];

function checkGroups(params: Record<string, ParamValue>, context: KindContext): KindIssue[] {
  const issues: KindIssue[] = [];
  const groups = params['groups'] as number;
  const topkGroups = (params['topk_groups'] as number) || groups;
  const experts = context.experts ?? 0;
  if (experts > 0 && experts % groups !== 0) {
    issues.push({ param: 'groups', message: `${experts} experts cannot be split into ${groups} equal groups`, hint: 'groups must divide the number of experts' });
  }
  if (topkGroups > groups) {
    issues.push({ param: 'topk_groups', message: `topk_groups = ${topkGroups} is more than groups = ${groups}`, hint: `allowed range: 1..${groups}` });
  } else if (topkGroups < groups && experts > 0 && context.topK !== undefined && experts % groups === 0 && context.topK > topkGroups * (experts / groups)) {
    // With every group kept this is `top_k > experts`, which the moe block already reports.
    issues.push({ param: 'topk_groups', message: `top_k = ${context.topK} cannot be chosen from ${topkGroups} groups of ${experts / groups} experts`, hint: 'raise topk_groups or lower top_k' });
  }
  return issues;
}

/** topk_groups = 0 means "all groups"; resolve it so consumers see the real number. */
function resolveGroups(params: Record<string, ParamValue>): void {
  if (!params['topk_groups']) params['topk_groups'] = params['groups'] as number;
}

export const routerKinds: KindDefinition[] = [
  {
    name: 'softmax_topk',
    category: 'router',
    doc: 'softmax(x W^T) in f32, top-k, optionally renormalized to sum 1 (Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V2). With groups > 1 the top-k is limited to the topk_groups groups whose best expert scores highest (DeepSeek-V2 group_limited_greedy). null_experts > 0 adds zero-cost null experts to the top-k (AdaMoE), so tokens use a variable number of real experts.',
    params: [
      { name: 'renormalize', doc: 'Divide the chosen k probabilities by their sum (Mixtral always; Qwen/OLMoE norm_topk_prob).', value: { type: 'bool' }, default: true },
      ...groupParams,
      { name: 'null_experts', doc: 'Null experts added to the top-k candidates (AdaMoE): choosing one costs nothing and adds nothing.', value: { type: 'int', min: 0 }, default: 0 },
      { name: 'bias', doc: 'The router projection has a bias.', value: { type: 'bool' }, default: false },
    ],
    resolve(params, context) {
      resolveGroups(params);
      return checkGroups(params, context);
    },
  },
  {
    name: 'sigmoid_topk',
    category: 'router',
    doc: 'DeepSeek-V3: s = sigmoid(x W^T); experts are selected on s + e_score_correction_bias (group score = sum of the top-2 biased scores in a group, keep topk_groups groups), weighted by the unbiased s, renormalized (eps 1e-20) iff renormalize, then multiplied by scale.',
    params: [
      { name: 'renormalize', doc: 'Divide the chosen k scores by their sum (norm_topk_prob).', value: { type: 'bool' }, default: true },
      ...groupParams,
      { name: 'correction_bias', doc: 'Selection adds the learned e_score_correction_bias (f32, one per expert).', value: { type: 'bool' }, default: true },
    ],
    resolve(params, context) {
      resolveGroups(params);
      return checkGroups(params, context);
    },
  },
  {
    name: 'topk_softmax',
    category: 'router',
    doc: 'gpt-oss: logits = x W^T + b, top-k on the raw logits, then softmax over the k chosen logits.',
    params: [{ name: 'bias', doc: 'The router projection has a bias (gpt-oss: yes).', value: { type: 'bool' }, default: true }],
  },
  {
    name: 'sparsemixer',
    category: 'router',
    doc: 'PhiMoE inference routing: top-1 from a softmax masked to logits within 2*jitter_eps (relative) of the best, then the same on the remaining experts for the second choice; weights are the masked softmax probabilities. Needs top_k = 2.',
    params: [{ name: 'jitter_eps', doc: 'Relative logit window of the masked softmax (router_jitter_noise).', value: { type: 'number', min: 0 }, default: 0.01 }],
    resolve(_params, context) {
      return context.topK !== undefined && context.topK !== 2 ? [{ message: `sparsemixer routes exactly 2 experts per token, not top_k = ${context.topK}`, hint: 'set top_k = 2' }] : [];
    },
  },
  {
    name: 'relu_gate',
    category: 'router',
    doc: 'ReMoE: p = relu(x W^T); an expert is active where p > 0, weighted by p. top_k caps how many active experts are kept (the largest); top_k = experts keeps every positive one.',
    params: [],
  },
];
