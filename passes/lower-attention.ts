// Lowers each `attention` op to kernel-level ops: the projections as GEMMs (prefill) or GEMVs
// (decode), the q/k norms, clamp, rope and cache writes in one prepare op, MLA's absorption of
// kv_b into the queries and the output, and the attention over the cache: tiled with an online
// softmax on prefill, flash-decoding (context chunks, then a merge) on decode. Adds the rope
// table param (role `rope`) the runtime fills at load.
import type { AttrValue, Graph, Module, Op, Value } from '../ir/graph.js';
import { mlaSoftmaxScale } from '../ir/interpret/mla.js';
import { numParam, type KindRef, type ModelConfig } from '../ir/model-config.js';
import { inputsByName } from '../ir/ops.js';
import { tileAttr } from '../ir/ops-lowered.js';
import { GraphRewriter } from '../ir/rewriter.js';
import { attentionTileAttr, type TargetDescription } from '../ir/target.js';
import { ropeSwitch, ropeTableVariants, type RopeSpec } from '../runtime/rope-table.js';
import { pathOf, type Pass } from './pass.js';

export const lowerAttention: Pass = {
  name: 'lower-attention',
  description: 'attention -> projections (GEMM/GEMV), prepare (norms, rope, cache write), MLA absorb/unabsorb, attend (prefill) or decode partials + merge.',
  run(module, { config, target }) {
    if (!module.functions.some((f) => f.ops.some((op) => op.opcode === 'attention'))) return module;
    const table = ropeTableParam(module, config);
    return { ...module, functions: module.functions.map((f) => lowerFunction(f, table, config, target)) };
  },
};

/** The rotary spec of the model: its rope kind, the attention's base and rotary width. */
export function ropeSpecOf(config: ModelConfig): RopeSpec {
  const a = config.attention;
  const dim = a.kind === 'mla' ? numParam(a, 'qk_rope_head_dim') : numParam(a, 'head_dim');
  return { kind: config.rope.kind, params: config.rope.params, theta: numParam(a, 'rope_theta'), dim };
}

/** One table for every function and layer, with an id above every value of the module. */
function ropeTableParam(module: Module, config: ModelConfig): Value {
  const ids = module.functions.flatMap((f) => [...f.inputs, ...f.params, ...(f.state ?? []), ...f.ops.flatMap((o) => o.outputs)].map((v) => v.id));
  const spec = ropeSpecOf(config);
  return { id: Math.max(...ids) + 1, name: 'rope.table', type: { shape: [ropeTableVariants(spec), config.compile.context, spec.dim], dtype: 'f32' }, role: 'rope' };
}

function lowerFunction(f: Graph, table: Value, config: ModelConfig, target: TargetDescription): Graph {
  if (!f.ops.some((op) => op.opcode === 'attention')) return f;
  // The table joins the params first, so the rewriter's new values get ids above it.
  const r = new GraphRewriter({ ...f, params: [...f.params, table] });
  const decode = pathOf(f) === 'decode';
  const matrix = (x: Value, weight: Value, bias: Value | undefined, name: string, reuse?: Value): Value => {
    const shape: Record<string, AttrValue> = decode ? { rows: target.gemvRows } : { tile: tileAttr(target.gemmTile) };
    return r.emit1(decode ? 'gemv' : 'gemm', [x, weight, ...(bias ? [bias] : [])], { epilogue: 'none', bias: !!bias, ...shape }, name, reuse);
  };
  const lowering = { r, decode, matrix, table, config, target };
  for (const op of f.ops) {
    if (op.opcode !== 'attention') r.keep(op);
    else if ((op.attrs['attention'] as KindRef).kind === 'mla') lowerMla(op, lowering);
    else lowerGqa(op, lowering);
  }
  return r.finish();
}

interface Lowering {
  r: GraphRewriter;
  decode: boolean;
  matrix(x: Value, weight: Value, bias: Value | undefined, name: string, reuse?: Value): Value;
  table: Value;
  config: ModelConfig;
  target: TargetDescription;
}

