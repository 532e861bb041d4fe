// Shared by the placement tests: the synthetic traces of issue 10 (64 experts, 24 MoE layers,
// Zipf 1.2, correlated layers), a spec that matches them, and a reference measurement of a
// placement written independently of compiler/placement: token by token, replica by replica.
import { expect } from 'vitest';
import { syntheticRouting, type SyntheticRouting } from '../../compiler/placement/synthetic-trace.js';

export const EXPERTS = 64;
export const DEVICES = 8;
export const TOP_K = 2;
/** Model layer 0 is dense (first_layer = 1), so MoE layers are 1..24. */
export const MOE_LAYERS = Array.from({ length: 24 }, (_, i) => i + 1);

export const placementSpec = (experts = EXPERTS, topK = TOP_K): string => `
model "placement-test" {
  hidden = 256
  vocab = 64
  layers = 25
  norm = rmsnorm(eps = 1e-6)
  attention = gqa(heads = 4)
  moe {
    experts = ${experts}
    top_k = ${topK}
    router = softmax_topk(renormalize = true)
    expert = swiglu(intermediate = 128)
    first_layer = 1
  }
  dense {
    mlp = swiglu(intermediate = 512)
  }
}
compile {
  target = webgpu
  dtype = f32
}
`;

export function skewedRouting(seed: number, tokens = 4096): SyntheticRouting {
  return syntheticRouting({ experts: EXPERTS, moeLayers: MOE_LAYERS, tokens, topK: TOP_K, seed, model: 'placement-test' });
}

export interface ReferenceFigures {
  maxLoadPerLayer: number[];
  meanLoadPerLayer: number[];
  crossPerLayer: number[];
}

/**
 * Each token's choice of expert e sends 1/r_e of it to each replica's device; each pair of its
 * choices (a at layer l, b at l+1) crosses devices by 1/(r_a r_b) per replica pair on different devices.
 */
export function simulateTokens(choices: readonly Int32Array[], topK: number, map: readonly (readonly number[])[], slotsPerDevice: number, devices: number): ReferenceFigures {
  const replicaDevices = map.map((row) => {
    const byExpert = new Map<number, number[]>();
    row.forEach((expert, slot) => byExpert.set(expert, [...(byExpert.get(expert) ?? []), Math.floor(slot / slotsPerDevice)]));
    return byExpert;
  });
  const tokens = choices[0]!.length / topK;
  const maxLoadPerLayer: number[] = [];
  const meanLoadPerLayer: number[] = [];
  const crossPerLayer: number[] = [];
  choices.forEach((layerChoices, l) => {
    const loads = new Array<number>(devices).fill(0);
    for (const expert of layerChoices) {
      const where = replicaDevices[l]!.get(expert)!;
      for (const d of where) loads[d]! += 1 / where.length;
    }
    maxLoadPerLayer.push(Math.max(...loads));
    meanLoadPerLayer.push(loads.reduce((a, b) => a + b, 0) / devices);
    let cross = 0;
    if (l + 1 < choices.length) {
      for (let t = 0; t < tokens; t++) {
        for (let a = 0; a < topK; a++) {
          for (let b = 0; b < topK; b++) {
            const from = replicaDevices[l]!.get(layerChoices[t * topK + a]!)!;
            const to = replicaDevices[l + 1]!.get(choices[l + 1]![t * topK + b]!)!;
            for (const p of from) for (const q of to) if (p !== q) cross += 1 / (from.length * to.length);
          }
        }
      }
    }
    crossPerLayer.push(cross);
  });
  return { maxLoadPerLayer, meanLoadPerLayer, crossPerLayer };
}

/** Every layer's row has devices x slots entries, each an expert, every expert at least once. */
export function expectValidPlacement(map: readonly (readonly number[])[], layers: number, experts: number, slots: number): void {
  expect(map).toHaveLength(layers);
  for (const row of map) {
    expect(row).toHaveLength(slots);
    for (const e of row) expect(Number.isInteger(e) && e >= 0 && e < experts).toBe(true);
    expect(new Set(row).size).toBe(experts);
  }
}
