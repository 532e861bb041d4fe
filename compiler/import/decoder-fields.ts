// What every family's importer shares: the shape of its result, the decoder's sizes, RMSNorm,
// grouped-query attention, and notes on config features the .moe language has no words for.
import type { ParamValue } from '../../ir/model-config.js';
import { ConfigReader, type Json } from './config-reader.js';
import { field, kindCall, type SpecItem } from './spec-writer.js';

export interface ImportedModel {
  /** One line on what makes the family distinctive, printed under the header. */
  summary: string;
  /** The fields and blocks inside `model "name" { ... }`. */
  model: SpecItem[];
  /** The fields of a `compile { ... }` block, when the checkpoint says how weights are stored. */
  compile?: SpecItem[];
  /** What the config asks for that the spec cannot say; printed as comments and to stderr. */
  notes: string[];
}

export type FamilyImporter = (r: ConfigReader) => ImportedModel;

export interface DecoderSizes {
  hidden: number;
  vocab: number;
  layers: number;
}

export function readSizes(r: ConfigReader): DecoderSizes {
  return {
    hidden: r.int('hidden_size', 'the model width (hidden)'),
    vocab: r.int('vocab_size', 'the vocabulary size (vocab)'),
    layers: r.int('num_hidden_layers', 'the number of layers (layers)'),
  };
}

export interface AttentionHead {
  /** The attention kind call. */
  attention: string;
  /** The width rope turns: head_dim, or MLA's qk_rope_head_dim. */
  rotaryDim: number;
}

/** hidden, vocab, layers, norm, attention, rope and the embedding flags, in the order examples use; rope_scaling's notes go to `notes`. */
export function modelHead(r: ConfigReader, sizes: DecoderSizes, norm: string, head: AttentionHead, notes: string[], lmHeadBias = false): SpecItem[] {
  const items = [field('hidden', String(sizes.hidden)), field('vocab', String(sizes.vocab)), field('layers', String(sizes.layers)), field('norm', norm), field('attention', head.attention), ...ropeField(r, head.rotaryDim, notes)];
  // Every family imported here defaults to an untied LM head in transformers.
  if (r.bool('tie_word_embeddings', 'whether the LM head reuses the embedding table', false)) items.push(field('tie_embeddings', 'true'));
  if (lmHeadBias) items.push(field('lm_head_bias', 'true'));
  return items;
}

export function rmsnorm(r: ConfigReader, fallbackEps?: number): string {
  return kindCall('norm', 'rmsnorm', { eps: r.number('rms_norm_eps', 'the RMSNorm epsilon (norm)', fallbackEps === undefined ? { positive: true } : { positive: true, default: fallbackEps }) }, ['eps']);
}

/** heads, kv_heads, head_dim (from the config, else hidden / heads) and rope_theta of a GQA layer. */
export function gqaParams(r: ConfigReader, hidden: number): Record<string, ParamValue> {
  const heads = r.int('num_attention_heads', 'the number of attention heads');
  const kvHeads = r.int('num_key_value_heads', 'the number of key/value heads', { default: heads });
  const headDim = r.has('head_dim') || hidden % heads !== 0
    ? r.int('head_dim', 'the attention head width (hidden_size is not a multiple of num_attention_heads)')
    : hidden / heads;
  return { heads, kv_heads: kvHeads, head_dim: headDim, rope_theta: r.number('rope_theta', 'the rotary embedding base', { positive: true, default: 10000 }) };
}

export const gqaShown = ['heads', 'kv_heads', 'head_dim', 'rope_theta'] as const;

/**
 * `rope = ...` from rope_scaling (transformers/modeling_rope_utils.py), or nothing for plain RoPE.
 * `rotaryDim` is the width rope turns (a head, or MLA's rope part), for longrope's factor count.
 */
