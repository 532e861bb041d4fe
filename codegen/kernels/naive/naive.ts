// Kernels of the deliberately naive MoE baseline in bench/ (the way early WebGPU MoE ports
// worked: router, read the routing back, then a dispatch chain per active expert). Not used by
// the compiled plan; kept here because all WGSL lives in codegen/kernels.
import type { KindRef } from '../../../ir/model-config.js';
import { declareBindings, f32Array, i32Array, renderActivation, type RenderedKernel } from '../kernel.js';
import { renderTemplate } from '../template.js';

function kernel(name: string, template: string, storage: Parameters<typeof declareBindings>[0], context: object): RenderedKernel {
  const { header, bindings, uniformBinding } = declareBindings(storage);
  return { name, wgsl: renderTemplate(`naive/${template}`, { header, ...context }), entryPoint: 'main', workgroupSize: [64, 1, 1], bindings, uniformBinding };
}

export function renderGatherRowsKernel(hidden: number): RenderedKernel {
  return kernel('naive_gather_rows', 'gather-rows.wgsl.hbs', [
    { name: 'x', access: 'read', type: f32Array },
    { name: 'token_index', access: 'read', type: i32Array },
    { name: 'out', access: 'read_write', type: f32Array },
  ], { hidden });
}

export function renderActivateKernel(intermediate: number, activation: KindRef): RenderedKernel {
  return kernel('naive_activate', 'activate.wgsl.hbs', [
    { name: 'gate', access: 'read', type: f32Array },
    { name: 'up', access: 'read', type: f32Array },
    { name: 'out', access: 'read_write', type: f32Array },
  ], { intermediate, activation: renderActivation(activation) });
}

export function renderScatterAddKernel(hidden: number): RenderedKernel {
  return kernel('naive_scatter_add', 'scatter-add.wgsl.hbs', [
    { name: 'y', access: 'read', type: f32Array },
    { name: 'token_index', access: 'read', type: i32Array },
    { name: 'token_weight', access: 'read', type: f32Array },
    { name: 'acc', access: 'read_write', type: f32Array },
  ], { hidden });
}

export function renderFinishKernel(hidden: number): RenderedKernel {
  return kernel('naive_finish', 'finish.wgsl.hbs', [
    { name: 'acc', access: 'read', type: f32Array },
    { name: 'out', access: 'read_write', type: f32Array },
  ], { hidden });
}
