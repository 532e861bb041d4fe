// Decode-path GEMV over the selected experts (grid: n tiles x k x tokens; one workgroup per
// distinct expert does the work), or over one dense matrix for all tokens (the shared expert).
// Same modes as the grouped GEMM: gate/up + activation, or one matrix with optional bias and
// routing weight.
import { declareBindings, i32Array, renderActivation, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { matrixBindings, type MatrixKernelShape } from '../matrix-bindings.js';
import { renderTemplate } from '../template.js';
import { formatTag, type WeightLoads } from '../weights/weight-loads.js';

export interface GemvKernelShape extends MatrixKernelShape {
  /** Most activation rows one workgroup serves: the decode path's largest token count. */
  maxRows: number;
}

/**
 * Outputs per workgroup; LANES threads share one output's dot product. 4 lanes reading vec4 walk
 * 64 contiguous bytes per step (coalesced enough on GPUs); on lavapipe fewer lanes meant fewer
 * barriers and reductions: 32 x 4 ran about 2x faster than 8 x 16.
 */
export const GEMV_ROWS = 32;
export const GEMV_LANES = 4;
/**
 * Most activation rows one workgroup serves (the template's MAX_ROWS): slots beyond it are not
 * computed, so the decode path must route no more tokens. Its partial sums take 2 x 8 x 32 x 4 f32 (8 KiB).
 */
export const GEMV_MAX_ROWS = 8;
/** Activation rows per pass over a weight row (4: on lavapipe T = 8 decode ran ~1.5x faster than rows one at a time). */
export const GEMV_CHUNK = 4;

/** `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads). */
export function renderGemvKernel(shape: GemvKernelShape, loads?: WeightLoads): RenderedKernel {
  if (shape.gateup && !shape.activation) throw new Error('a gate/up GEMV needs an activation');
  if (shape.weighted && !shape.grouped) throw new Error('only a grouped GEMV applies routing weights');
  const vec4 = shape.kdim % 4 === 0;
  const routing: StorageDecl[] = shape.grouped ? [{ name: 'route_ids', access: 'read', type: i32Array }] : [];
  const { storage, weightLoads, format } = matrixBindings(shape, vec4, routing, loads);
  const act = shape.act ?? 'f32';
  const { header, bindings, uniformBinding } = declareBindings(storage, act);
  const what = shape.gateup ? 'gate/up + activation' : shape.weighted ? 'down x routing weight' : 'single matrix';
  const wgsl = renderTemplate('expert-gemv/expert-gemv.wgsl.hbs', {
    title: `${shape.grouped ? 'Routed-expert' : 'Dense'} GEMV, ${what}: K = ${shape.kdim}, N = ${shape.ndim}, ${format.format} weights.`,
    header,
    rows: GEMV_ROWS,
    lanes: GEMV_LANES,
    kdim: shape.kdim,
    ndim: shape.ndim,
    topK: shape.topK,
    grouped: shape.grouped,
    gateup: shape.gateup,
    bias: shape.bias,
    weighted: shape.weighted,
    vec4,
    maxRows: shape.maxRows,
    chunk: GEMV_CHUNK,
    // gate/up reads the token's hidden state (slot / K when routed); down reads the row it writes.
    aRow: shape.gateup && shape.grouped ? '(out_rows[base + j] / TOPK)' : 'out_rows[base + j]',
    weightLoads,
    activation: shape.activation ? renderActivation(shape.activation, shape.activations) : '',
  });
  const name = `${shape.grouped ? 'expert' : 'dense'}_gemv_${shape.gateup ? 'gateup' : shape.weighted ? 'down_weighted' : 'single'}_${shape.kdim}x${shape.ndim}${shape.bias ? '_bias' : ''}${formatTag(format)}${act === 'f16' ? '_f16act' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [GEMV_ROWS * GEMV_LANES, 1, 1], bindings, uniformBinding };
}
