// What codegen looks names up in, passed explicitly (a plugin's registry hands a copy with its
// own added): the kernel of each lowered opcode, the router selection partial of each router kind,
// `fn act` of each activation kind, and the WGSL decode of each weight format.
import type { KindRef } from '../../ir/model-config.js';
import { builtinRouterPartials, type RouterKernelPartial } from '../kernels/router/router-partials.js';
import { builtinWeightLoads, type WeightLoads } from '../kernels/weights/weight-loads.js';
import { kernelTable, type KernelEntry } from './kernel-table.js';

export interface KernelRegistry {
  readonly ops: Readonly<Record<string, KernelEntry>>;
  readonly routers: Readonly<Record<string, RouterKernelPartial>>;
  /** A plugin activation's WGSL; the builtin ones are codegen/kernels/activation/*.wgsl.hbs. */
  readonly activations: Readonly<Record<string, (kind: KindRef) => string>>;
  /** `fn <name>_at` / `_at4` per weight format: the builtin load-<format>.wgsl.hbs, a plugin's template. */
  readonly weightLoads: WeightLoads;
}

export const builtinKernels: KernelRegistry = { ops: kernelTable, routers: builtinRouterPartials, activations: {}, weightLoads: builtinWeightLoads };
