// Tiled GEMM over expert weights: grouped (rows gathered through the route-align output, one
// expert per BM-row block) or dense (rows = tokens; the shared expert, the naive baseline).
// `gateup` computes gate and up together and applies the activation in the epilogue; otherwise
// one matrix, optional bias and (grouped) the routing weight, stored to the slot's row.
import { declareBindings, f32Array, i32Array, renderActivation, u32Array, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { matrixBindings, type MatrixKernelShape } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import { builtinWeightLoads, formatTag, renderWeightLoads, weightArrayType, type WeightLoads } from '../weights/weight-loads.js';
import type { WeightFormat } from '../../../runtime/quant/weight-format.js';
import type { GemmTile } from '../../../ir/ops-lowered.js';
import { DEFAULT_GEMM_TILE } from '../../../ir/target.js';


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
  /**
   * Grouped only: the shared expert folded in as expert E (route-align's `sharedExpert`; one shard
   * holds every expert, so E is the Params word expert_end). Gate/up reads its [Is, H] gate and up
   * from `ws0`, `ws1` and stores token t's Is outputs at element SHARED_BASE + t Is of `out`,
   * SHARED_BASE = (K T + X + E (BM - 1)) I; the weighted down GEMM reads that row (K = Is) through
   * `ws0` [H, Is] and stores it to slot_out row K T + X + t, weight 1 (slot_out then has
   * K T + X + T rows). The new bindings come after the existing ones. Default off.
   */
  shared?: GemmSharedExpert;
}

export interface GemmSharedExpert {
  /** Gate/up: the shared expert's intermediate Is (its outputs). */
  ndim?: number;
  /** Down: the shared expert's intermediate Is (its reduced dim). */
  kdim?: number;
  /** Storage of ws0 (and ws1); may differ from the routed experts'. */
  format: WeightFormat;
  /** X, token rounding's extra slots: required with `extras` (the down GEMM's shared rows follow them). */
  extras?: number;
  /** Not supported: the shared expert's biases would need more bindings than a stage has. */
  bias?: boolean;
}

/** Storage buffers a GEMM with the shared expert folded in may bind: WebGPU's default per stage. */
const MAX_STORAGE_BUFFERS = 8;

export function gemmThreads(tile: GemmTile): number {
  return (tile.bm / tile.tm) * (tile.bn / tile.tn);
}

/** Why the templates cannot render `tile` whatever the problem (undefined: they can). */
export function gemmTileShapeRefusal(tile: GemmTile): string | undefined {
  if (tile.bm % tile.tm || tile.bn % tile.tn) return 'tm must divide bm and tn divide bn';
  if (gemmThreads(tile) < tile.bm) return 'needs at least bm threads';
  if (tile.kvec === 4 && tile.bk % 4) return 'kvec 4 steps the reduced dim in vec4s: bk must be a multiple of 4';
  if (tile.direct === 1 && tile.kvec !== 4) return 'direct reads need kvec 4';
  return undefined;
}

/** The tile loop and its epilogue for one weight group (the routed experts', the shared expert's). */
function renderTile(tile: GemmTile, context: TileContext): string {
  // Each thread's TM x TN outputs, unrolled in the templates (scalar sums acc0_i_j, not an array).
  const tmRows = Array.from({ length: tile.tm }, (_, i) => i);
  const tnCols = Array.from({ length: tile.tn }, (_, j) => j);
  const cells = tmRows.flatMap((i) => tnCols.map((j) => ({ i, j })));
  const unrolled = { ...context, tmRows, tnCols, cells };
  const epilogue = renderTemplate('grouped-gemm/gemm-epilogue.wgsl.hbs', unrolled).replace(/\n$/, '');
  const loop = tile.kvec === 4 ? 'grouped-gemm/gemm-tile-kvec.wgsl.hbs' : 'grouped-gemm/gemm-tile.wgsl.hbs';
  return renderTemplate(loop, { ...unrolled, staged: tile.direct !== 1, epilogue }).replace(/\n$/, '');
}

