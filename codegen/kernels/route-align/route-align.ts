// The GPU bookkeeping between router and grouped GEMMs (see route-align.wgsl.hbs).
//
// Buffer sizes for T tokens, with X = `extras` (0 without token rounding) and S = shards:
//   sorted_slots: K T + X + E (BM - 1) rows (i32): every expert pads at most BM - 1 rows;
//                 with `sharedExpert`, K T + X + E (BM - 1) + T + (BM - 1) (its T rows, padded);
//   route_meta:   ceil((sorted_slots rows + S BM) / BM) words (u32): S first blocks, one expert per block;
//   dispatch_args: 6 S words.
// Slot s < K T is routed slot (token s / K, k = s % K); s = K T + j is token rounding's extra pair j;
// with `sharedExpert`, s = K T + X + t is token t's row of the shared expert (expert index E).
import { declareBindings, i32Array, u32Array, type RenderedKernel } from '../kernel.js';
import { renderTemplate } from '../template.js';

export interface RouteAlignShape {
  experts: number;
  topK: number;
  /** GEMM tile rows: every expert's rows are padded to a multiple of it. */
  blockRows: number;
  /** First expert of each weight shard (ascending, starting at 0). */
  shardBegins: number[];
  /** Workgroups along N of the gate/up and the down GEMM. */
  gateUpTiles: number;
  downTiles: number;
  /**
   * Token rounding: X = E (M - 1) extra (token, expert) pairs in `extra_ids` [X, 2] ((-1, -1)
   * unused); pair j is counted for its expert and placed as slot K T + j. Default 0 (none).
   */
  extras?: number;
  /**
   * Fold the shared expert into the grouped GEMMs as expert E: after the routed experts' padded
   * rows, the T tokens as slots K T + X + t, padded to BM rows, in blocks whose expert is E; the
   * dispatch args count those blocks. One shard only. Default off.
   */
  sharedExpert?: boolean;
}

/** Rows of sorted_slots for `tokens` tokens (the bound every padded layout fits in). */
export function sortedSlotRows(shape: RouteAlignShape, tokens: number): number {
  const routed = shape.topK * tokens + (shape.extras ?? 0) + shape.experts * (shape.blockRows - 1);
  return shape.sharedExpert ? routed + tokens + shape.blockRows - 1 : routed;
}

/** Words of route_meta for `tokens` tokens: one per shard, then one per BM-row block. */
export function routeMetaWords(shape: RouteAlignShape, tokens: number): number {
  return Math.ceil((sortedSlotRows(shape, tokens) + shape.shardBegins.length * shape.blockRows) / shape.blockRows);
}

const WORKGROUP = 256;
export const ALIGN_MAX_EXPERTS = 1024;

export function renderRouteAlignKernel(shape: RouteAlignShape): RenderedKernel {
  if (shape.experts > ALIGN_MAX_EXPERTS) throw new Error(`routing bookkeeping handles at most ${ALIGN_MAX_EXPERTS} experts, not ${shape.experts}`);
  if (shape.shardBegins.length > WORKGROUP) throw new Error(`at most ${WORKGROUP} weight shards, not ${shape.shardBegins.length}`);
  const extras = shape.extras ?? 0;
  if (!Number.isInteger(extras) || extras < 0) throw new Error(`route-align: extras ${extras} must be a non-negative integer`);
  const shared = !!shape.sharedExpert;
  if (shared && shape.shardBegins.length !== 1) throw new Error(`route-align: the shared expert folds into the grouped GEMMs of one weight shard only, not ${shape.shardBegins.length}`);
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'route_ids', access: 'read', type: i32Array },
    { name: 'sorted_slots', access: 'read_write', type: i32Array },
    { name: 'route_meta', access: 'read_write', type: u32Array },
    { name: 'dispatch_args', access: 'read_write', type: u32Array },
    ...(extras ? [{ name: 'extra_ids', access: 'read', type: i32Array } as const] : []),
  ]);
  // The shared expert E belongs to the (only) shard: its blocks end at offsets[E + 1].
  const begins = [...shape.shardBegins, shape.experts + (shared ? 1 : 0)];
  const wgsl = renderTemplate('route-align/route-align.wgsl.hbs', {
    header,
    experts: shape.experts,
    offsetCount: shape.experts + (shared ? 2 : 1),
    topK: shape.topK,
    blockRows: shape.blockRows,
    shards: shape.shardBegins.length,
    shardsPlusOne: begins.length,
    shardBegins: begins.map((b) => `${b}u`).join(', '),
    gateUpTiles: shape.gateUpTiles,
    downTiles: shape.downTiles,
    workgroupSize: WORKGROUP,
    extras,
    shared,
  });
  return { name: `route_align${extras ? '_extras' : ''}${shared ? '_shared' : ''}`, wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
}
