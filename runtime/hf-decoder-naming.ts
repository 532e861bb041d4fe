// Which Hugging Face tensor holds each IR weight outside the MoE blocks: the embedding, each
// layer's norms, attention and dense MLP, the final norm and the LM head. All eight supported
// families use Llama's names for these and store each one as the IR does (nn.Linear's
// [out, in], 1-D vectors), so every such weight is one tensor as it is, in every family; what
// differs is which tensors exist, which the spec says. From transformers
// models/<family>/modeling_<family>.py (modular_<family>.py):
//   family       norms (input_layernorm, post_attention_layernorm, model.norm)   self_attn.*
//   mixtral      RMSNorm weight                  q/k/v/o_proj.weight
//   phimoe       nn.LayerNorm weight + bias      q/k/v/o_proj.weight + .bias (attention_bias); lm_head.bias
//   qwen2_moe    RMSNorm weight                  q/k/v_proj.weight + .bias, o_proj.weight
//   qwen3_moe    RMSNorm weight                  q/k/v/o_proj.weight (+ .bias: attention_bias), q_norm/k_norm.weight [head_dim]
//   olmoe        RMSNorm weight                  q/k/v/o_proj.weight (+ .bias: attention_bias), q_norm.weight
//                                                [heads*head_dim], k_norm.weight [kv_heads*head_dim]
//   deepseek_*   RMSNorm weight                  q_proj (q_lora_rank null) or q_a_proj, q_a_layernorm, q_b_proj;
//                                                kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj (.weight; the
//                                                attention_bias biases mla cannot hold are refused)
//   gpt_oss      RMSNorm weight                  q/k/v/o_proj.weight + .bias, sinks [heads]
// Every family: model.embed_tokens.weight, lm_head.weight (unless tie_word_embeddings); dense
// layers (DeepSeek's first_k_dense_replace, Qwen's mlp_only_layers): mlp.{gate,up,down}_proj.weight.
// hf-naming.ts folds this table into its recipes. Browser-safe.
import { HfWeightsError, type TensorReader } from './tensor-reader.js';

/** What an IR group of weights is called in messages, and its HF tensor (after `model.layers.L.` for a layer's groups) by IR suffix. */
interface TensorGroup {
  what: string;
  tensors: Readonly<Record<string, string>>;
  /** HF tensors no IR weight can hold, with why: a checkpoint with one is not one a spec can describe. */
  irless?: Readonly<Record<string, string>>;
  /** IR suffixes whose tensor a checkpoint may hold although the spec has no weight for it. */
  unread?: readonly string[];
}

const norm = (module: string, what: string): TensorGroup => ({ what, tensors: { weight: `${module}.weight`, bias: `${module}.bias` } });

const layerGroups: Readonly<Record<string, TensorGroup>> = {
  attn_norm: norm('input_layernorm', 'input norm'),
  mlp_norm: norm('post_attention_layernorm', 'post-attention norm'),
  attn: {
    what: 'attention',
    tensors: {
      // GQA (Llama-style; biases in PhiMoE, Qwen2-MoE, gpt-oss).
      q: 'self_attn.q_proj.weight', k: 'self_attn.k_proj.weight', v: 'self_attn.v_proj.weight', o: 'self_attn.o_proj.weight',
      q_bias: 'self_attn.q_proj.bias', k_bias: 'self_attn.k_proj.bias', v_bias: 'self_attn.v_proj.bias', o_bias: 'self_attn.o_proj.bias',
      // Qwen3-MoE: [head_dim], each head; OLMoE: [heads * head_dim] and [kv_heads * head_dim], the whole projection.
      q_norm: 'self_attn.q_norm.weight', k_norm: 'self_attn.k_norm.weight',
      // gpt-oss: one sink logit per query head, a bare parameter.
      sinks: 'self_attn.sinks',
      // DeepSeek MLA: q_proj without q_lora_rank (V2-Lite), else q_a_proj, q_a_layernorm and q_b_proj.
      q_a: 'self_attn.q_a_proj.weight', q_a_norm: 'self_attn.q_a_layernorm.weight', q_b: 'self_attn.q_b_proj.weight',
      kv_a: 'self_attn.kv_a_proj_with_mqa.weight', kv_a_norm: 'self_attn.kv_a_layernorm.weight', kv_b: 'self_attn.kv_b_proj.weight',
    },
    // DeepSeek's attention_bias puts biases on q_a_proj and kv_a_proj_with_mqa; mla has none.
    irless: { 'self_attn.q_a_proj.bias': 'mla has no projection biases', 'self_attn.kv_a_proj_with_mqa.bias': 'mla has no projection biases' },
  },
  // The dense layers' MLP: DeepSeek's first_k_dense_replace, Qwen's mlp_only_layers.
  mlp: {
    what: 'dense MLP',
    tensors: {
      gate: 'mlp.gate_proj.weight', up: 'mlp.up_proj.weight', down: 'mlp.down_proj.weight',
      gate_bias: 'mlp.gate_proj.bias', up_bias: 'mlp.up_proj.bias', down_bias: 'mlp.down_proj.bias',
    },
  },
};

