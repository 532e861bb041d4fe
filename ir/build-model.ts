// ModelConfig -> IR. A whole decoder (embedding, layers, head) or one layer's MoE block, which
// is what `moec run --layer n` executes and what the GPU backend compiles.
import type { Graph, Value } from './graph.js';
import { GraphBuilder } from './graph-builder.js';
import { attentionWindow, isMoeLayer, moeLayerIndices, numParam, type KindRef, type ModelConfig } from './model-config.js';
import { attentionCacheWidths, attentionWeightNames, mlpWeightNames } from './ops.js';
import { TOKENS, type TensorType } from './types.js';
import type { WeightRole } from './graph.js';

const hiddenStates = (config: ModelConfig): TensorType => ({ shape: [TOKENS, config.hidden], dtype: 'f32' });

/**
 * The decoder for one call: T new tokens at `positions` (consecutive, after those already in the
 * KV caches), logits for each. Each layer's cache is a state tensor of compile.context rows.
 */
export function buildModelGraph(config: ModelConfig): Graph {
  const b = new GraphBuilder(config.name);
  const ids = b.input('token_ids', { shape: [TOKENS], dtype: 'i32' });
  const positions = b.input('positions', { shape: [TOKENS], dtype: 'i32' });
  const table = b.param('embed.table', [config.vocab, config.hidden], 'embedding');
  let h = b.op1('embed', [ids, table], {}, 'embed');
  for (let layer = 0; layer < config.layers; layer++) {
    const p = `layers.${layer}`;
    const attnIn = emitNorm(b, config, h, `${p}.attn_norm`);
    const caches = attentionCacheWidths(config.attention).map((width, i) => b.state(`${p}.kv_cache_${'kv'[i]}`, { shape: [config.compile.context, width], dtype: config.compile.kvCache }));
    const attrs = { attention: config.attention, rope: config.rope, norm: config.norm, layer, window: attentionWindow(config.attention, layer) };
    const attn = b.op1('attention', [attnIn, positions, ...caches, ...attentionWeights(b, config, p)], attrs, `${p}.attn`);
    h = b.op1('add', [h, attn], {}, `${p}.attn_residual`);
    const mlpIn = emitNorm(b, config, h, `${p}.mlp_norm`);
    const mlp = isMoeLayer(config, layer) ? emitMoeBlock(b, config, layer, mlpIn) : emitMlp(b, config.dense!.mlp, mlpIn, `${p}.mlp`, 'dense');
    h = b.op1('add', [h, mlp], {}, `${p}.mlp_residual`);
  }
  const final = emitNorm(b, config, h, 'final_norm');
  const headWeight = config.tieEmbeddings ? table : b.param('lm_head.weight', [config.vocab, config.hidden], 'lm_head');
  const headBias = config.lmHeadBias ? [b.param('lm_head.bias', [config.vocab], 'lm_head')] : [];
  const logits = b.op1('linear', [final, headWeight, ...headBias], { bias: config.lmHeadBias }, 'logits');
  return b.finish([logits]);
}

/** Layer `layer`'s MoE block alone: post-norm hidden states in, the block's output out. */
export function buildMoeBlockGraph(config: ModelConfig, layer: number): Graph {
  if (!isMoeLayer(config, layer)) {
    const layers = moeLayerIndices(config);
    throw new Error(`layer ${layer} of ${config.name} is not an MoE layer (MoE layers: ${layers.length ? layers.join(', ') : 'none'})`);
  }
  const b = new GraphBuilder(`${config.name}.moe_block_${layer}`);
  const x = b.input('hidden_states', hiddenStates(config));
  return b.finish([emitMoeBlock(b, config, layer, x)]);
}

function emitNorm(b: GraphBuilder, config: ModelConfig, x: Value, prefix: string): Value {
  const weights = [b.param(`${prefix}.weight`, [config.hidden], 'norm')];
  if (config.norm.kind === 'layernorm' && config.norm.params['bias'] === true) weights.push(b.param(`${prefix}.bias`, [config.hidden], 'norm'));
  return b.op1('norm', [x, ...weights], { norm: config.norm }, prefix);
}

