// The GPU bookkeeping between router and grouped GEMMs (see route-align.wgsl.hbs).
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
}

const WORKGROUP = 256;
export const ALIGN_MAX_EXPERTS = 1024;

export function renderRouteAlignKernel(shape: RouteAlignShape): RenderedKernel {
  if (shape.experts > ALIGN_MAX_EXPERTS) throw new Error(`routing bookkeeping handles at most ${ALIGN_MAX_EXPERTS} experts, not ${shape.experts}`);
  if (shape.shardBegins.length > WORKGROUP) throw new Error(`at most ${WORKGROUP} weight shards, not ${shape.shardBegins.length}`);
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'route_ids', access: 'read', type: i32Array },
    { name: 'sorted_slots', access: 'read_write', type: i32Array },
    { name: 'route_meta', access: 'read_write', type: u32Array },
    { name: 'dispatch_args', access: 'read_write', type: u32Array },
  ]);
  const begins = [...shape.shardBegins, shape.experts];
  const wgsl = renderTemplate('route-align/route-align.wgsl.hbs', {
    header,
    experts: shape.experts,
    expertsPlusOne: shape.experts + 1,
    topK: shape.topK,
    blockRows: shape.blockRows,
    shards: shape.shardBegins.length,
    shardsPlusOne: begins.length,
    shardBegins: begins.map((b) => `${b}u`).join(', '),
    gateUpTiles: shape.gateUpTiles,
    downTiles: shape.downTiles,
    workgroupSize: WORKGROUP,
  });
  return { name: 'route_align', wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
}
