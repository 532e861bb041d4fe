// Qwen2-MoE ("qwen2_moe", also Qwen1.5-MoE), Qwen3-MoE ("qwen3_moe") and OLMoE ("olmoe"): a softmax
// router renormalized iff norm_topk_prob. Qwen2-MoE adds one sigmoid-gated shared expert; Qwen3
// and OLMoE normalize queries and keys. Qwen picks MoE layers with decoder_sparse_step.
import type { ParamValue } from '../../ir/model-config.js';
import type { ConfigReader } from './config-reader.js';
import { gqaParams, gqaShown, modelHead, readSizes, rmsnorm, type ImportedModel } from './decoder-fields.js';
import { block, blank, field, kindCall, type SpecItem } from './spec-writer.js';

/** Qwen's layer rule: layer i is MoE iff (i + 1) % decoder_sparse_step == 0 and i is not in mlp_only_layers. */
function qwenLayerRule(r: ConfigReader, layers: number): { items: SpecItem[]; anyDense: boolean } {
  const every = r.int('decoder_sparse_step', 'which layers are MoE (every)', { default: 1 });
  const denseLayers = r.intList('mlp_only_layers', 'the layers kept dense (dense_layers)', []);
  const bad = denseLayers.find((l) => l >= layers);
  if (bad !== undefined) throw r.unsupported('mlp_only_layers', `names layer ${bad}, but num_hidden_layers is ${layers}`);
  const items: SpecItem[] = [];
  if (every > 1) items.push(field('every', String(every)), field('offset', String(every - 1)));
  if (denseLayers.length) items.push(field('dense_layers', `[${denseLayers.join(', ')}]`));
  return { items, anyDense: every > 1 || denseLayers.length > 0 };
}

function slidingWindowNotes(r: ConfigReader): string[] {
  return r.bool('use_sliding_window', 'whether attention slides', false)
    ? ['use_sliding_window = true (a window on layers from max_window_layers on) is not expressible: the spec attends the full context on every layer']
    : [];
}

/** softmax_topk(renormalize = norm_topk_prob), which transformers defaults to false for all three. */
function softmaxRouter(r: ConfigReader): { router: string; renormalized: boolean } {
  const renormalized = r.bool('norm_topk_prob', 'whether the top-k weights are renormalized', false);
  return { router: kindCall('router', 'softmax_topk', { renormalize: renormalized }, ['renormalize']), renormalized };
}

interface QwenVariant {
  family: string;
  sharedExpert: boolean;
  qkNorm: boolean;
  /** Qwen2: q/k/v always have biases and o never; Qwen3: all four follow attention_bias. */
  biases: 'qkv' | 'attention_bias';
}

function attentionBiases(r: ConfigReader, biases: QwenVariant['biases']): Record<string, ParamValue> {
  if (biases === 'qkv') return { qkv_bias: true };
  const bias = r.bool('attention_bias', 'the attention projection biases', false);
  return { qkv_bias: bias, o_bias: bias };
}

function importQwen(r: ConfigReader, variant: QwenVariant): ImportedModel {
  const sizes = readSizes(r);
  const experts = r.int('num_experts', 'the number of experts');
  const topK = r.int('num_experts_per_tok', 'the experts per token (top_k)');
  const expertWidth = r.int('moe_intermediate_size', 'the expert MLP width');
  const gqa = gqaParams(r, sizes.hidden);
  const attention = kindCall('attention', 'gqa', { ...gqa, qk_norm: variant.qkNorm, ...attentionBiases(r, variant.biases) }, gqaShown);
  const rule = qwenLayerRule(r, sizes.layers);
  const { router, renormalized } = softmaxRouter(r);
  const moe: SpecItem[] = [
    field('experts', String(experts)),
    field('top_k', String(topK)),
    field('router', router),
    field('expert', kindCall('activation', 'swiglu', { intermediate: expertWidth })),
  ];
  if (variant.sharedExpert) {
    const sharedWidth = r.int('shared_expert_intermediate_size', 'the shared expert MLP width');
    moe.push(field('shared', kindCall('activation', 'swiglu', { intermediate: sharedWidth })), field('shared_gate', 'sigmoid'));
  }
  moe.push(...rule.items);
  const notes = slidingWindowNotes(r);
  const model = [...modelHead(r, sizes, rmsnorm(r, 1e-6), { attention, rotaryDim: gqa['head_dim'] as number }, notes), blank, block('moe', moe)];
  if (rule.anyDense) {
    const denseWidth = r.int('intermediate_size', 'the MLP width of the dense layers');
    model.push(blank, block('dense', [field('mlp', kindCall('activation', 'swiglu', { intermediate: denseWidth }))]));
  }
  const shared = variant.sharedExpert ? ' plus one sigmoid-gated shared expert' : '';
  return {
    summary: `${variant.family}: ${experts} SwiGLU experts${shared}, softmax router, top-${topK}${renormalized ? ' renormalized' : ' not renormalized'}.`,
    model,
    notes,
  };
}

export function importQwen2Moe(r: ConfigReader): ImportedModel {
  return importQwen(r, { family: 'Qwen2-MoE', sharedExpert: true, qkNorm: false, biases: 'qkv' });
}

export function importQwen3Moe(r: ConfigReader): ImportedModel {
  return importQwen(r, { family: 'Qwen3-MoE', sharedExpert: false, qkNorm: true, biases: 'attention_bias' });
}

export function importOlmoe(r: ConfigReader): ImportedModel {
  const sizes = readSizes(r);
  const experts = r.int('num_experts', 'the number of experts');
  const topK = r.int('num_experts_per_tok', 'the experts per token (top_k)');
  const expertWidth = r.int('intermediate_size', 'the expert MLP width');
  const bias = r.bool('attention_bias', 'the attention projection biases', false);
  const gqa = gqaParams(r, sizes.hidden);
  // OLMoE normalises the whole q and k projections before the head split (modeling_olmoe.py: q_norm over hidden_size).
  const clip = r.number('clip_qkv', 'the q/k/v clamp', { positive: true, default: 0 });
  const attention = kindCall('attention', 'gqa', { ...gqa, qk_norm: true, qk_norm_span: 'projection', clip_qkv: clip, qkv_bias: bias, o_bias: bias }, [...gqaShown, 'qk_norm_span']);
  const notes: string[] = [];
  const head = modelHead(r, sizes, rmsnorm(r, 1e-5), { attention, rotaryDim: gqa['head_dim'] as number }, notes);
  return {
    summary: `OLMoE: ${experts} SwiGLU experts on every layer, softmax router, top-${topK}, q/k norm.`,
    model: [
      ...head,
      blank,
      block('moe', [
        field('experts', String(experts)),
        field('top_k', String(topK)),
        field('router', softmaxRouter(r).router),
        field('expert', kindCall('activation', 'swiglu', { intermediate: expertWidth })),
      ]),
    ],
    notes,
  };
}
