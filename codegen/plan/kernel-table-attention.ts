// Kernel entries of the attention ops (ir/ops-attention.ts): the flash kernels of
// codegen/kernels/attention read their shape off the op's attrs and the cache types. Their Params
// uniform is { tokens, past, 0, 0 }: past (the first position of the call) is a word the runtime
// fills per call.
import type { Op, Value } from '../../ir/graph.js';
import { inputsByName } from '../../ir/ops.js';
import { tokenExpr, type TokenExpr } from '../../runtime/plan.js';
import { renderAttentionDecodeKernels } from '../kernels/attention/attention-decode.js';
import { renderAttentionPrefillKernel } from '../kernels/attention/attention-prefill.js';
import type { AttentionShape } from '../kernels/attention/attention-shape.js';
import { attentionTileOf, type AttentionTile } from '../../ir/target.js';
import type { KernelEntry, OpContext } from './kernel-table.js';

/** { tokens, past, 0, 0 }. */
export const tokensAndPast: TokenExpr[] = [tokenExpr(1), { perToken: 0, constant: 0, perPast: 1 }, tokenExpr(0), tokenExpr(0)];

/** The attend ops' flash shape: heads, dims, scale, window, sinks from the attrs; context and storage from cache_k. */
function attendShape(op: Op): AttentionShape {
  const cache = inputsByName(op)['cache_k']!;
  const n = (name: string) => op.attrs[name] as number;
  const valuesInKeys = op.attrs['values_in_keys'] === true;
  return {
    heads: n('heads'), kvHeads: n('kv_heads'), keyDim: n('key_dim'), valueDim: n('value_dim'), scale: n('scale'), window: n('window'),
    sinks: op.attrs['sinks'] === true, context: cache.type.shape[0] as number, cacheDtype: cache.type.dtype === 'f16' ? 'f16' : 'f32',
    ...(valuesInKeys ? { valueStride: n('kv_heads') * n('key_dim') } : {}),
  };
}

/** q and the caches; MLA's values are the key rows' first value_dim columns, so the key cache is bound twice. */
function cacheBindings(op: Op): Record<string, Value> {
  const i = inputsByName(op);
  return { q: i['q']!, key_cache: i['cache_k']!, value_cache: i['cache_v'] ?? i['cache_k']! };
}

/** The tile lower-attention chose (an op attr: `moec ir` shows it). */
function tileOf(op: Op): AttentionTile {
  const tile = attentionTileOf(op.attrs['tile']);
  if (!tile) throw new Error(`internal: ${op.opcode} ${op.outputs[0]!.name} has no attention tile attr`);
  return tile;
}

const prefillKernel = (op: Op) => renderAttentionPrefillKernel(attendShape(op), tileOf(op));
const decodeKernels = (op: Op) => renderAttentionDecodeKernels(attendShape(op), { chunkKeys: op.attrs['chunk_keys'] as number, tile: tileOf(op) });

/** The merge renders from its partials op's shape (the producer of partial_stats). */
function partialsOf(op: Op, context: OpContext): Op {
  const producer = context.producer(inputsByName(op)['partial_stats']!);
  if (!producer || producer.opcode !== 'attention.decode_partials') throw new Error(`internal: ${op.outputs[0]!.name}: the merge's partials come from no attention.decode_partials`);
  return producer;
}

export const attentionKernelTable: Record<string, KernelEntry> = {
  'attention.attend': {
    render: (op) => prefillKernel(op).kernel,
    bindings: (op) => {
      const i = inputsByName(op);
      return { ...cacheBindings(op), ...(i['sinks'] ? { sinks: i['sinks'] } : {}), out: op.outputs[0]! };
    },
    grid: (op) => prefillKernel(op).planGrid,
    words: () => tokensAndPast,
    label: (op) => `attention ${op.outputs[0]!.name.split('.').slice(0, 2).join('.')}`,
  },
  'attention.decode_partials': {
    render: (op) => decodeKernels(op).partials.kernel,
    bindings: (op) => ({ ...cacheBindings(op), partial_stats: op.outputs[0]!, partial_acc: op.outputs[1]! }),
    grid: (op) => decodeKernels(op).partials.planGrid,
    words: () => tokensAndPast,
    label: () => 'attention decode (partials)',
  },
  'attention.decode_merge': {
    render: (op, context) => decodeKernels(partialsOf(op, context)).merge.kernel,
    bindings: (op) => {
      const i = inputsByName(op);
      return { partial_stats: i['partial_stats']!, partial_acc: i['partial_acc']!, ...(i['sinks'] ? { sinks: i['sinks'] } : {}), out: op.outputs[0]! };
    },
    // (heads, T, 1) whatever the shape.
    grid: (op) => ({ kind: 'fixed', x: tokenExpr(0, op.attrs['heads'] as number), y: tokenExpr(1), z: tokenExpr(0, 1) }),
    words: () => tokensAndPast,
    label: () => 'attention decode (merge)',
  },
};
