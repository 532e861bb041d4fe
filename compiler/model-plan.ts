// Spec -> the whole decoder's plan: the pipeline lowers every layer for the target (legalized),
// codegen maps the lowered ops onto kernels. What the bundle, `moec run` generation and the tests
// compile.
import { emitModelPlan } from '../codegen/plan/emit-model-plan.js';
import { buildModelGraph } from '../ir/build-model.js';
import { moduleOf, type Module } from '../ir/graph.js';
import type { ModelConfig } from '../ir/model-config.js';
import type { TargetDescription } from '../ir/target.js';
import { legalizeWebgpu } from '../passes/legalize-webgpu.js';
import { ropeSpecOf } from '../passes/lower-attention.js';
import type { Pass } from '../passes/pass.js';
import { traceRouting } from '../passes/trace-routing.js';
import type { ModelPlan } from '../runtime/plan.js';
import { planTarget, type PlanOptions } from './moe-block-plan.js';
import { defaultPasses, runPasses } from './pipeline.js';

export function compileModel(config: ModelConfig, options: PlanOptions = {}): { module: Module; plan: ModelPlan; target: TargetDescription } {
  // The attention kernels read and write f32 activations (codegen/kernels/attention).
  if (config.compile.dtype === 'f16') throw new Error(`${config.name}: whole-model plans store activations in f32; compile { dtype = f16 } runs MoE blocks only (moec run --layer)`);
  const target = planTarget(options);
  const passes = options.passes ?? options.registry?.passes ?? defaultPasses;
  const module = runPasses(moduleOf(buildModelGraph(config)), config, { ...options, target, passes: options.traceRouting ? withTraceRouting(passes) : passes });
  return { module, plan: emitModelPlan(module, target, ropeSpecOf(config), options.registry?.kernels), target };
}

/** The trace-routing pass last before legalization (or last): every pass that touches the routing has run. */
function withTraceRouting(passes: readonly Pass[]): Pass[] {
  const at = passes.indexOf(legalizeWebgpu);
  return at < 0 ? [...passes, traceRouting] : [...passes.slice(0, at), traceRouting, ...passes.slice(at)];
}
