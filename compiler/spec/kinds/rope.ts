// Rotary embedding kinds: how the per-pair frequencies and the cos/sin magnitude are computed.
// Named and parameterised as Hugging Face's rope_scaling types (transformers/modeling_rope_utils.py),
// so `moec import` maps rope_scaling one to one.
import type { KindDefinition } from './registry.js';

const originalContext = { name: 'original_context', doc: 'The pretraining context (rope_scaling.original_max_position_embeddings).', value: { type: 'int', min: 1 }, required: true } as const;

export const ropeKinds: KindDefinition[] = [
  { name: 'default', category: 'rope', doc: 'Plain RoPE: pair i turns at rope_theta^(-2i / d) per position.', params: [] },
  {
    name: 'linear',
    category: 'rope',
    doc: 'Position interpolation: every frequency divided by factor.',
    params: [{ name: 'factor', doc: 'Context extension factor.', value: { type: 'number', min: 0, exclusiveMin: true }, required: true }],
  },
  {
    name: 'yarn',
    category: 'rope',
    doc: 'YaRN (DeepSeek-V2/V3, gpt-oss): low frequencies interpolated by factor, high ones kept, a linear ramp between the beta_fast and beta_slow correction dims; cos and sin scaled by the attention factor.',
    params: [
      { name: 'factor', doc: 'Context extension factor (rope_scaling.factor).', value: { type: 'number', min: 0, exclusiveMin: true }, required: true },
      originalContext,
      { name: 'beta_fast', doc: 'Rotations at which the ramp starts (high-frequency end).', value: { type: 'number', min: 0, exclusiveMin: true }, default: 32 },
      { name: 'beta_slow', doc: 'Rotations at which the ramp ends (low-frequency end).', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1 },
      { name: 'mscale', doc: 'DeepSeek: the attention factor is mscale(factor, mscale) / mscale(factor, mscale_all_dim); 0 = unset.', value: { type: 'number', min: 0 }, default: 0 },
      { name: 'mscale_all_dim', doc: 'DeepSeek: with MLA, the softmax scale is multiplied by mscale(factor, mscale_all_dim)^2; 0 = unset.', value: { type: 'number', min: 0 }, default: 0 },
      { name: 'attention_factor', doc: 'cos/sin magnitude; 0 = computed (0.1 ln(factor) + 1, or the DeepSeek mscale ratio).', value: { type: 'number', min: 0 }, default: 0 },
      { name: 'truncate', doc: 'Round the correction range to whole dims (false in gpt-oss).', value: { type: 'bool' }, default: true },
    ],
  },
  {
    name: 'longrope',
    category: 'rope',
    doc: 'LongRoPE (PhiMoE): a rescale factor per pair, short_factor while the sequence fits original_context and long_factor beyond, and a cos/sin magnitude for each.',
    params: [
      { name: 'short_factor', doc: 'Per-pair divisors up to original_context (rotary dim / 2 numbers).', value: { type: 'number-list', min: 0, exclusiveMin: true }, required: true },
      { name: 'long_factor', doc: 'Per-pair divisors beyond original_context.', value: { type: 'number-list', min: 0, exclusiveMin: true }, required: true },
      originalContext,
      { name: 'short_mscale', doc: 'cos/sin magnitude up to original_context.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1 },
      { name: 'long_mscale', doc: 'cos/sin magnitude beyond original_context.', value: { type: 'number', min: 0, exclusiveMin: true }, default: 1 },
    ],
    resolve(params) {
      const short = params['short_factor'] as number[];
      const long = params['long_factor'] as number[];
      return short.length === long.length ? [] : [{ param: 'long_factor', message: `long_factor has ${long.length} numbers, short_factor ${short.length}`, hint: 'both hold one number per rotary pair' }];
    },
  },
];
