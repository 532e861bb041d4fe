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
  /**
   * Token rounding: X = E (M - 1) extra (token, expert) pairs in `extra_ids` [X, 2]; after its k
   * slots, token t adds slot_out row T K + j for each j (ascending) with extra_ids[2 j] = t.
   * slot_out then has K T + X rows. Default 0 (none).
   */
  extras?: number;
  /**
   * With `shared`: token t's shared-expert row is slot_out row K T + X + t (the grouped GEMMs
   * computed it as expert E) instead of the `shared_out` binding, which is then not declared.
   * slot_out then has K T + X + T rows. Default off.
   */
  sharedInSlots?: boolean;
}

const WORKGROUP = 64;
/**
 * Extras one token can have, listed in workgroup memory (4 KiB at most). roundTokens gives a token
 * at most one extra per expert and E <= 1024; a token with more takes a slower scan, still exact.
 */
const MAX_TOKEN_EXTRAS = 1024;
/** Tokens are laid out over (x, y) workgroups, x < COMBINE_GRID_WIDTH, to pass 65535 tokens. */
export const COMBINE_GRID_WIDTH = 4096;

export function renderCombineKernel(shape: CombineKernelShape): RenderedKernel {
  if (shape.sharedGate && !shape.shared) throw new Error('a shared-expert gate needs a shared expert');
  const act = shape.act ?? 'f32';
  const extras = shape.extras ?? 0;
  if (!Number.isInteger(extras) || extras < 0) throw new Error(`combine: extras ${extras} must be a non-negative integer`);
  const sharedInSlots = !!shape.sharedInSlots;
  if (sharedInSlots && !shape.shared) throw new Error('combine: sharedInSlots needs a shared expert');
  const storage: StorageDecl[] = [
    { name: 'route_ids', access: 'read', type: i32Array },
    { name: 'slot_out', access: 'read', type: activationArray(act) },
    ...(shape.shared && !sharedInSlots ? [{ name: 'shared_out', access: 'read', type: activationArray(act) } as const] : []),
    ...(shape.sharedGate
      ? ([
          { name: 'x', access: 'read', type: activationArray(act) },
          { name: 'shared_gate_weight', access: 'read', type: f32Array },
        ] as const)
      : []),
    { name: 'out', access: 'read_write', type: activationArray(act) },
    ...(extras ? [{ name: 'extra_ids', access: 'read', type: i32Array } as const] : []),
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
    extras,
    tokenExtras: Math.min(extras, MAX_TOKEN_EXTRAS),
    extrasOverflow: extras > MAX_TOKEN_EXTRAS,
    sharedInSlots,
  });
  return { name: `combine${shape.shared ? (shape.sharedGate ? '_shared_gated' : '_shared') : ''}${sharedInSlots ? '_in_slots' : ''}${act === 'f16' ? '_f16act' : ''}${extras ? '_extras' : ''}`, wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
}
