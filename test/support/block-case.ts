// Fresh random weights for one MoE layer's block and, per token count, an input and the CPU
// interpreter's output: what the tuning tests compare a compiled or tuned block with.
import { compileReferenceModule } from '../../compiler/pipeline.js';
import { interpretModule } from '../../ir/interpret/interpret.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { seededRandom } from './seeded-random.js';

function normals(random: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}

export interface BlockRun {
  layer: number;
  tokens: number;
  x: Float32Array;
  expected: Float32Array;
}

export function blockCase(config: ModelConfig, layer: number, tokenCounts: readonly number[], seed: number): { weights: Map<string, Float32Array>; runs: BlockRun[] } {
  const reference = compileReferenceModule(config, layer);
  const f = reference.functions[0]!;
  const random = seededRandom(seed);
  const weights = new Map(f.params.map((p) => {
    const shape = p.type.shape as number[];
    const std = (p.name.endsWith('router.weight') ? 2 : 1) / Math.sqrt(shape[shape.length - 1]!);
    return [p.name, normals(random, shape.reduce((a, d) => a * d, 1), std)] as const;
  }));
  const runs = tokenCounts.map((tokens) => {
    const x = normals(random, tokens * config.hidden, 1);
    const out = interpretModule(reference, { [f.inputs[0]!.name]: { shape: [tokens, config.hidden], data: x } }, (p) => weights.get(p.name)!);
    return { layer, tokens, x, expected: out[f.outputs[0]!.name]!.data as Float32Array };
  });
  return { weights, runs };
}
