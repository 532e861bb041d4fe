// Decode-path GEMV over the selected experts (grid: n tiles x k x tokens), or over one dense
// matrix (the shared expert). Same modes as the grouped GEMM: gate/up + activation, or one
// matrix with optional bias and routing weight.
import type { KindRef } from '../../../ir/model-config.js';
import { declareBindings, f32Array, i32Array, renderActivation, vec4Array, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { renderTemplate } from '../template.js';

export interface GemvKernelShape {
  gateup: boolean;
  grouped: boolean;
  bias: boolean;
  weighted: boolean;
  kdim: number;
  ndim: number;
  topK: number;
  activation?: KindRef;
}

/** Outputs per workgroup; LANES threads share one output's dot product. */
export const GEMV_ROWS = 8;
export const GEMV_LANES = 16;

export function renderGemvKernel(shape: GemvKernelShape): RenderedKernel {
  if (shape.gateup && !shape.activation) throw new Error('a gate/up GEMV needs an activation');
  if (shape.weighted && !shape.grouped) throw new Error('only a grouped GEMV applies routing weights');
  const vec4 = shape.kdim % 4 === 0;
  const matrixType = vec4 ? vec4Array : f32Array;
  const storage: StorageDecl[] = [
    { name: 'a', access: 'read', type: matrixType },
    ...(shape.grouped ? [{ name: 'route_ids', access: 'read', type: i32Array } as const] : []),
    { name: 'w0', access: 'read', type: matrixType },
    ...(shape.gateup ? [{ name: 'w1', access: 'read', type: matrixType } as const] : []),
    ...(shape.bias ? [{ name: 'b0', access: 'read', type: f32Array } as const] : []),
    ...(shape.bias && shape.gateup ? [{ name: 'b1', access: 'read', type: f32Array } as const] : []),
    ...(shape.weighted ? [{ name: 'routing_weights', access: 'read', type: f32Array } as const] : []),
    { name: 'out', access: 'read_write', type: f32Array },
  ];
  const { header, bindings, uniformBinding } = declareBindings(storage);
  const what = shape.gateup ? 'gate/up + activation' : shape.weighted ? 'down x routing weight' : 'single matrix';
  const wgsl = renderTemplate('expert-gemv/expert-gemv.wgsl.hbs', {
    title: `${shape.grouped ? 'Routed-expert' : 'Dense'} GEMV, ${what}: K = ${shape.kdim}, N = ${shape.ndim}.`,
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
    activation: shape.activation ? renderActivation(shape.activation) : '',
  });
  const name = `${shape.grouped ? 'expert' : 'dense'}_gemv_${shape.gateup ? 'gateup' : shape.weighted ? 'down_weighted' : 'single'}_${shape.kdim}x${shape.ndim}${shape.bias ? '_bias' : ''}`;
  return { name, wgsl, entryPoint: 'main', workgroupSize: [GEMV_ROWS * GEMV_LANES, 1, 1], bindings, uniformBinding };
}