export function ropeField(r: ConfigReader, rotaryDim: number, notes: string[]): SpecItem[] {
  if (!r.has('rope_scaling')) return [];
  const rs = new ConfigReader(`${r.file} (rope_scaling)`, r.raw('rope_scaling') as Record<string, Json>);
  const type = rs.has('rope_type') ? rs.string('rope_type', 'the rope scaling type') : rs.string('type', 'the rope scaling type (rope_type)');
  switch (type) {
    case 'default': return [];
    case 'linear': return [field('rope', kindCall('rope', 'linear', { factor: rs.number('factor', 'the linear rope factor', { positive: true }) }, ['factor']))];
    case 'yarn': return [field('rope', yarn(r, rs, notes))];
    case 'longrope': return [field('rope', longrope(r, rs, rotaryDim))];
    default:
      throw r.unsupported('rope_scaling', `has rope_type ${JSON.stringify(type)}, which moec does not support (supported: "default", "linear", "yarn", "longrope")`);
  }
}

function yarn(r: ConfigReader, rs: ConfigReader, notes: string[]): string {
  const factor = rs.number('factor', 'the YaRN factor', { positive: true });
  const maxPositions = r.int('max_position_embeddings', 'the context length YaRN extends to', { default: 0, min: 0 });
  const original = rs.int('original_max_position_embeddings', 'the pretraining context of YaRN', maxPositions > 0 ? { default: maxPositions } : {});
  if (rs.has('original_max_position_embeddings') && maxPositions > 0 && maxPositions / original !== factor) {
    notes.push(`rope_scaling.factor = ${factor}, but max_position_embeddings / original_max_position_embeddings = ${maxPositions / original}: transformers 4.x builds YaRN from the ratio, 5.x from factor; the spec uses factor`);
  }
  // HF reads beta_fast/beta_slow with `or`, so a 0 or null means the default too.
  const positiveOr = (name: string, fallback: number) => (rs.has(name) && rs.number(name, `YaRN's ${name}`) !== 0 ? rs.number(name, `YaRN's ${name}`, { positive: true }) : fallback);
  return kindCall('rope', 'yarn', {
    factor,
    original_context: original,
    beta_fast: positiveOr('beta_fast', 32),
    beta_slow: positiveOr('beta_slow', 1),
    mscale: rs.number('mscale', 'DeepSeek\'s YaRN mscale', { default: 0 }),
    mscale_all_dim: rs.number('mscale_all_dim', 'DeepSeek\'s YaRN mscale_all_dim', { default: 0 }),
    attention_factor: rs.number('attention_factor', 'the YaRN attention factor', { default: 0 }),
    truncate: rs.bool('truncate', 'whether YaRN rounds its correction range', true),
  }, ['factor', 'original_context']);
}

function longrope(r: ConfigReader, rs: ConfigReader, rotaryDim: number): string {
  const short = rs.numberList('short_factor', 'LongRoPE\'s per-pair factors up to the original context');
  const long = rs.numberList('long_factor', 'LongRoPE\'s per-pair factors beyond the original context');
  for (const [name, list] of [['short_factor', short], ['long_factor', long]] as const) {
    if (list.length !== rotaryDim / 2) throw rs.unsupported(name, `has ${list.length} numbers, but the rotary dim ${rotaryDim} has ${rotaryDim / 2} pairs`);
  }
  const maxPositions = r.int('max_position_embeddings', 'the context length LongRoPE extends to');
  const topLevel = r.int('original_max_position_embeddings', 'the pretraining context of LongRoPE', { default: 0, min: 0 });
  const original = rs.int('original_max_position_embeddings', 'the pretraining context of LongRoPE', topLevel > 0 ? { default: topLevel } : {});
  // Phi-3's default magnitude when rope_scaling names none (modeling_rope_utils._compute_longrope_parameters).
  const ratio = maxPositions / original;
  const computed = rs.number('attention_factor', 'the LongRoPE attention factor', { default: ratio <= 1 ? 1 : Math.sqrt(1 + Math.log(ratio) / Math.log(original)) });
  return kindCall('rope', 'longrope', {
    short_factor: short,
    long_factor: long,
    original_context: original,
    short_mscale: rs.number('short_mscale', 'LongRoPE\'s cos/sin magnitude up to the original context', { positive: true, default: computed }),
    long_mscale: rs.number('long_mscale', 'LongRoPE\'s cos/sin magnitude beyond the original context', { positive: true, default: computed }),
  }, ['original_context', 'short_mscale', 'long_mscale']);
}
