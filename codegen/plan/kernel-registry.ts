// What codegen looks names up in, passed explicitly (a plugin's registry hands a copy with its
// own added): the kernel of each lowered opcode, the router selection partial of each router kind,
// and `fn act` of each activation kind.
import type { KindRef } from '../../ir/model-config.js';
import { builtinRouterPartials, type RouterKernelPartial } from '../kernels/router/router-partials.js';
import { kernelTable, type KernelEntry } from './kernel-table.js';

export interface KernelRegistry {
  readonly ops: Readonly<Record<string, KernelEntry>>;
  readonly routers: Readonly<Record<string, RouterKernelPartial>>;
  /** A plugin activation's WGSL; the builtin ones are codegen/kernels/activation/*.wgsl.hbs. */
  readonly activations: Readonly<Record<string, (kind: KindRef) => string>>;
}

export const builtinKernels: KernelRegistry = { ops: kernelTable, routers: builtinRouterPartials, activations: {} };