/** `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads). */
export function renderGemmKernel(shape: GemmKernelShape, loads?: WeightLoads): RenderedKernel {
  const tile = shape.tile ?? DEFAULT_GEMM_TILE;
  const refusal = gemmTileShapeRefusal(tile);
  if (refusal) throw new Error(`GEMM tile ${JSON.stringify(tile)}: ${refusal}`);
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
  const shared = shape.shared && sharedExpertParts(shape, tile, vec4, [...storage, ...extraBindings], loads);
  const { header, bindings, uniformBinding } = declareBindings([...storage, ...extraBindings, ...(shared?.storage ?? [])], act);
  const what = shape.gateup ? 'gate/up + activation' : shape.weighted ? 'down x routing weight' : 'single matrix';
  const title = `${shape.grouped ? 'Grouped' : 'Dense'} GEMM, ${what}: K = ${shape.kdim}, N = ${shape.ndim}, ${format.format} weights.`;
  const routedTile = renderTile(tile, {
    gateup: shape.gateup,
    bias: shape.bias,
    weighted: shape.weighted,
    vec4,
    aVec4: false,
    kdim: 'KDIM',
    ndim: 'NDIM',
    w0: 'w0',
    w1: 'w1',
    matrix: 'matrix',
    aRow: 'u32(row) * KDIM',
    outRow: 'u32(out_row) * NDIM',
  });
  const wgsl = renderTemplate('grouped-gemm/grouped-gemm.wgsl.hbs', {
    title,
    header,
    ...tile,
    kvec: tile.kvec === 4,
    staged: tile.direct !== 1,
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
    tile: routedTile,
    shared: !!shared,
    ...(shared ? shared.context : {}),
  });
  const name = `${shape.grouped ? 'grouped' : 'dense'}_gemm_${shape.gateup ? 'gateup' : shape.weighted ? 'down_weighted' : 'single'}_${shape.kdim}x${shape.ndim}${shape.bias ? '_bias' : ''}${formatTag(format)}${act === 'f16' ? '_f16act' : ''}${shape.extras ? '_extras' : ''}${shared ? shared.nameTag : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [gemmThreads(tile), 1, 1], bindings, uniformBinding };
}

/** What gemm-tile.wgsl.hbs is rendered with: the routed experts' tile, or the shared expert's. */
interface TileContext {
  gateup: boolean;
  bias: boolean;
  weighted: boolean;
  vec4: boolean;
  aVec4: boolean;
  kdim: string;
  ndim: string;
  w0: string;
  w1: string;
  matrix: string;
  aRow: string;
  outRow: string;
}


/** The shared expert's bindings, weight decode, tile and template fields (GemmKernelShape.shared). */
function sharedExpertParts(shape: GemmKernelShape, tile: GemmTile, vec4: boolean, existing: readonly StorageDecl[], loads: WeightLoads = builtinWeightLoads) {
  const shared = shape.shared!;
  const what = shape.gateup ? 'gate/up' : 'down';
  if (!shape.grouped || !(shape.gateup || shape.weighted)) throw new Error('the shared expert folds into a grouped gate/up or weighted down GEMM only');
  if (shared.bias) throw new Error('a shared expert folded into the grouped GEMMs has no biases');
  if (shape.shards !== 1) throw new Error(`the shared expert folds into the grouped GEMMs of one weight shard only, not ${shape.shards}`);
  const names = shape.gateup ? ['ws0', 'ws1'] : ['ws0'];
  const count = existing.length + names.length;
  if (count > MAX_STORAGE_BUFFERS) {
    throw new Error(`a grouped ${what} GEMM with the shared expert folded in${shape.extras ? ' and token rounding' : ''}${shape.bias ? ' and expert biases' : ''} needs ${count} storage buffers per shader stage (${[...existing.map((b) => b.name), ...names].join(', ')}), more than WebGPU's default ${MAX_STORAGE_BUFFERS}`);
  }
  const dim = shape.gateup ? shared.ndim : shared.kdim;
  const other = shape.gateup ? shared.kdim : shared.ndim;
  if (dim === undefined || !Number.isInteger(dim) || dim < 1 || other !== undefined) {
    throw new Error(`the ${what} GEMM's shared expert needs ${shape.gateup ? 'ndim' : 'kdim'} (its intermediate) and nothing else, not ${JSON.stringify({ ndim: shared.ndim, kdim: shared.kdim })}`);
  }
  if (shape.extras && shared.extras === undefined) throw new Error('with token rounding the shared expert needs extras (X): its slots are K T + X + t');
  const extras = shared.extras ?? 0;
  if (!Number.isInteger(extras) || extras < 0) throw new Error(`shared expert: extras ${extras} must be a non-negative integer`);
  if (extras && !shape.extras) throw new Error('shared expert: extras (X) given to a GEMM without token rounding\'s extra slots');
  // Down: shared rows of `a` start at SHARED_BASE + t Is, 16-byte aligned when I (so SHARED_BASE) and
  // Is are multiples of 4; gate/up reads x rows like the routed experts.
  const sharedVec4 = shape.gateup ? vec4 : vec4 && dim % 4 === 0 && tile.bk % 4 === 0;
  const [rows, cols] = shape.gateup ? [dim, shape.kdim] : [shape.ndim, dim];
  const weightType = weightArrayType(shared.format, sharedVec4);
  const storage: StorageDecl[] = names.map((name) => ({ name, access: 'read', type: weightType }));
  const sharedTile = renderTile(tile, {
    gateup: shape.gateup,
    bias: false,
    weighted: false,
    vec4: sharedVec4,
    aVec4: vec4 && !sharedVec4,
    kdim: shape.gateup ? 'KDIM' : 'IS',
    ndim: shape.gateup ? 'IS' : 'NDIM',
    w0: 'ws0',
    w1: 'ws1',
    matrix: '0u',
    aRow: shape.gateup ? 'u32(row) * KDIM' : 'shared_base + u32(row) * IS',
    outRow: shape.gateup ? 'shared_base + u32(out_row) * IS' : 'u32(out_row) * NDIM',
  });
  return {
    storage,
    nameTag: `_shared${dim}${formatTag(shared.format)}`,
    context: {
      sharedDim: dim,
      sharedExtras: extras,
      sharedFormat: shared.format.format,
      sharedWeightLoads: names.map((name) => renderWeightLoads({ name, format: shared.format, rows, cols }, sharedVec4, loads)).join('\n'),
      sharedTile,
    },
  };
}
