// Every opcode of the IR: its inputs (some present only for some attrs), its outputs, and
// shape/dtype inference. The builder and the verifier both infer through this table.
import { activation, expectActivation, expectExtras, expectShape, IRTypeError, kindAttr, numAttr, type Attrs, type Inputs, type OpDefinition } from './op-checks.js';
import { boolParam, numParam, type KindRef } from './model-config.js';
import { attentionOpDefinitions } from './ops-attention.js';
import { loweredOpDefinitions } from './ops-lowered.js';
import { traceOpDefinitions } from './ops-trace.js';
import { TOKENS, type TensorType } from './types.js';
import type { Value } from './graph.js';

export { IRTypeError, type OpDefinition };

/** Names of an activation kind's weights: gate/up/down plus biases when it has them. */
export function mlpWeightNames(act: KindRef): string[] {
  return ['gate', 'up', 'down', ...(boolParam(act, 'bias') ? ['gate_bias', 'up_bias', 'down_bias'] : [])];
}

/** Names of an attention kind's weights, in the order the builder creates them. */
export function attentionWeightNames(attn: KindRef): string[] {
  if (attn.kind === 'mla') {
    const q = numParam(attn, 'q_lora_rank') > 0 ? ['q_a', 'q_a_norm', 'q_b'] : ['q'];
    return [...q, 'kv_a', 'kv_a_norm', 'kv_b', 'o'];
  }
  return [
    'q', 'k', 'v', 'o',
    ...(boolParam(attn, 'qkv_bias') ? ['q_bias', 'k_bias', 'v_bias'] : []),
    ...(boolParam(attn, 'o_bias') ? ['o_bias'] : []),
    ...(boolParam(attn, 'qk_norm') ? ['q_norm', 'k_norm'] : []),
    ...(boolParam(attn, 'sinks') ? ['sinks'] : []),
  ];
}

/**
 * The KV cache of one attention layer, per position: GQA keeps keys and values (kv_heads x
 * head_dim each); MLA keeps one row of the normed latent then the roped shared key (DeepSeek's
 * and vLLM's compressed cache), and no separate values.
 */
export function attentionCacheWidths(attn: KindRef): number[] {
  if (attn.kind === 'mla') return [numParam(attn, 'kv_lora_rank') + numParam(attn, 'qk_rope_head_dim')];
  const width = numParam(attn, 'kv_heads') * numParam(attn, 'head_dim');
  return [width, width];
}

const cacheNames = ['cache_k', 'cache_v'];

