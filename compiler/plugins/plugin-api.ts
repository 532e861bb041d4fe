// What a plugin module default-exports: `export default definePlugin({ ... })`. Each part lands in
// the layer that uses it: spec kinds in the checker, op definitions and semantics in the IR and
// its interpreter, kernels in codegen, passes in the pipeline after the pass they name.
import type { KernelEntry } from '../../codegen/plan/kernel-table.js';
import type { RouterKernelPartial } from '../../codegen/kernels/router/router-partials.js';
import type { GatedActivation } from '../../ir/interpret/activations.js';
import type { OpImplementation } from '../../ir/interpret/host-tensor.js';
import type { RouterImplementation } from '../../ir/interpret/routers.js';
import type { KindRef } from '../../ir/model-config.js';
import type { OpDefinition } from '../../ir/op-checks.js';
import type { Pass } from '../../passes/pass.js';
import type { FormatDefinition } from '../../runtime/quant/weight-format.js';
import type { KindDefinition } from '../spec/kinds/registry.js';

/** A kernel-level op: its shape rule, its reference semantics and (to run on WebGPU) its kernel. */
export interface PluginOp {
  definition: OpDefinition;
  interpret: OpImplementation;
  kernel?: KernelEntry;
}

/** A router kind's semantics: one token's routing (interpreter) and its WGSL selection partial. */
export interface PluginRouter {
  interpret: RouterImplementation;
  kernel?: RouterKernelPartial;
}

/** An activation kind: act(gate, up) for the interpreter and `fn act(gate: f32, up: f32) -> f32` in WGSL. */
export interface PluginActivation {
  interpret: (kind: KindRef) => GatedActivation;
  wgsl?: (kind: KindRef) => string;
}

/**
 * A weight storage format (named like the quant kind in `kinds` whose weights it stores): its
 * codec for the runtime, and the WGSL that decodes it in the GEMM / GEMV kernels.
 */
export interface PluginFormat {
  /**
   * A browser-safe ES module whose default export is the FormatDefinition (use
   * `new URL('./codec.js', import.meta.url)`; a string is relative to the plugin file). model.js
   * bundles it, so a compiled bundle needs no plugin at run time.
   */
  runtime: URL | string;
  /** That module's default export, for the compiler (sizing, packing); the loader imports `runtime` when left out. */
  definition?: FormatDefinition;
  /**
   * Handlebars WGSL (rendered with renderTemplateSource) defining `fn {{name}}_at(m: u32, i: u32) -> f32`
   * and, `{{#if vec4}}`, `fn {{name}}_at4(m: u32, i: u32) -> vec4<f32>`: element i (= row * cols + col)
   * of matrix m of binding `{{name}}` (array<u32>), matrix m at word m * {{matrixWords}}, its scales
   * from word {{valueWords}}; also {{group}}, {{sharedScale}} (see codegen/kernels/weights/load-int4.wgsl.hbs).
   */
  wgsl: string;
}

/** A pass and the builtin (or earlier plugin) pass it runs after. */
export interface PluginPass {
  pass: Pass;
  after: string;
}

export interface MoecPlugin {
  /** Names the plugin in errors and in the manifest. */
  name: string;
  /** Spec kinds (routers, activations, quantizations, ...): `compile { ... }` and `moe { ... }` may use them. */
  kinds?: KindDefinition[];
  /** By router kind name (a kind of category router, from `kinds` or a builtin). */
  routers?: Record<string, PluginRouter>;
  /** By activation kind name. */
  activations?: Record<string, PluginActivation>;
  /** By opcode; must not clash with a builtin opcode. */
  ops?: Record<string, PluginOp>;
  passes?: PluginPass[];
  /** Weight storage formats by name; each needs a quant kind of that name (in `kinds`) for its storage cost. */
  formats?: Record<string, PluginFormat>;
}

const PLUGIN = Symbol.for('moec.plugin');

/** Marks a plugin so the loader can tell one from any other default export. */
export function definePlugin<P extends MoecPlugin>(plugin: P): P {
  return Object.assign(Object.create(null) as object, plugin, { [PLUGIN]: true }) as P;
}

export function isPlugin(value: unknown): value is MoecPlugin {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PLUGIN] === true;
}
