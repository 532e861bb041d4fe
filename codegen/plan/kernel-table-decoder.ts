// Kernel entries of the decoder's other ops: embed, norm, add (model-level ops that are already
// one kernel each), the attention/MLA prepare ops (rotating q in place, so a prepare with q/k
// norms stays within WebGPU's default 8 storage buffers) and MLA's absorb/unabsorb.
import type { Op, Value } from '../../ir/graph.js';
import type { KindRef } from '../../ir/model-config.js';
import { inputsByName } from '../../ir/ops.js';
import { storageFormatOf } from '../../ir/storage-format.js';
import { renderAttentionPrepareKernel } from '../kernels/attention-prepare/attention-prepare.js';
import { renderMlaPrepareKernel } from '../kernels/attention-prepare/mla-prepare.js';
import type { DecoderKernel } from '../kernels/elementwise/decoder-kernel.js';
import { renderAddKernel } from '../kernels/elementwise/add.js';
import { renderEmbedKernel } from '../kernels/embed/embed.js';
import type { ActivationDtype } from '../kernels/kernel.js';
import { renderMlaAbsorbKernel, renderMlaUnabsorbKernel, type MlaAbsorbShape } from '../kernels/mla/mla-absorb.js';
import { normShapeOf, renderNormKernel } from '../kernels/norm/norm.js';
import type { WeightLoads } from '../kernels/weights/weight-loads.js';
import type { KernelEntry, OpContext } from './kernel-table.js';

const act = (v: Value): ActivationDtype => (v.type.dtype === 'f16' ? 'f16' : 'f32');
const width = (v: Value): number => v.type.shape.at(-1) as number;
const num = (op: Op, name: string): number => op.attrs[name] as number;
const cacheDtype = (v: Value) => (v.type.dtype === 'f16' ? 'f16' : 'f32') as 'f16' | 'f32';
const layerOf = (op: Op): string => op.outputs[0]!.name.split('.').slice(0, 2).join('.');

/**
 * An entry from a renderer of DecoderKernel: its grid and words come with the kernel. `loads` (the
 * registry's weight-format decodes) only changes the WGSL, so grid and words render without it.
 */
function entry(render: (op: Op, loads?: WeightLoads) => DecoderKernel, bindings: (op: Op) => Record<string, Value>, label: (op: Op) => string): KernelEntry {
  return {
    render: (op, context: OpContext) => render(op, context.weightLoads).kernel,
    bindings,
    grid: (op) => render(op).planGrid,
    words: (op) => render(op).words,
    label,
  };
}

function mlaShape(op: Op): MlaAbsorbShape {
  const kvB = inputsByName(op)['kv_b']!;
  return { heads: num(op, 'heads'), nope: num(op, 'nope'), rope: num(op, 'rope'), kvRank: num(op, 'kv_rank'), valueDim: num(op, 'value_dim'), format: storageFormatOf(kvB.type.dtype)!, act: act(op.inputs[0]!) };
}

export const decoderKernelTable: Record<string, KernelEntry> = {
  embed: entry(
    (op, loads) => {
      const table = inputsByName(op)['table']!;
      return renderEmbedKernel({ vocab: table.type.shape[0] as number, hidden: table.type.shape[1] as number, format: storageFormatOf(table.type.dtype)!, act: act(op.outputs[0]!) }, loads);
    },
    (op) => ({ ids: inputsByName(op)['ids']!, table: inputsByName(op)['table']!, y: op.outputs[0]! }),
    () => 'embed',
  ),
  norm: entry(
    (op) => renderNormKernel(normShapeOf(op.attrs['norm'] as KindRef, width(op.outputs[0]!), act(op.outputs[0]!))),
    (op) => {
      const i = inputsByName(op);
      return { x: i['x']!, weight: i['weight']!, ...(i['bias'] ? { bias: i['bias'] } : {}), y: op.outputs[0]! };
    },
    (op) => `norm ${op.outputs[0]!.name}`,
  ),
  add_norm: entry(
    (op) => renderNormKernel({ ...normShapeOf(op.attrs['norm'] as KindRef, width(op.outputs[1]!), act(op.outputs[1]!)), add: true }),
    (op) => {
      const i = inputsByName(op);
      return { a: i['a']!, b: i['b']!, weight: i['weight']!, ...(i['bias'] ? { bias: i['bias'] } : {}), sum: op.outputs[0]!, y: op.outputs[1]! };
    },
    (op) => `add + norm ${op.outputs[1]!.name}`,
  ),
  add: entry(
    (op) => renderAddKernel({ width: width(op.outputs[0]!), act: act(op.outputs[0]!) }),
    (op) => ({ a: op.inputs[0]!, b: op.inputs[1]!, y: op.outputs[0]! }),
    (op) => `add ${op.outputs[0]!.name}`,
  ),
  'attention.prepare': entry(
    (op) => {
      const i = inputsByName(op);
      return renderAttentionPrepareKernel({
        heads: num(op, 'heads'), kvHeads: num(op, 'kv_heads'), headDim: num(op, 'head_dim'), context: i['cache_k']!.type.shape[0] as number,
        qkNorm: op.attrs['qk_norm'] as 'none' | 'head' | 'projection', eps: num(op, 'eps'), clip: num(op, 'clip'), ropeSwitch: num(op, 'rope_switch'),
        cacheDtype: cacheDtype(i['cache_k']!), act: act(i['q']!), qInPlace: true,
      });
    },
    (op) => {
      const { positions: _positions, ...rest } = inputsByName(op);
      return rest;
    },
    (op) => `attention prepare ${layerOf(op)}`,
  ),
  'mla.prepare': entry(
    (op) => {
      const i = inputsByName(op);
      return renderMlaPrepareKernel({
        heads: num(op, 'heads'), nope: num(op, 'nope'), rope: num(op, 'rope'), kvRank: num(op, 'kv_rank'), context: i['cache_k']!.type.shape[0] as number,
        eps: num(op, 'eps'), ropeSwitch: num(op, 'rope_switch'), interleaved: op.attrs['interleaved'] === true, cacheDtype: cacheDtype(i['cache_k']!), act: act(i['q']!), qInPlace: true,
      });
    },
    (op) => {
      const { positions: _positions, ...rest } = inputsByName(op);
      return rest;
    },
    (op) => `MLA prepare ${layerOf(op)}`,
  ),
  'mla.absorb_q': entry(
    (op, loads) => renderMlaAbsorbKernel(mlaShape(op), loads),
    (op) => ({ q: inputsByName(op)['q']!, kv_b: inputsByName(op)['kv_b']!, q_absorbed: op.outputs[0]! }),
    (op) => `MLA absorb ${layerOf(op)}`,
  ),
  'mla.unabsorb': entry(
    (op, loads) => renderMlaUnabsorbKernel(mlaShape(op), loads),
    (op) => ({ attended: inputsByName(op)['attended']!, kv_b: inputsByName(op)['kv_b']!, y: op.outputs[0]! }),
    (op) => `MLA unabsorb ${layerOf(op)}`,
  ),
};
