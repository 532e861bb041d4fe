// DeepSeek-V2 ("deepseek_v2") and DeepSeek-V3 ("deepseek_v3"): multi-head latent attention, the
// first first_k_dense_replace layers dense, n_shared_experts merged into one wide shared MLP, and
// group-limited routing (V2 softmax, V3 sigmoid with a selection-only correction bias).
import type { ConfigReader } from './config-reader.js';
import { modelHead, readSizes, rmsnorm, type AttentionHead, type ImportedModel } from './decoder-fields.js';
import { block, blank, field, kindCall, type SpecItem } from './spec-writer.js';

/** V2's modeling code always rotates interleaved pairs (complex multiplication); V3 reads rope_interleave, default true. */
function mlaAttention(r: ConfigReader, readsInterleave: boolean): AttentionHead {
  const rotaryDim = r.int('qk_rope_head_dim', 'the rotary query/key head width');
  const attention = kindCall('attention', 'mla', {
    heads: r.int('num_attention_heads', 'the number of attention heads'),
    // null means a full query projection (DeepSeek-V2-Lite).
    q_lora_rank: r.int('q_lora_rank', 'the query compression rank', { min: 0, default: 0 }),
    kv_lora_rank: r.int('kv_lora_rank', 'the key/value compression rank'),
    qk_nope_head_dim: r.int('qk_nope_head_dim', 'the non-rotary query/key head width'),
    qk_rope_head_dim: rotaryDim,
    v_head_dim: r.int('v_head_dim', 'the value head width'),
    rope_theta: r.number('rope_theta', 'the rotary embedding base', { positive: true, default: 10000 }),
    rope_interleave: readsInterleave ? r.bool('rope_interleave', 'whether the rope part rotates interleaved pairs', true) : true,
    // transformers' DeepseekV2Attention keeps qk_head_dim^-0.5; DeepseekV3Attention adds YaRN's mscale^2.
    softmax_mscale: readsInterleave,
  }, ['heads', 'q_lora_rank', 'kv_lora_rank', 'qk_nope_head_dim', 'qk_rope_head_dim', 'v_head_dim', 'rope_theta']);
  return { attention, rotaryDim };
}

function deepseekNotes(r: ConfigReader): string[] {
  const notes: string[] = [];
  if (r.bool('attention_bias', 'the attention projection biases', false)) notes.push('attention_bias = true is not expressible: mla has no projection biases');
  const mtp = r.int('num_nextn_predict_layers', 'the multi-token prediction layers', { min: 0, default: 0 });
  if (mtp > 0) notes.push(`num_nextn_predict_layers = ${mtp}: the multi-token prediction module is left out (as in the published parameter counts)`);
  if (r.has('quantization_config')) {
    const q = r.raw('quantization_config') as Record<string, unknown>;
    notes.push(`the checkpoint stores weights as ${String(q['quant_method'] ?? 'quantized')}${q['fmt'] ? ` ${String(q['fmt'])}` : ''}, which has no .moe quantization kind; moec run reads them dequantized to f32 and stores them as the compile block's quantize lines say`);
  }
  return notes;
}

type Router = { router: string; summary: string };

