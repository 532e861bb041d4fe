// The fixed parameters of each tuned family for one MoE block, read off its default plan: the
// kernel names (they spell K x N, weight format, activation dtype, token rounding, shared expert)
// plus experts and top-k. Tuner and compiler derive them the same way, so entries match.
import type { MoeBlockPlan } from '../../runtime/plan.js';
import { templateHash, type TemplateReader, type TunedFamily } from './template-hash.js';

export interface FamilyShape {
  family: TunedFamily;
  shape: string;
  templateHash: string;
}

export interface BlockDims {
  hidden: number;
  intermediate: number;
  experts: number;
  topK: number;
  /** The shared expert's intermediate (0 without one), and whether a sigmoid gate scales it. */
  sharedIntermediate: number;
  sharedGate: boolean;
}

const kernelOf = (steps: MoeBlockPlan['prefill'], prefix: string): string | undefined => steps.find((s) => s.kernel.startsWith(prefix))?.kernel;

export function blockDims(plan: MoeBlockPlan): BlockDims {
  const gate = plan.weights.find((w) => w.name.endsWith('.experts.gate'));
  if (!gate) throw new Error(`${plan.name}: no routed experts' gate weight to tune for`);
  const shared = plan.weights.find((w) => w.name.endsWith('.shared.gate'));
  return {
    hidden: plan.hidden, intermediate: gate.shape[1]!, experts: plan.experts, topK: plan.topK,
    sharedIntermediate: shared?.shape[0] ?? 0, sharedGate: plan.weights.some((w) => w.name.endsWith('.shared_gate.weight')),
  };
}

/** The families this block's plan has, with their shapes and current template hashes. */
export function familyShapes(plan: MoeBlockPlan, read?: TemplateReader): FamilyShape[] {
  const routing = `E${plan.experts} K${plan.topK}`;
  const gateUp = kernelOf(plan.prefill, 'grouped_gemm_gateup');
  const down = kernelOf(plan.prefill, 'grouped_gemm_down');
  const decode = plan.decode.map((s) => s.kernel).join(' + ');
  const decodeGateUp = kernelOf(plan.decode, 'decode_gateup');
  const decodeDown = kernelOf(plan.decode, 'decode_down_combine');
  const out: Array<[TunedFamily, string]> = [];
  if (gateUp) out.push(['grouped_gemm.gate_up', `${gateUp} ${routing}`]);
  if (down) out.push(['grouped_gemm.down', `${down} ${routing}`]);
  // Only the fused decode kernels take their rows from the target (a sharded block's GEMVs do not).
  if (decodeGateUp && decodeDown) out.push(['decode.rows', `${decodeGateUp} + ${decodeDown} ${routing}`]);
  if (gateUp && plan.decode !== plan.prefill) out.push(['decode_max_tokens', `decode ${decode} / prefill ${plan.prefill.map((s) => s.kernel).join(' + ')} ${routing}`]);
  return out.map(([family, shape]) => ({ family, shape, templateHash: templateHash(family, shape, read) }));
}
