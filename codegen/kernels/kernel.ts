// What every kernel family renders: finished WGSL plus the bindings the plan must fill. All
// kernels share one bind group layout convention: storage buffers first, then a `Params` uniform.
import type { KindRef } from '../../ir/model-config.js';
import { numParam } from '../../ir/model-config.js';
import { f32Literal, renderTemplate } from './template.js';

export interface KernelBinding {
  /** The WGSL variable name; the plan maps it to a buffer. */
  name: string;
  binding: number;
  access: 'read' | 'read_write';
  type: string;
}

export interface RenderedKernel {
  name: string;
  wgsl: string;
  entryPoint: string;
  workgroupSize: [number, number, number];
  bindings: KernelBinding[];
  uniformBinding: number;
}

export type StorageDecl = Omit<KernelBinding, 'binding'>;

/**
 * How activations (hidden states, expert intermediates, slot outputs) are stored between steps:
 * f32, or f16 (compile `dtype = f16`; needs the adapter feature shader-f16). Kernels read them
 * into f32 and do every sum in f32 either way.
 */
export type ActivationDtype = 'f32' | 'f16';

/** The WGSL type of an activation array: `array<f16>`, or `array<vec4<f16>>` for vec4 loads. */
export const activationArray = (act: ActivationDtype, vec4 = false): string => (vec4 ? `array<vec4<${act}>>` : `array<${act}>`);

/** Numbers the storage bindings in order and renders the shared header (`enable f16;` when needed, Params, declarations). */
export function declareBindings(storage: StorageDecl[], act: ActivationDtype = 'f32'): { header: string; bindings: KernelBinding[]; uniformBinding: number } {
  const bindings = storage.map((s, binding) => ({ ...s, binding }));
  const uniformBinding = bindings.length;
  return { header: renderTemplate('common/header.wgsl.hbs', { storage: bindings, uniformBinding, act, f16: act === 'f16' }), bindings, uniformBinding };
}

export const f32Array = 'array<f32>';
export const i32Array = 'array<i32>';
export const u32Array = 'array<u32>';
export const vec4Array = 'array<vec4<f32>>';

/** Activation kind -> its `fn act(gate: f32, up: f32) -> f32` with the kind's params bound. */
export type ActivationKernels = Readonly<Record<string, (kind: KindRef) => string>>;

export const builtinActivationKernels: ActivationKernels = {
  swiglu: () => renderTemplate('activation/swiglu.wgsl.hbs', {}),
  clamped_swiglu: (kind) => renderTemplate('activation/clamped_swiglu.wgsl.hbs', { limit: f32Literal(numParam(kind, 'limit')), alpha: f32Literal(numParam(kind, 'alpha')) }),
};

/** `fn act(gate: f32, up: f32) -> f32` for an activation kind, looked up in `table` (a plugin's registry adds its own). */
export function renderActivation(activation: KindRef, table: ActivationKernels = builtinActivationKernels): string {
  const render = table[activation.kind];
  if (!render) throw new Error(`the WebGPU backend has no kernel for expert activation ${activation.kind} (known: ${Object.keys(table).join(', ')})`);
  return render(activation);
}
