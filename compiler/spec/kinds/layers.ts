// Kinds for the non-MoE parts of a layer and the expert MLPs: norms, attention, activations.
import type { KindDefinition } from './registry.js';

const intermediate = { name: 'intermediate', doc: 'Width of the MLP (per expert for routed experts).', value: { type: 'int', min: 1 }, required: true } as const;

export const normKinds: KindDefinition[] = [
  { name: 'rmsnorm', category: 'norm', doc: 'RMSNorm: x / sqrt(mean(x^2) + eps) * weight.', params: [{ name: 'eps', doc: 'Added to the mean square.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1e-6 }] },
  {
    name: 'layernorm',
    category: 'norm',
    doc: 'LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias.',
    params: [
      { name: 'eps', doc: 'Added to the variance.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1e-5 },
      { name: 'bias', doc: 'Has a learned bias.', value: { type: 'bool' }, default: true },
    ],
  },
];

export const attentionKinds: KindDefinition[] = [
  {
    name: 'gqa',
    category: 'attention',
    doc: 'Grouped-query attention with rotary embeddings: heads query heads share kv_heads key/value heads. Optional q/k RMSNorm, projection biases, sliding window on some layers and learned attention sinks (gpt-oss).',
    params: [
      { name: 'heads', doc: 'Query heads.', value: { type: 'int', min: 1 }, required: true },
      { name: 'kv_heads', doc: 'Key/value heads; must divide heads. Defaults to heads (plain multi-head attention).', value: { type: 'int', min: 1 }, default: 0 },
      { name: 'head_dim', doc: 'Width of one head. Defaults to hidden / heads.', value: { type: 'int', min: 1 }, default: 0 },
      { name: 'rope_theta', doc: 'Rotary embedding base.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 10000 },
      { name: 'qk_norm', doc: 'RMSNorm on queries and keys (Qwen3-MoE, OLMoE), with the model norm\'s eps.', value: { type: 'bool' }, default: false },
      { name: 'qk_norm_span', doc: 'What the q/k RMSNorm normalises: each head after the split (Qwen3-MoE) or the whole projection before it (OLMoE).', value: { type: 'enum', values: ['head', 'projection'] }, default: 'head' },
      { name: 'clip_qkv', doc: 'Clamp q, k and v to [-clip_qkv, clip_qkv] after the projections and norms (OLMoE); 0 = no clamp.', value: { type: 'number', min: 0 }, default: 0 },
      { name: 'qkv_bias', doc: 'The q, k and v projections have biases (Qwen2, gpt-oss, PhiMoE).', value: { type: 'bool' }, default: false },
      { name: 'o_bias', doc: 'The output projection has a bias (gpt-oss, PhiMoE).', value: { type: 'bool' }, default: false },
      { name: 'sliding_window', doc: 'Keys attended on sliding-window layers; 0 means every layer attends the full context.', value: { type: 'int', min: 0 }, default: 0 },
      { name: 'full_every', doc: 'With a sliding window, every n-th layer (layer i with (i + 1) % n == 0) attends the full context; 0 means all layers slide.', value: { type: 'int', min: 0 }, default: 0 },
      { name: 'sinks', doc: 'A learned sink logit per head joins the softmax (gpt-oss).', value: { type: 'bool' }, default: false },
    ],
    resolve(params, context) {
      const heads = params['heads'] as number;
      if (!params['kv_heads']) params['kv_heads'] = heads;
      if (!params['head_dim'] && context.hidden !== undefined) {
        if (context.hidden % heads !== 0) return [{ param: 'head_dim', message: `hidden = ${context.hidden} is not divisible by heads = ${heads}`, hint: 'give head_dim explicitly' }];
        params['head_dim'] = context.hidden / heads;
      }
      const kvHeads = params['kv_heads'] as number;
      return heads % kvHeads === 0 ? [] : [{ param: 'kv_heads', message: `heads = ${heads} is not divisible by kv_heads = ${kvHeads}`, hint: 'kv_heads must divide heads' }];
    },
  },
  {
    name: 'mla',
    category: 'attention',
    doc: 'DeepSeek multi-head latent attention: keys and values are decompressed from a kv_lora_rank latent; queries from a q_lora_rank latent (0: a full projection). Each head has a qk_nope_head_dim part and a shared-rotary qk_rope_head_dim part.',
    params: [
      { name: 'heads', doc: 'Attention heads.', value: { type: 'int', min: 1 }, required: true },
      { name: 'q_lora_rank', doc: 'Rank of the query compression; 0 means a full query projection (DeepSeek-V2-Lite).', value: { type: 'int', min: 0 }, default: 0 },
      { name: 'kv_lora_rank', doc: 'Rank of the joint key/value compression.', value: { type: 'int', min: 1 }, required: true },
      { name: 'qk_nope_head_dim', doc: 'Per-head query/key width without rotary embedding.', value: { type: 'int', min: 1 }, required: true },
      { name: 'qk_rope_head_dim', doc: 'Per-head query/key width with rotary embedding (the key part is shared by all heads).', value: { type: 'int', min: 1 }, required: true },
      { name: 'v_head_dim', doc: 'Per-head value width.', value: { type: 'int', min: 1 }, required: true },
      { name: 'rope_theta', doc: 'Rotary embedding base.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 10000 },
      { name: 'rope_interleave', doc: 'The rope part rotates interleaved pairs (2i, 2i + 1), as DeepSeek\'s checkpoints are laid out (HF rope_interleave, default true); false rotates halves.', value: { type: 'bool' }, default: true },
      { name: 'softmax_mscale', doc: 'Under YaRN, multiply the softmax scale by mscale(factor, mscale_all_dim)^2, as DeepSeek\'s code and transformers\' DeepSeek-V3 do; transformers\' DeepSeek-V2 does not (the importer follows it).', value: { type: 'bool' }, default: true },
      { name: 'latent_norm_eps', doc: 'Epsilon of the q_a and kv_a RMSNorms (HF builds them with the RMSNorm default, 1e-6, not rms_norm_eps).', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1e-6 },
    ],
  },
];

export const activationKinds: KindDefinition[] = [
  {
    name: 'swiglu',
    category: 'activation',
    doc: 'SwiGLU MLP: down(silu(gate(x)) * up(x)) (Mixtral w1/w3/w2, Qwen/DeepSeek gate_proj/up_proj/down_proj).',
    params: [intermediate, { name: 'bias', doc: 'The projections have biases.', value: { type: 'bool' }, default: false }],
  },
  {
    name: 'clamped_swiglu',
    category: 'activation',
    doc: 'gpt-oss expert MLP: gate = min(gate, limit), up = clamp(up, -limit, limit), out = down((up + 1) * gate * sigmoid(alpha * gate)), with biases.',
    params: [
      intermediate,
      { name: 'limit', doc: 'Clamp bound (swiglu_limit).', value: { type: 'number', min: 0, exclusiveMin: true }, default: 7 },
      { name: 'alpha', doc: 'Sigmoid sharpness.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1.702 },
      { name: 'bias', doc: 'The projections have biases.', value: { type: 'bool' }, default: true },
    ],
  },
];
