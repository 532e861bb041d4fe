// Which blocks and fields a .moe file has, their types, defaults and documentation. The
// validator, the formatter and the editor (completion, hover) all read this one table.
import { quantTargets } from '../../ir/model-config.js';
import type { FieldSchema } from './kinds/registry.js';

export interface BlockSchema {
  name: string;
  doc: string;
  /** `model "name" { }` has a label; `moe { }` does not. */
  label: 'required' | 'none';
  fields: FieldSchema[];
  blocks: BlockSchema[];
  required?: boolean;
}

const positive = { type: 'int', min: 1 } as const;

export const moeBlock: BlockSchema = {
  name: 'moe',
  doc: 'The mixture-of-experts MLP used by MoE layers: routed experts, the router, optional shared expert, and which layers are MoE.',
  label: 'none',
  blocks: [],
  fields: [
    { name: 'experts', doc: 'Routed experts per MoE layer (num_local_experts / num_experts / n_routed_experts).', value: positive, required: true },
    { name: 'top_k', doc: 'Experts each token is routed to (num_experts_per_tok); at most `experts`.', value: positive, required: true },
    { name: 'router', doc: 'How tokens are scored and routed: a router kind.', value: { type: 'kind', category: 'router' }, required: true },
    { name: 'expert', doc: 'Each routed expert\'s MLP: an activation kind with its intermediate size.', value: { type: 'kind', category: 'activation' }, required: true },
    { name: 'shared', doc: 'An always-active shared expert MLP (Qwen2-MoE; DeepSeek merges n_shared_experts into one of n times the width).', value: { type: 'kind', category: 'activation' } },
    { name: 'shared_gate', doc: 'Scale of the shared expert output: `sigmoid` (Qwen2-MoE, sigmoid(x w_sg)) or `none`.', value: { type: 'enum', values: ['none', 'sigmoid'] }, default: 'none' },
    { name: 'first_layer', doc: 'Layers before this one are dense (DeepSeek first_k_dense_replace).', value: { type: 'int', min: 0 }, default: 0 },
    { name: 'every', doc: 'MoE on every n-th layer: layer i is MoE iff i % every == offset (Qwen2-MoE decoder_sparse_step).', value: positive, default: 1 },
    { name: 'offset', doc: 'See `every`; Qwen2-MoE uses offset = every - 1.', value: { type: 'int', min: 0 }, default: 0 },
    { name: 'dense_layers', doc: 'Layers that stay dense although the rule above makes them MoE (Qwen mlp_only_layers).', value: { type: 'int-list', min: 0 }, default: [] },
  ],
};

export const denseBlock: BlockSchema = {
  name: 'dense',
  doc: 'The MLP of layers that are not MoE layers (required when the model has any).',
  label: 'none',
  blocks: [],
  fields: [{ name: 'mlp', doc: 'The dense MLP: an activation kind with its intermediate size.', value: { type: 'kind', category: 'activation' }, required: true }],
};

export const modelBlock: BlockSchema = {
  name: 'model',
  doc: 'A decoder-only language model: embedding, `layers` transformer layers (norm, attention, norm, MLP or MoE), final norm and LM head.',
  label: 'required',
  required: true,
  blocks: [moeBlock, denseBlock],
  fields: [
    { name: 'hidden', doc: 'Model width (hidden_size).', value: positive, required: true },
    { name: 'vocab', doc: 'Vocabulary size (vocab_size).', value: positive, required: true },
    { name: 'layers', doc: 'Transformer layers (num_hidden_layers).', value: { type: 'int', min: 1, max: 4096 }, required: true },
    { name: 'norm', doc: 'The normalization used before attention, before the MLP and at the end.', value: { type: 'kind', category: 'norm' }, required: true },
    { name: 'attention', doc: 'The attention of every layer: an attention kind.', value: { type: 'kind', category: 'attention' }, required: true },
    { name: 'rope', doc: 'How rotary frequencies are scaled for long contexts (HF rope_scaling): `default`, `linear(...)`, `yarn(...)` or `longrope(...)`.', value: { type: 'kind', category: 'rope' }, default: 'default' },
    { name: 'tie_embeddings', doc: 'The LM head reuses the embedding table (tie_word_embeddings).', value: { type: 'bool' }, default: false },
    { name: 'lm_head_bias', doc: 'The LM head has a bias (PhiMoE).', value: { type: 'bool' }, default: false },
  ],
};

export const compileBlock: BlockSchema = {
  name: 'compile',
  doc: 'How to compile the model: target, compute dtype, weight quantization and token rounding.',
  label: 'none',
  blocks: [],
  fields: [
    { name: 'target', doc: 'Code generation target.', value: { type: 'enum', values: ['webgpu'] }, default: 'webgpu' },
    { name: 'dtype', doc: 'How the kernels store activations between steps: f32, or f16 (half the activation bytes; needs the adapter feature shader-f16). Sums are f32 either way.', value: { type: 'enum', values: ['f32', 'f16'] }, default: 'f32' },
    { name: 'quantize', doc: 'Storage format of a group of weights: `quantize experts = int4(group = 32)`.', value: { type: 'kind', category: 'quant' }, qualifiers: quantTargets },
    { name: 'token_rounding', doc: 'How per-expert token counts meet the GEMM tile: `exact` (padding) or `sonic(mode = nearest)`.', value: { type: 'kind', category: 'rounding' }, default: 'exact' },
    { name: 'context', doc: 'Context length: the KV cache holds this many positions, and FLOPs per token are reported at it.', value: positive, default: 4096 },
    { name: 'kv_cache', doc: 'How the KV cache stores keys and values: f32, or f16 (half the cache bytes).', value: { type: 'enum', values: ['f32', 'f16'] }, default: 'f32' },
    { name: 'plugins', doc: 'ES modules that add kinds, ops, kernels or passes (`export default definePlugin({...})`), paths relative to this spec: `plugins = ["./top-p.js"]`.', value: { type: 'string-list' }, default: [] },
  ],
};

export const topLevelBlocks: BlockSchema[] = [modelBlock, compileBlock];

export function findField(block: BlockSchema, name: string): FieldSchema | undefined {
  return block.fields.find((f) => f.name === name);
}