function importDeepseek(r: ConfigReader, family: string, readsInterleave: boolean, readRouter: (r: ConfigReader, topK: number) => Router): ImportedModel {
  const sizes = readSizes(r);
  const experts = r.int('n_routed_experts', 'the number of routed experts');
  const topK = r.int('num_experts_per_tok', 'the experts per token (top_k)');
  const expertWidth = r.int('moe_intermediate_size', 'the expert MLP width');
  const sharedCount = r.int('n_shared_experts', 'the number of shared experts', { min: 0, default: 0 });
  const firstLayer = r.int('first_k_dense_replace', 'the leading dense layers (first_layer)', { min: 0, default: 0 });
  const every = r.int('moe_layer_freq', 'which layers are MoE (every)', { default: 1 });
  if (firstLayer >= sizes.layers) throw r.unsupported('first_k_dense_replace', `is ${firstLayer}, which leaves no MoE layer among ${sizes.layers}`);
  const { router, summary } = readRouter(r, topK);

  const moe: SpecItem[] = [
    field('experts', String(experts)),
    field('top_k', String(topK)),
    field('router', router),
    field('expert', kindCall('activation', 'swiglu', { intermediate: expertWidth })),
  ];
  if (sharedCount > 0) {
    const width = sharedCount === 1 ? expertWidth : `${expertWidth} * ${sharedCount}`;
    moe.push(sharedCount === 1
      ? field('shared', kindCall('activation', 'swiglu', { intermediate: width }))
      : field('shared', kindCall('activation', 'swiglu', { intermediate: width }), `${sharedCount} shared experts as one MLP`));
  }
  if (firstLayer > 0) moe.push(field('first_layer', String(firstLayer)));
  if (every > 1) moe.push(field('every', String(every)));
  const notes = deepseekNotes(r);
  const model = [...modelHead(r, sizes, rmsnorm(r, 1e-6), mlaAttention(r, readsInterleave), notes), blank, block('moe', moe)];
  if (firstLayer > 0 || every > 1) {
    model.push(blank, block('dense', [field('mlp', kindCall('activation', 'swiglu', { intermediate: r.int('intermediate_size', 'the MLP width of the dense layers') }))]));
  }
  const dense = firstLayer === 0 ? '' : firstLayer === 1 ? '; the first layer dense' : `; the first ${firstLayer} layers dense`;
  return {
    summary: `${family}: multi-head latent attention; ${experts} routed + ${sharedCount} shared SwiGLU experts; ${summary}${dense}.`,
    model,
    notes,
  };
}

function groupArgs(r: ConfigReader): { groups: number; topk_groups: number } {
  return {
    groups: r.int('n_group', 'the expert groups of group-limited routing'),
    topk_groups: r.int('topk_group', 'the groups kept per token'),
  };
}

export function importDeepseekV2(r: ConfigReader): ImportedModel {
  return importDeepseek(r, 'DeepSeek-V2', false, (r, topK) => {
    r.oneOf('scoring_func', 'the router score function', ['softmax'], 'softmax');
    const method = r.oneOf('topk_method', 'the top-k selection', ['greedy', 'group_limited_greedy'], 'greedy');
    // V2's gate renormalizes only when top_k > 1 and norm_topk_prob.
    const renormalize = r.bool('norm_topk_prob', 'whether the top-k weights are renormalized', false) && topK > 1;
    const factor = r.number('routed_scaling_factor', 'the routing weight scale', { positive: true, default: 1 });
    // V2's gate multiplies by routed_scaling_factor only when it does not renormalize (V3 always does).
    const scale = renormalize ? 1 : factor;
    const groups = method === 'group_limited_greedy' ? groupArgs(r) : {};
    return {
      router: kindCall('router', 'softmax_topk', { renormalize, ...groups, scale }, ['renormalize']),
      summary: `softmax router, top-${topK}${method === 'group_limited_greedy' ? ' from the best groups' : ''}`,
    };
  });
}

export function importDeepseekV3(r: ConfigReader): ImportedModel {
  return importDeepseek(r, 'DeepSeek-V3', true, (r, topK) => {
    r.oneOf('scoring_func', 'the router score function', ['sigmoid'], 'sigmoid');
    r.oneOf('topk_method', 'the top-k selection', ['noaux_tc'], 'noaux_tc');
    const renormalize = r.bool('norm_topk_prob', 'whether the top-k weights are renormalized', true) && topK > 1; // as in V2
    const scale = r.number('routed_scaling_factor', 'the routing weight scale', { positive: true, default: 1 });
    return {
      router: kindCall('router', 'sigmoid_topk', { renormalize, ...groupArgs(r), scale, correction_bias: true }, ['renormalize', 'correction_bias']),
      summary: `sigmoid router with a selection bias, top-${topK} from the best groups`,
    };
  });
}