function emitMoeBlock(b: GraphBuilder, config: ModelConfig, layer: number, x: Value): Value {
  const moe = config.moe!;
  const p = `layers.${layer}.moe`;
  const routerWeights = [b.param(`${p}.router.weight`, [moe.experts, config.hidden], 'router')];
  if (moe.router.params['bias'] === true) routerWeights.push(b.param(`${p}.router.bias`, [moe.experts], 'router'));
  if (moe.router.params['correction_bias'] === true) routerWeights.push(b.param(`${p}.router.correction_bias`, [moe.experts], 'router'));
  const attrs = { router: moe.router, experts: moe.experts, top_k: moe.topK };
  const [ids, weights] = b.op('moe.route', [x, ...routerWeights], attrs, p);
  const expertWeights = mlpWeights(b, moe.expert, config.hidden, `${p}.experts`, 'expert', moe.experts);
  let y = b.op1('moe.experts', [x, ids!, weights!, ...expertWeights], { activation: moe.expert, experts: moe.experts, top_k: moe.topK }, `${p}.experts`);
  if (moe.shared) {
    let shared = emitMlp(b, moe.shared, x, `${p}.shared`, 'shared');
    if (moe.sharedGate === 'sigmoid') {
      const gate = b.param(`${p}.shared_gate.weight`, [1, config.hidden], 'shared');
      shared = b.op1('sigmoid_gate', [shared, x, gate], {}, `${p}.shared_gated`);
    }
    y = b.op1('add', [y, shared], {}, `${p}.out`);
  }
  return y;
}

function emitMlp(b: GraphBuilder, act: KindRef, x: Value, prefix: string, role: WeightRole): Value {
  return b.op1('mlp', [x, ...mlpWeights(b, act, x.type.shape[1] as number, prefix, role)], { activation: act }, prefix);
}

/** gate [I, H], up [I, H], down [H, I] and their biases; with `experts`, a leading [E] dim. */
function mlpWeights(b: GraphBuilder, act: KindRef, hidden: number, prefix: string, role: WeightRole, experts?: number): Value[] {
  const i = numParam(act, 'intermediate');
  const e = experts === undefined ? [] : [experts];
  const shapes: Record<string, number[]> = { gate: [i, hidden], up: [i, hidden], down: [hidden, i], gate_bias: [i], up_bias: [i], down_bias: [hidden] };
  return mlpWeightNames(act).map((n) => b.param(`${prefix}.${n}`, [...e, ...shapes[n]!], role));
}

function attentionWeights(b: GraphBuilder, config: ModelConfig, prefix: string): Value[] {
  const shapes = attentionWeightShapes(config);
  return attentionWeightNames(config.attention).map((n) => b.param(`${prefix}.attn.${n}`, shapes[n]!, n.endsWith('norm') ? 'norm' : 'attention'));
}

function attentionWeightShapes(config: ModelConfig): Record<string, number[]> {
  const a = config.attention;
  const h = config.hidden;
  const heads = numParam(a, 'heads');
  if (a.kind === 'mla') {
    const qr = numParam(a, 'q_lora_rank');
    const kvr = numParam(a, 'kv_lora_rank');
    const nope = numParam(a, 'qk_nope_head_dim');
    const rope = numParam(a, 'qk_rope_head_dim');
    const v = numParam(a, 'v_head_dim');
    return {
      q: [heads * (nope + rope), h], q_a: [qr, h], q_a_norm: [qr], q_b: [heads * (nope + rope), qr],
      kv_a: [kvr + rope, h], kv_a_norm: [kvr], kv_b: [heads * (nope + v), kvr], o: [h, heads * v],
    };
  }
  const d = numParam(a, 'head_dim');
  const kv = numParam(a, 'kv_heads');
  const wholeProjection = a.params['qk_norm_span'] === 'projection';
  return {
    q: [heads * d, h], k: [kv * d, h], v: [kv * d, h], o: [h, heads * d],
    q_bias: [heads * d], k_bias: [kv * d], v_bias: [kv * d], o_bias: [h],
    q_norm: [wholeProjection ? heads * d : d], k_norm: [wholeProjection ? kv * d : d], sinks: [heads],
  };
}
