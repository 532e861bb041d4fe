// Tiled GEMM over expert weights: grouped (rows gathered through the route-align output, one
// expert per BM-row block) or dense (rows = tokens; the shared expert, the naive baseline).
// `gateup` computes gate and up together and applies the activation in the epilogue; otherwise
// one matrix, optional bias and (grouped) the routing weight, stored to the slot's row.
import { declareBindings, f32Array, i32Array, renderActivation, u32Array, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { matrixBindings, type MatrixKernelShape } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import { formatTag, type WeightLoads } from '../weights/weight-loads.js';
import type { GemmTile } from '../../../ir/ops-lowered.js';
import { DEFAULT_GEMM_TILE } from '../../../ir/target.js';

// The tile is an op attribute (ir/ops-lowered.ts GemmTile), chosen from the target description.
export { DEFAULT_GEMM_TILE, type GemmTile };

export interface GemmKernelShape extends MatrixKernelShape {
  /** Number of weight shards (route_meta starts with one word per shard). */
  shards: number;
  tile?: GemmTile;
  /**
   * Grouped only, token rounding: a sorted slot s >= T K is extra pair j = s - T K. Gate/up reads
   * its token from `extra_ids` [X, 2]; the weighted down GEMM its weight from `extra_weights` [X]
   * and stores to slot_out row s (slot_out then has K T + X rows). Default off.
   */
  extras?: boolean;
}

export function gemmThreads(tile: GemmTile): number {
  return (tile.bm / tile.tm) * (tile.bn / tile.tn);
}

/** `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads). */
export function renderGemmKernel(shape: GemmKernelShape, loads?: WeightLoads): RenderedKernel {
  const tile = shape.tile ?? DEFAULT_GEMM_TILE;
  if (tile.bm % tile.tm || tile.bn % tile.tn) throw new Error(`GEMM tile ${JSON.stringify(tile)}: tm must divide bm and tn divide bn`);
  if (gemmThreads(tile) < tile.bm) throw new Error(`GEMM tile ${JSON.stringify(tile)}: needs at least bm threads`);
  if (shape.gateup && !shape.activation) throw new Error('a gate/up GEMM needs an activation');
  if (shape.weighted && !shape.grouped) throw new Error('only a grouped GEMM applies routing weights');
  // vec4 loads need KDIM and BK to be multiples of 4 (the weight rows then start 16-byte aligned).
  const vec4 = shape.kdim % 4 === 0 && tile.bk % 4 === 0;
  const routing: StorageDecl[] = shape.grouped
    ? [
        { name: 'sorted_slots', access: 'read', type: i32Array },
        { name: 'route_meta', access: 'read', type: u32Array },
      ]
    : [];
  if (shape.extras && !shape.grouped) throw new Error('only a grouped GEMM reads token rounding\'s extra slots');
  const { storage, weightLoads, format } = matrixBindings(shape, vec4, routing, loads);
  // Each kernel binds only what it reads (pipelines use layout 'auto'), after the existing bindings.
  const extraBindings: StorageDecl[] = !shape.extras
    ? []
    : shape.gateup
      ? [{ name: 'extra_ids', access: 'read', type: i32Array }]
      : shape.weighted
        ? [{ name: 'extra_weights', access: 'read', type: f32Array }]
        : [];
  const act = shape.act ?? 'f32';
  const { header, bindings, uniformBinding } = declareBindings([...storage, ...extraBindings], act);
  const what = shape.gateup ? 'gate/up + activation' : shape.weighted ? 'down x routing weight' : 'single matrix';
  const title = `${shape.grouped ? 'Grouped' : 'Dense'} GEMM, ${what}: K = ${shape.kdim}, N = ${shape.ndim}, ${format.format} weights.`;
  const wgsl = renderTemplate('grouped-gemm/grouped-gemm.wgsl.hbs', {
    title,
    header,
    ...tile,
    kdim: shape.kdim,
    ndim: shape.ndim,
    topK: shape.topK,
    shards: shape.shards,
    grouped: shape.grouped,
    gateup: shape.gateup,
    bias: shape.bias,
    weighted: shape.weighted,
    extras: !!shape.extras,
    vec4,
    weightLoads,
    activation: shape.activation ? renderActivation(shape.activation, shape.activations) : '',
  });
  const name = `${shape.grouped ? 'grouped' : 'dense'}_gemm_${shape.gateup ? 'gateup' : shape.weighted ? 'down_weighted' : 'single'}_${shape.kdim}x${shape.ndim}${shape.bias ? '_bias' : ''}${formatTag(format)}${act === 'f16' ? '_f16act' : ''}${shape.extras ? '_extras' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [gemmThreads(tile), 1, 1], bindings, uniformBinding };
}