const modelGroups: Readonly<Record<string, TensorGroup>> = {
  embed: { what: 'embedding', tensors: { table: 'model.embed_tokens.weight' } },
  final_norm: norm('model.norm', 'final norm'),
  // A checkpoint with tied embeddings may still store lm_head.weight (a copy of the table); it is not read.
  lm_head: { what: 'LM head', tensors: { weight: 'lm_head.weight', bias: 'lm_head.bias' }, unread: ['weight'] },
};

/** An IR weight outside the MoE blocks, split into its group and suffix; `layer` for a layer's groups. */
interface DecoderWeight {
  layer?: number;
  group: string;
  suffix: string;
}

function parseDecoderName(irName: string): DecoderWeight | undefined {
  const inLayer = /^layers\.(\d+)\.(attn_norm|attn|mlp_norm|mlp)\.(.+)$/.exec(irName);
  if (inLayer) return { layer: Number(inLayer[1]), group: inLayer[2]!, suffix: inLayer[3]! };
  const whole = /^(embed|final_norm|lm_head)\.(.+)$/.exec(irName);
  return whole ? { group: whole[1]!, suffix: whole[2]! } : undefined;
}

const groupOf = (w: DecoderWeight): TensorGroup => (w.layer === undefined ? modelGroups : layerGroups)[w.group]!;
const hfName = (w: DecoderWeight, tensor: string): string => (w.layer === undefined ? tensor : `model.layers.${w.layer}.${tensor}`);
const fileOf = (reader: TensorReader, tensor: string): string => reader.fileOf?.(tensor) ?? reader.location ?? 'checkpoint';

/** Whether `irName` names an IR weight outside the MoE blocks (one hf-decoder-naming maps). */
export const isDecoderWeight = (irName: string): boolean => parseDecoderName(irName) !== undefined;

/** The HF tensor holding IR weight `irName` (outside the MoE blocks), or undefined when no family has one. */
export function decoderTensorOf(irName: string): string | undefined {
  const w = parseDecoderName(irName);
  const tensor = w && groupOf(w).tensors[w.suffix];
  return w && tensor ? hfName(w, tensor) : undefined;
}

/**
 * Checks, before any tensor is read, that the checkpoint holds no tensor of a group the IR weights
 * load from (a layer's attention, a norm, the LM head, ...) that none of them reads, e.g. q_proj.bias
 * for a spec without qkv_bias or a LayerNorm bias for an rmsnorm spec; and, given the whole decoder
 * (embed.table among them), no decoder layer past the spec's last. Throws a one-line HfWeightsError.
 */
export function checkDecoderTensors(irNames: readonly string[], reader: TensorReader): void {
  const weights = irNames.map(parseDecoderName).filter((w) => w !== undefined);
  const wanted = new Set(irNames);
  const groups = new Map(weights.map((w) => [`${w.layer ?? ''}.${w.group}`, w]));
  for (const w of groups.values()) {
    const prefix = w.layer === undefined ? w.group : `layers.${w.layer}.${w.group}`;
    const where = w.layer === undefined ? `the ${groupOf(w).what}` : `layer ${w.layer}'s ${groupOf(w).what}`;
    for (const [suffix, tensor] of Object.entries(groupOf(w).tensors)) {
      const name = hfName(w, tensor);
      if (!wanted.has(`${prefix}.${suffix}`) && !groupOf(w).unread?.includes(suffix) && reader.has(name)) {
        throw new HfWeightsError(`${fileOf(reader, name)}: tensor "${name}" is part of ${where}, but the spec has ` +
          `no weight for it (${prefix}.${suffix}); the spec does not describe this checkpoint`);
      }
    }
    for (const [tensor, why] of Object.entries(groupOf(w).irless ?? {})) {
      const name = hfName(w, tensor);
      if (reader.has(name)) {
        throw new HfWeightsError(`${fileOf(reader, name)}: tensor "${name}" is part of ${where}, but no IR ` +
          `weight can hold it (${why}); moec cannot load this checkpoint`);
      }
    }
  }
  if (wanted.has('embed.table')) {
    const layers = weights.filter((w) => w.group === 'attn_norm').map((w) => w.layer!);
    const next = layers.length ? Math.max(...layers) + 1 : 0;
    const extra = `model.layers.${next}.${layerGroups['attn_norm']!.tensors['weight']!}`;
    // DeepSeek-V3 stores its multi-token-prediction module as layer num_hidden_layers, which
    // transformers skips too (DeepseekV3Model._keys_to_ignore_on_load_unexpected); eh_proj marks it.
    if (reader.has(extra) && !reader.has(`model.layers.${next}.eh_proj.weight`)) {
      throw new HfWeightsError(`${fileOf(reader, extra)}: tensor "${extra}" is part of layer ${next}, ` +
        `but the spec has ${next} layer(s); the spec does not describe this checkpoint (num_hidden_layers)`);
    }
  }
}
