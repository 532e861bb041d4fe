// The last step of a block: per token, the routed slots summed in k order plus the shared expert.
import { activationArray, declareBindings, f32Array, i32Array, type ActivationDtype, type RenderedKernel, type StorageDecl } from '../kernel.js';
import { renderTemplate } from '../template.js';

export interface CombineKernelShape {
  hidden: number;
  topK: number;
  shared: boolean;
  sharedGate: boolean;
  /** Storage of the slot rows, shared rows, x and out. Default f32. */
  act?: ActivationDtype;
}

const WORKGROUP = 64;
/** Tokens are laid out over (x, y) workgroups, x < COMBINE_GRID_WIDTH, to pass 65535 tokens. */
export const COMBINE_GRID_WIDTH = 4096;

export function renderCombineKernel(shape: CombineKernelShape): RenderedKernel {
  if (shape.sharedGate && !shape.shared) throw new Error('a shared-expert gate needs a shared expert');
  const act = shape.act ?? 'f32';
  const storage: StorageDecl[] = [
    { name: 'route_ids', access: 'read', type: i32Array },
    { name: 'slot_out', access: 'read', type: activationArray(act) },
    ...(shape.shared ? [{ name: 'shared_out', access: 'read', type: activationArray(act) } as const] : []),
    ...(shape.sharedGate
      ? ([
          { name: 'x', access: 'read', type: activationArray(act) },
          { name: 'shared_gate_weight', access: 'read', type: f32Array },
        ] as const)
      : []),
    { name: 'out', access: 'read_write', type: activationArray(act) },
  ];
  const { header, bindings, uniformBinding } = declareBindings(storage, act);
  const wgsl = renderTemplate('combine/combine.wgsl.hbs', {
    header,
    hidden: shape.hidden,
    topK: shape.topK,
    workgroupSize: WORKGROUP,
    gridWidth: COMBINE_GRID_WIDTH,
    shared: shape.shared,
    sharedGate: shape.sharedGate,
  });
  return { name: `combine${shape.shared ? (shape.sharedGate ? '_shared_gated' : '_shared') : ''}${act === 'f16' ? '_f16act' : ''}`, wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
}
