// `moec/plugin`: what a plugin module imports. definePlugin marks the default export; the rest are
// the helpers a plugin's op, pass, router or kernel is written with, the same ones moec's own use.
export { definePlugin, type MoecPlugin, type PluginOp, type PluginPass, type PluginRouter, type PluginActivation, type PluginFormat } from './plugin-api.js';
export type { FormatDefinition, MatrixLayout } from '../../runtime/quant/weight-format.js';
export type { MatrixCodec } from '../../runtime/quant/matrix-codec.js';
export type { KindDefinition } from '../spec/kinds/registry.js';
export type { RouterKernelPartial } from '../../codegen/kernels/router/router-partials.js';
export type { KernelEntry } from '../../codegen/plan/kernel-table.js';
export type { Pass, PassContext } from '../../passes/pass.js';
export type { OpDefinition } from '../../ir/op-checks.js';
export type { RouterImplementation, RouterInput, TokenRoute } from '../../ir/interpret/routers.js';
export type { HostTensor, OpCall } from '../../ir/interpret/host-tensor.js';
export type { Graph, Module, Op, Value } from '../../ir/graph.js';
export { forEachFunction, pathOf } from '../../passes/pass.js';
export { GraphRewriter } from '../../ir/rewriter.js';
export { inputsByName } from '../../ir/ops.js';
export { expectShape, IRTypeError, numAttr } from '../../ir/op-checks.js';
export { TOKENS } from '../../ir/types.js';
export { topKIndices } from '../../ir/interpret/routers.js';
export { softmax } from '../../ir/interpret/math.js';
export { declareBindings, f32Array, i32Array, u32Array, type RenderedKernel } from '../../codegen/kernels/kernel.js';
export { renderTemplateSource, f32Literal } from '../../codegen/kernels/template.js';
export { tokenExpr } from '../../runtime/plan.js';