function lowerGqa(op: Op, l: Lowering): void {
  const i = inputsByName(op);
  const a = op.attrs['attention'] as KindRef;
  const p = op.outputs[0]!.name.replace(/\.y$/, '');
  const [heads, kvHeads, d] = [numParam(a, 'heads'), numParam(a, 'kv_heads'), numParam(a, 'head_dim')];
  // `<layer>.attn.q_proj`, not `.q`: that names the weight param, and plan buffers are named after values.
  const [q, k, v] = (['q', 'k', 'v'] as const).map((n) => l.matrix(i['x']!, i[n]!, i[`${n}_bias`], `${p}.${n}_proj`));
  const qkNorm = a.params['qk_norm'] === true ? String(a.params['qk_norm_span']) : 'none';
  const norms = qkNorm === 'none' ? [] : [i['q_norm']!, i['k_norm']!];
  const prepareAttrs = { heads, kv_heads: kvHeads, head_dim: d, qk_norm: qkNorm, eps: numParam(op.attrs['norm'] as KindRef, 'eps'), clip: numParam(a, 'clip_qkv'), rope_switch: ropeSwitch(ropeSpecOf(l.config)) };
  const [qRoped, cacheK, cacheV] = l.r.emit('attention.prepare', [q!, k!, v!, i['positions']!, i['cache_k']!, i['cache_v']!, l.table, ...norms], prepareAttrs, [`${p}.q_roped`, op.outputs[1]!.name, op.outputs[2]!.name], [undefined, op.outputs[1], op.outputs[2]]);
  const attendAttrs = { heads, kv_heads: kvHeads, key_dim: d, value_dim: d, scale: 1 / Math.sqrt(d), window: op.attrs['window'] as number, sinks: !!i['sinks'] };
  // Attention reads the caches as prepare left them (its in-place outputs), the new rows included.
  const attended = attend([qRoped!, i['positions']!, cacheK!, cacheV!, ...(i['sinks'] ? [i['sinks']] : [])], attendAttrs, `${p}.attended`, l);
  l.matrix(attended, i['o']!, i['o_bias'], op.outputs[0]!.name, op.outputs[0]);
}

function lowerMla(op: Op, l: Lowering): void {
  const i = inputsByName(op);
  const a = op.attrs['attention'] as KindRef;
  const p = op.outputs[0]!.name.replace(/\.y$/, '');
  const [heads, nope, rope, rank, v] = ['heads', 'qk_nope_head_dim', 'qk_rope_head_dim', 'kv_lora_rank', 'v_head_dim'].map((n) => numParam(a, n)) as [number, number, number, number, number];
  const eps = numParam(a, 'latent_norm_eps');
  let q: Value;
  if (numParam(a, 'q_lora_rank') > 0) {
    const latent = l.matrix(i['x']!, i['q_a']!, undefined, `${p}.q_latent`);
    const normed = l.r.emit1('norm', [latent, i['q_a_norm']!], { norm: { kind: 'rmsnorm', params: { eps } } }, `${p}.q_latent_norm`);
    q = l.matrix(normed, i['q_b']!, undefined, `${p}.q_proj`);
  } else {
    q = l.matrix(i['x']!, i['q']!, undefined, `${p}.q_proj`);
  }
  const kv = l.matrix(i['x']!, i['kv_a']!, undefined, `${p}.kv_proj`);
  const shape = { heads, nope, rope, kv_rank: rank };
  const prepareAttrs = { ...shape, eps, rope_switch: ropeSwitch(ropeSpecOf(l.config)), interleaved: a.params['rope_interleave'] !== false };
  const [qRoped, cache] = l.r.emit('mla.prepare', [q, kv, i['positions']!, i['cache_k']!, l.table, i['kv_a_norm']!], prepareAttrs, [`${p}.q_roped`, op.outputs[1]!.name], [undefined, op.outputs[1]]);
  const absorbed = l.r.emit1('mla.absorb_q', [qRoped!, i['kv_b']!], { ...shape, value_dim: v }, `${p}.q_absorbed`);
  const attendAttrs = { heads, kv_heads: 1, key_dim: rank + rope, value_dim: rank, scale: mlaSoftmaxScale(a, l.config.rope), window: op.attrs['window'] as number, sinks: false, values_in_keys: true };
  const attended = attend([absorbed, i['positions']!, cache!], attendAttrs, `${p}.attended_latent`, l);
  const perHead = l.r.emit1('mla.unabsorb', [attended, i['kv_b']!], { ...shape, value_dim: v }, `${p}.attended`);
  l.matrix(perHead, i['o']!, undefined, op.outputs[0]!.name, op.outputs[0]);
}

/** Prefill: one tiled attend. Decode: partials over context chunks, then the merge. */
function attend(inputs: Value[], attrs: Record<string, AttrValue>, name: string, l: Lowering): Value {
  const tiles = l.target.attentionTiles;
  if (!l.decode) return l.r.emit1('attention.attend', inputs, { ...attrs, tile: attentionTileAttr(tiles.prefill) }, name);
  const chunkKeys = l.target.decodeChunkKeys;
  const context = inputs[2]!.type.shape[0] as number;
  const sinks = attrs['sinks'] === true ? [inputs.at(-1)!] : [];
  const partialInputs = attrs['sinks'] === true ? inputs.slice(0, -1) : inputs;
  const [stats, acc] = l.r.emit('attention.decode_partials', partialInputs, { ...attrs, chunk_keys: chunkKeys, tile: attentionTileAttr(tiles.decode) }, [`${name}.partial_stats`, `${name}.partial_acc`]);
  const mergeAttrs = { heads: attrs['heads']!, value_dim: attrs['value_dim']!, chunks: Math.ceil(context / chunkKeys), sinks: attrs['sinks']! };
  return l.r.emit1('attention.decode_merge', [stats!, acc!, inputs[1]!, ...sinks], mergeAttrs, name);
}
