// What every family's importer shares: the shape of its result, the decoder's sizes, RMSNorm,
// grouped-query attention, and notes on config features the .moe language has no words for.
import type { ParamValue } from '../../ir/model-config.js';
import type { ConfigReader } from './config-reader.js';
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

/** hidden, vocab, layers, norm, attention and the embedding flags, in the order examples use. */
export function modelHead(r: ConfigReader, sizes: DecoderSizes, norm: string, attention: string, lmHeadBias = false): SpecItem[] {
  const items = [field('hidden', String(sizes.hidden)), field('vocab', String(sizes.vocab)), field('layers', String(sizes.layers)), field('norm', norm), field('attention', attention)];
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

/** Notes for the RoPE variants the language cannot describe (it has plain RoPE with a base). */
export function ropeNotes(r: ConfigReader): string[] {
  if (!r.has('rope_scaling')) return [];
  const scaling = r.raw('rope_scaling') as Record<string, unknown>;
  const type = scaling['rope_type'] ?? scaling['type'] ?? 'unknown';
  const factor = scaling['factor'] === undefined ? '' : `, factor ${String(scaling['factor'])}`;
  return [`rope_scaling (${String(type)}${factor}) is not expressible: the spec describes plain RoPE with rope_theta`];
}
