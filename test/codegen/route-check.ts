// GPU routing vs the CPU reference, token by token: a token may route differently only where its
// f64 decision margin is a genuine near-tie (route-margins.ts); those tokens are excluded from
// the error measure, any other difference is reported.
import type { Graph } from '../../ir/graph.js';
import type { KindRef } from '../../ir/model-config.js';
import { readBackBytes } from '../../runtime/buffer-pool.js';
import type { MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { referenceRoute } from './moe-fixtures.js';
import { decisionMargin } from './route-margins.js';

/** A token whose GPU and CPU routing differ is excused only if its f64 decision margin is below this. */
export const NEAR_TIE = 1e-5;

export interface RouteCheck {
  excluded: number[];
  unexplained: string[];
}

/**
 * `weights`: the values both sides compute with (dequantized where the plan quantizes).
 * `storedExperts`: under mixed precision the GPU's ids are storage positions; the expert at each.
 */
export async function checkRouting(device: GPUDevice, executor: MoeBlockExecutor, graph: Graph, x: Float32Array, tokens: number, weights: Map<string, Float32Array>, storedExperts?: number[]): Promise<RouteCheck> {
  const route = graph.ops.find((op) => op.opcode === 'moe.route')!;
  const router = route.attrs['router'] as KindRef;
  const K = route.attrs['top_k'] as number;
  const gpuIds = new Int32Array(await readBackBytes(device, executor.scratchBuffer('route_ids'), tokens * K * 4)).map((e) => (storedExperts && e >= 0 ? storedExperts[e]! : e));
  const gpuWeights = new Float32Array(await readBackBytes(device, executor.scratchBuffer('routing_weights'), tokens * K * 4));
  const ref = referenceRoute(graph, x, tokens, weights);
  const [w, bias, correction] = [route.inputs[1]!, ...route.inputs.slice(2)];
  const routerWeight = weights.get(w.name)!;
  const routerBias = bias && bias.name.endsWith('router.bias') ? weights.get(bias.name) : undefined;
  const correctionBias = [bias, correction].find((v) => v?.name.endsWith('correction_bias'));
  const E = w.type.shape[0] as number;
  const H = w.type.shape[1] as number;
  const check: RouteCheck = { excluded: [], unexplained: [] };
  for (let t = 0; t < tokens; t++) {
    const slots = Array.from({ length: K }, (_, k) => t * K + k);
    const key = (ids: Int32Array, ws: Float32Array) => slots.map((s) => [ids[s]!, ws[s]!] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const a = key(gpuIds, gpuWeights);
    const b = key(ref.ids, ref.weights);
    const same = a.every(([id, wt], i) => id === b[i]![0] && Math.abs(wt - b[i]![1]) <= NEAR_TIE * Math.max(1, Math.abs(b[i]![1])));
    if (same) continue;
    const logits = Array.from({ length: E }, (_, e) => {
      let acc = routerBias ? routerBias[e]! : 0;
      for (let h = 0; h < H; h++) acc += x[t * H + h]! * routerWeight[e * H + h]!;
      return acc;
    });
    const margin = decisionMargin(logits, router, K, correctionBias && weights.get(correctionBias.name));
    if (margin < NEAR_TIE) check.excluded.push(t);
    else check.unexplained.push(`token ${t}: gpu ${JSON.stringify(a)} vs cpu ${JSON.stringify(b)}, f64 decision margin ${margin.toExponential(2)}`);
  }
  return check;
}
