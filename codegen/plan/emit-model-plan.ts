// A lowered whole-decoder module (compiler/pipeline.ts compileModelModule) -> the ModelPlan the
// runtime executes: each op of each path through the kernel table (emitSteps, as for an MoE
// block); the KV caches as state buffers; the rope table as a weight the runtime computes.
import { functionOf, type Module } from '../../ir/graph.js';
import type { TargetDescription } from '../../ir/target.js';
import type { RopeSpec } from '../../runtime/rope-table.js';
import type { ModelPlan, PlanKernel, PlanSampler } from '../../runtime/plan.js';
import { renderSampleKernels } from '../kernels/sample/sample.js';
import { asTokenDim } from '../../ir/types.js';
import { tileOf } from '../../ir/ops-lowered.js';
import { isKindRef } from '../../ir/graph.js';
import { routerTokensPerWorkgroup } from '../kernels/router/router.js';
import { emitSteps, maxTokens, noTokenFits, planRequires } from './emit-moe-block-plan.js';
import { builtinKernels, type KernelRegistry } from './kernel-registry.js';
import { PlanBuffers } from './plan-buffers.js';

/** `rope`: the model's rotary spec (passes/lower-attention.ts ropeSpecOf), recorded so the runtime builds the table. */
export function emitModelPlan(module: Module, target: TargetDescription, rope: RopeSpec, kernels: KernelRegistry = builtinKernels): ModelPlan {
  const prefill = functionOf(module, 'prefill');
  const decode = functionOf(module, 'decode');
  if (!prefill || !decode) throw new Error(`${module.name}: a model plan needs prefill and decode functions`);
  const [tokenIds, positions] = prefill.inputs;
  const logits = prefill.outputs[0]!;
  const buffers = new PlanBuffers('', target.weightFormats, { input: (v) => v.name, output: () => 'logits' });
  const rendered = new Map<string, PlanKernel>();
  const paths = [prefill, decode].map((f) => emitSteps(f, buffers, rendered, kernels));
  const maxBinding = target.limits.maxStorageBufferBindingSize;
  for (const w of buffers.buffers.filter((b) => b.role === 'weight' || b.role === 'state')) {
    const bytes = w.elements.constant * (w.dtype === 'f16' ? 2 : 4);
    if (bytes > maxBinding) throw new Error(`${w.name} is ${bytes} bytes, more than the ${maxBinding}-byte storage binding limit`);
  }
  // The MoE blocks' grid caps (grouped GEMM rows, router tiles), read off the first block.
  const route = prefill.ops.find((op) => op.opcode === 'moe.route');
  const align = prefill.ops.find((op) => op.opcode === 'moe.align');
  const tiled = prefill.ops.find((op) => isKindRef(op.attrs['tile'] ?? 0));
  const tile = tiled ? tileOf(tiled.attrs) : target.gemmTile;
  const sortedRows = align ? asTokenDim(align.outputs[0]!.type.shape[0]!) : { perToken: 1, constant: 0 };
  const experts = (route?.attrs['experts'] as number | undefined) ?? 1;
  // The grouped GEMMs' rows per block (moe.align's), which a tuned target may set apart from the dense GEMMs' tile.
  const BM = (align?.attrs['block_rows'] as number | undefined) ?? tile.bm;
  const tokens = maxTokens(buffers.buffers, maxBinding, { sortedRows, BM, routerTile: routerTokensPerWorkgroup(experts) });
  if (tokens < 1) throw new Error(`${module.name}: ${noTokenFits(buffers.buffers, maxBinding)}`); // a plan of 0 tokens per call never runs
  const table = prefill.params.find((p) => p.role === 'rope');
  const steps = paths.flat();
  return {
    format: 'moec.model-plan',
    version: 1,
    name: module.name,
    vocab: logits.type.shape[1] as number,
    hidden: prefill.params.find((p) => p.role === 'embedding')!.type.shape[1] as number,
    context: (prefill.state?.[0]?.type.shape[0] as number | undefined) ?? 0,
    tokenIds: tokenIds!.name,
    positions: positions!.name,
    logits: 'logits',
    weights: buffers.weights,
    buffers: buffers.buffers,
    kernels: [...rendered.values()],
    prefill: paths[0]!,
    decode: paths[1]!,
    decodeMaxTokens: decode.attrs?.['max_tokens'] as number,
    maxTokens: tokens,
    ...(logits.type.dtype === 'f32' ? { sampler: samplerOf(logits.type.shape[1] as number) } : {}),
    ...(table ? { rope: { weight: table.name, kind: rope.kind, params: { ...rope.params }, theta: rope.theta, dim: rope.dim, context: table.type.shape[1] as number } } : {}),
    requires: planRequires(steps, rendered, maxBinding, tile),
    ...(logits.type.dtype === 'f16' ? { features: ['shader-f16'] } : {}),
  };
}

/** The sampling kernels for a vocabulary, as plan data. */
function samplerOf(vocab: number): PlanSampler {
  const { kernels, dispatches, scratchWords } = renderSampleKernels({ vocab });
  return {
    kernels: kernels.map((k) => ({ name: k.name, wgsl: k.wgsl, entryPoint: k.entryPoint, workgroupSize: k.workgroupSize })),
    steps: dispatches.map((d) => ({
      kernel: d.kernel.name,
      bindings: d.kernel.bindings.map((b) => ({ binding: b.binding, name: b.name as 'logits' | 'sample_scratch' | 'sampled', access: b.access })),
      uniformBinding: d.kernel.uniformBinding,
      grid: d.grid,
      ...(d.phase === 'always' ? {} : { phase: d.phase }),
    })),
    scratchWords,
  };
}
