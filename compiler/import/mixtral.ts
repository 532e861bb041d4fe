// Mixtral (model_type "mixtral") and PhiMoE ("phimoe"): the same decoder, N SwiGLU experts per
// layer on every layer. PhiMoE differs in its router (sparsemixer), LayerNorm and biases.
import type { ConfigReader } from './config-reader.js';
import { gqaParams, gqaShown, modelHead, readSizes, rmsnorm, type ImportedModel } from './decoder-fields.js';
import { block, blank, field, kindCall } from './spec-writer.js';

interface MixtralVariant {
  norm: string;
  attentionBias: boolean;
  router: string;
  lmHeadBias: boolean;
}

function importMixtralLike(r: ConfigReader, variant: (r: ConfigReader) => MixtralVariant, summary: (e: number, k: number) => string): ImportedModel {
  const sizes = readSizes(r);
  const experts = r.int('num_local_experts', 'the number of experts');
  const topK = r.int('num_experts_per_tok', 'the experts per token (top_k)');
  const intermediate = r.int('intermediate_size', 'the expert MLP width');
  const v = variant(r);
  // Mixtral and PhiMoE apply sliding_window (when set) on every layer.
  const window = r.int('sliding_window', 'the attention window', { min: 0, default: 0 });
  const gqa = gqaParams(r, sizes.hidden);
  const attention = kindCall('attention', 'gqa', { ...gqa, qkv_bias: v.attentionBias, o_bias: v.attentionBias, sliding_window: window }, gqaShown);
  const notes: string[] = [];
  const head = modelHead(r, sizes, v.norm, { attention, rotaryDim: gqa['head_dim'] as number }, notes, v.lmHeadBias);
  return {
    summary: summary(experts, topK),
    model: [
      ...head,
      blank,
      block('moe', [
        field('experts', String(experts)),
        field('top_k', String(topK)),
        field('router', v.router),
        field('expert', kindCall('activation', 'swiglu', { intermediate })),
      ]),
    ],
    notes,
  };
}

export function importMixtral(r: ConfigReader): ImportedModel {
  return importMixtralLike(r, () => ({
    norm: rmsnorm(r),
    attentionBias: false,
    router: kindCall('router', 'softmax_topk', { renormalize: true }, ['renormalize']),
    lmHeadBias: false,
  }), (e, k) => `Mixtral: ${e} SwiGLU experts on every layer, softmax router, top-${k} renormalized to sum 1.`);
}

export function importPhiMoe(r: ConfigReader): ImportedModel {
  return importMixtralLike(r, () => {
    const attentionBias = r.bool('attention_bias', 'the attention projection biases', false);
    return {
      // PhiMoE uses LayerNorm (with bias) although its config calls the epsilon rms_norm_eps.
      norm: kindCall('norm', 'layernorm', { eps: r.number('rms_norm_eps', 'the LayerNorm epsilon (norm)', { positive: true, default: 1e-5 }) }, ['eps']),
      attentionBias,
      router: kindCall('router', 'sparsemixer', { jitter_eps: r.number('router_jitter_noise', 'the sparsemixer window (jitter_eps)', { default: 0.01 }) }, ['jitter_eps']),
      lmHeadBias: r.bool('lm_head_bias', 'the LM head bias', false),
    };
  }, (e) => `PhiMoE: ${e} SwiGLU experts, sparsemixer routing (top-2), LayerNorm, biased attention and LM head.`);
}
