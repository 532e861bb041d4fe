// Spec -> one MoE block's plan: the pipeline lowers the block for the target, codegen maps the
// lowered ops onto kernels. What `moec run`, the bundle and the tests compile.
import { emitMoeBlockPlan } from '../codegen/plan/emit-moe-block-plan.js';
import type { ModelConfig } from '../ir/model-config.js';
import type { TargetDescription } from '../ir/target.js';
import type { MoeBlockPlan } from '../runtime/plan.js';
import type { Module } from '../ir/graph.js';
import { compileMoeBlockModule, defaultTarget, type PipelineOptions } from './pipeline.js';

export interface PlanOptions extends Omit<PipelineOptions, 'target'> {
  /** Overrides of the default WebGPU target (a larger storage binding, another tile). */
  target?: Partial<TargetDescription>;
  /** Shorthand for target.limits.maxStorageBufferBindingSize. */
  maxStorageBufferBindingSize?: number;
  /** Whole models only: count each MoE layer's routing on the GPU (the trace-routing pass, for `moec trace`). */
  traceRouting?: boolean;
}

export function planTarget(options: PlanOptions = {}): TargetDescription {
  const base = defaultTarget(options.target, options.registry);
  const maxBinding = options.maxStorageBufferBindingSize;
  return maxBinding === undefined ? base : { ...base, limits: { ...base.limits, maxStorageBufferBindingSize: maxBinding } };
}

export function compileMoeBlock(config: ModelConfig, layer: number, options: PlanOptions = {}): { module: Module; plan: MoeBlockPlan; target: TargetDescription } {
  const target = planTarget(options);
  const module = compileMoeBlockModule(config, layer, { ...options, target });
  return { module, plan: emitMoeBlockPlan(module, target, options.registry?.kernels), target };
}

export function compileMoeBlockPlan(config: ModelConfig, layer: number, options: PlanOptions = {}): MoeBlockPlan {
  return compileMoeBlock(config, layer, options).plan;
}
