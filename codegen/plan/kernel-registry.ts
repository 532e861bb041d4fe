// What codegen looks names up in, passed explicitly (a plugin's registry hands a copy with its
// own added): the kernel of each lowered opcode, the router selection partial of each router kind,
// `fn act` of each activation kind, and the WGSL decode of each weight format.
import { builtinActivationKernels, type ActivationKernels } from '../kernels/kernel.js';
import { builtinRouterPartials, type RouterKernelPartial } from '../kernels/router/router-partials.js';
import { builtinWeightLoads, type WeightLoads } from '../kernels/weights/weight-loads.js';
import { kernelTable, type KernelEntry } from './kernel-table.js';
import { attentionKernelTable } from './kernel-table-attention.js';
import { decoderKernelTable } from './kernel-table-decoder.js';
import { traceKernelTable } from './kernel-table-trace.js';

export interface KernelRegistry {
  readonly ops: Readonly<Record<string, KernelEntry>>;
  readonly routers: Readonly<Record<string, RouterKernelPartial>>;
  /** `fn act(gate, up)` per activation kind: the builtin activation/*.wgsl.hbs, a plugin's own. */
  readonly activations: ActivationKernels;
  /** `fn <name>_at` / `_at4` per weight format: the builtin load-<format>.wgsl.hbs, a plugin's template. */
  readonly weightLoads: WeightLoads;
}

export const builtinKernels: KernelRegistry = { ops: { ...kernelTable, ...attentionKernelTable, ...decoderKernelTable, ...traceKernelTable }, routers: builtinRouterPartials, activations: builtinActivationKernels, weightLoads: builtinWeightLoads };