/** The model-level ops the builder emits. */
const modelOpDefinitions: Record<string, OpDefinition> = {
  embed: {
    doc: 'Rows of the embedding table for each token id.',
    inputNames: () => ['ids', 'table'],
    outputNames: ['y'],
    infer: ({ ids, table }, a) => {
      expectShape('ids', ids!, [TOKENS]);
      return [activation(table!.shape[1]!, a['dtype'] === 'f16' ? 'f16' : 'f32')];
    },
  },
  norm: {
    doc: 'RMSNorm or LayerNorm over the last dimension.',
    inputNames: (a) => ['x', 'weight', ...(kindAttr(a, 'norm').kind === 'layernorm' && boolParam(kindAttr(a, 'norm'), 'bias') ? ['bias'] : [])],
    outputNames: ['y'],
    infer: ({ x, weight }) => {
      const h = expectActivation('x', x!);
      expectShape('weight', weight!, [h]);
      return [x!];
    },
  },
  attention: {
    doc: 'One causal self-attention layer (GQA or MLA) with its projections, q/k norms and rope: writes the tokens\' keys and values into the layer\'s KV cache at their positions, then attends over the cache (window attr: keys a query sees, 0 = all).',
    inputNames: (a) => {
      const attn = kindAttr(a, 'attention');
      return ['x', 'positions', ...cacheNames.slice(0, attentionCacheWidths(attn).length), ...attentionWeightNames(attn)];
    },
    outputNames: ['y', ...cacheNames],
    inPlace: { 1: 'cache_k', 2: 'cache_v' },
    infer: (inputs, a) => {
      const x = inputs['x']!;
      expectActivation('x', x);
      expectShape('positions', inputs['positions']!, [TOKENS]);
      if (inputs['positions']!.dtype !== 'i32') throw new IRTypeError('positions must be i32');
      const widths = attentionCacheWidths(kindAttr(a, 'attention'));
      const caches = widths.map((width, i) => {
        const cache = inputs[cacheNames[i]!]!;
        if (cache.shape.length !== 2 || typeof cache.shape[0] !== 'number' || cache.shape[1] !== width) {
          throw new IRTypeError(`${cacheNames[i]} must be [context, ${width}], got [${cache.shape.join(', ')}]`);
        }
        return cache;
      });
      return [x, ...caches];
    },
  },
  add: {
    doc: 'Elementwise sum (residual connections, shared + routed experts).',
    inputNames: () => ['a', 'b'],
    outputNames: ['y'],
    infer: ({ a, b }) => {
      expectShape('b', b!, a!.shape);
      return [a!];
    },
  },
  linear: {
    doc: 'y = x W^T (+ b).',
    inputNames: (a) => ['x', 'weight', ...(a['bias'] === true ? ['bias'] : [])],
    outputNames: ['y'],
    infer: ({ x, weight }) => {
      const n = expectActivation('x', x!);
      if (weight!.shape[1] !== n) throw new IRTypeError(`weight has ${weight!.shape[1]} inputs, x has ${n}`);
      return [activation(weight!.shape[0]!, x!.dtype)];
    },
  },
  mlp: {
    doc: 'A dense gated MLP: down(act(gate x, up x)).',
    inputNames: (a) => ['x', ...mlpWeightNames(kindAttr(a, 'activation'))],
    outputNames: ['y'],
    infer: ({ x, gate, up, down }, a) => {
      const h = expectActivation('x', x!);
      const i = numParam(kindAttr(a, 'activation'), 'intermediate');
      expectShape('gate', gate!, [i, h]);
      expectShape('up', up!, [i, h]);
      expectShape('down', down!, [h, i]);
      return [x!];
    },
  },
  'moe.route': {
    doc: 'Router: scores every expert for every token and picks top_k, returning expert ids (-1 for an unused slot) and routing weights; with probs, also each expert\'s raw probability (token rounding ranks unrouted tokens by it).',
    inputNames: (a) => {
      const r = kindAttr(a, 'router');
      return ['x', 'weight', ...(r.params['bias'] === true ? ['bias'] : []), ...(r.params['correction_bias'] === true ? ['correction_bias'] : [])];
    },
    outputNames: ['route_ids', 'routing_weights', 'route_probs'],
    infer: ({ x, weight, bias, correction_bias }, a) => {
      const h = expectActivation('x', x!);
      const e = numAttr(a, 'experts');
      const k = numAttr(a, 'top_k');
      expectShape('weight', weight!, [e, h]);
      if (bias) expectShape('bias', bias, [e]);
      if (correction_bias) expectShape('correction_bias', correction_bias, [e]);
      const order = a['expert_order'];
      if (order !== undefined && !(Array.isArray(order) && order.length === e && new Set<unknown>(order).size === e && order.every((p) => typeof p === 'number' && Number.isInteger(p) && p >= 0 && p < e))) {
        throw new IRTypeError(`expert_order must give each of the ${e} experts a distinct position 0..${e - 1}`);
      }
      const probs: TensorType[] = a['probs'] === true ? [{ shape: [TOKENS, e], dtype: 'f32' }] : [];
      return [{ shape: [TOKENS, k], dtype: 'i32' }, { shape: [TOKENS, k], dtype: 'f32' }, ...probs];
    },
  },
  'moe.experts': {
    doc: 'The routed experts: each token through its chosen experts, outputs summed with the routing weights; with token rounding\'s extras, then each added (token, expert) pair in entry order.',
    inputNames: (a) => ['x', 'ids', 'weights', ...mlpWeightNames(kindAttr(a, 'activation')), ...(a['extras'] ? ['extra_ids', 'extra_weights'] : [])],
    outputNames: ['y'],
    infer: (inputs, a) => {
      const { x, ids, weights, gate, up, down } = inputs;
      const h = expectActivation('x', x!);
      const e = numAttr(a, 'experts');
      const k = numAttr(a, 'top_k');
      const i = numParam(kindAttr(a, 'activation'), 'intermediate');
      expectShape('ids', ids!, [TOKENS, k]);
      expectShape('weights', weights!, [TOKENS, k]);
      expectShape('gate', gate!, [e, i, h]);
      expectShape('up', up!, [e, i, h]);
      expectShape('down', down!, [e, h, i]);
      if (a['extras']) expectExtras(inputs, numAttr(a, 'extras'));
      return [x!];
    },
  },
  sigmoid_gate: {
    doc: 'y * sigmoid(x w^T): the Qwen2-MoE shared-expert gate.',
    inputNames: () => ['y', 'x', 'weight'],
    outputNames: ['y'],
    infer: ({ y, x, weight }) => {
      const h = expectActivation('x', x!);
      expectShape('weight', weight!, [1, h]);
      return [y!];
    },
  },
};

/** Every builtin opcode: model-level and lowered (kernel-level). A plugin's registry extends a copy. */
export const opDefinitions: Readonly<Record<string, OpDefinition>> = { ...modelOpDefinitions, ...loweredOpDefinitions, ...attentionOpDefinitions, ...traceOpDefinitions };

/** Runs an op's inference given its inputs in order; throws IRTypeError on a mismatch. */
export function inferOp(opcode: string, inputs: TensorType[], attrs: Attrs, ops: Readonly<Record<string, OpDefinition>> = opDefinitions): TensorType[] {
  const definition = ops[opcode];
  if (!definition) throw new IRTypeError(`unknown opcode ${opcode}`);
  const names = definition.inputNames(attrs);
  if (names.length !== inputs.length) throw new IRTypeError(`${opcode} takes ${names.length} inputs (${names.join(', ')}), got ${inputs.length}`);
  const named: Inputs = {};
  names.forEach((n, i) => (named[n] = inputs[i]!));
  return definition.infer(named, attrs);
}

/** An op's inputs by the names its definition gives them. */
export function inputsByName(op: { opcode: string; inputs: Value[]; attrs: Attrs }, ops: Readonly<Record<string, OpDefinition>> = opDefinitions): Record<string, Value> {
  const names = ops[op.opcode]!.inputNames(op.attrs);
  return Object.fromEntries(names.map((n, i) => [n, op.inputs[i]!]));
}
