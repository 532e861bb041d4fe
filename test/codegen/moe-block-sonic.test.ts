// SonicMoE token rounding on WebGPU (compile `token_rounding = sonic(mode, tile)`): the whole block,
// router with probabilities -> rounding (decide, apply) -> route-align with the added pairs ->
// grouped GEMMs -> combine, against the reference interpreter of the block through the round-tokens
// pass (roundTokens on the reference's own routing, then the experts with the added pairs), with
// every scratch buffer poisoned. Decode (T <= 8) routes exactly. The GPU's round_stats equal the
// reference's counts; its weight sums are f32.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { compileReferenceModule } from '../../compiler/pipeline.js';
import { interpretModule } from '../../ir/interpret/interpret.js';
import { decodeRoundStats } from '../../ir/interpret/rounding-ops.js';
import type { Graph } from '../../ir/graph.js';
import { readBackBytes } from '../../runtime/buffer-pool.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { blockGraphOf, families, hiddenOf, normals, randomWeights, relativeError, seededRandom } from './moe-fixtures.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`moe-block-sonic: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const CASES = [
  { family: 'mixtral', rounding: 'sonic(mode = nearest, tile = 16)' },
  { family: 'olmoe', rounding: 'sonic(mode = up, tile = 16)' },
  { family: 'qwen2-moe', rounding: 'sonic(mode = down, tile = 16)' },
  { family: 'deepseek-v3', rounding: 'sonic(mode = nearest, tile = 8)' },
];
const TOKENS = [3, 9, 64, 300];

let rt: GpuRuntime;
beforeAll(async () => {
  rt = await openDevice({ gpu: createNodeGpu() });
});
afterAll(() => rt?.destroy());

/** The reference's round_stats: the prefill function cut after moe.round_apply. */
function referenceStats(prefill: Graph, x: Float32Array, tokens: number, weights: Map<string, Float32Array>) {
  const apply = prefill.ops.findIndex((op) => op.opcode === 'moe.round_apply');
  const graph: Graph = { ...prefill, ops: prefill.ops.slice(0, apply + 1), outputs: [prefill.ops[apply]!.outputs[2]!] };
  const out = interpretModule({ name: 'stats', functions: [graph] }, { hidden_states: { shape: [tokens, x.length / tokens], data: x } }, (p) => weights.get(p.name)!);
  return decodeRoundStats(Object.values(out)[0]!.data as Int32Array);
}

describe.each(CASES)('$family, $rounding', ({ family: name, rounding }) => {
  const family = families.find((f) => f.name === name)!;
  const compile = `target = webgpu\n dtype = f32\n token_rounding = ${rounding}`;
  const { config, graph } = blockGraphOf(family, compile);
  const H = hiddenOf(family);
  const random = seededRandom(seed);
  const weights = randomWeights(graph, random);
  const reference = compileReferenceModule(config, 0);

  it.each(TOKENS)('%i tokens match the reference', async (tokens) => {
    const plan = compileMoeBlockPlan(config, 0);
    const executor = await createMoeBlockExecutor(rt, plan, { readF32: (n) => weights.get(n)! });
    try {
      const x = normals(random, tokens * H, 1);
      executor.poisonScratch(tokens);
      const out = await executor.run(x, tokens);
      const ref = Object.values(interpretModule(reference, { hidden_states: { shape: [tokens, H], data: x } }, (p) => weights.get(p.name)!))[0]!.data as Float32Array;
      const error = relativeError(out, ref, H);
      const prefill = tokens > plan.decodeMaxTokens;
      let report = `${name} ${rounding}, ${tokens} tokens (${prefill ? 'prefill, rounded' : 'decode, exact'}): relative error ${error.toExponential(2)}`;
      expect(error).toBeLessThan(1e-5);
      if (prefill) {
        const expected = referenceStats(reference.functions[0]!, x, tokens, weights);
        const gpu = decodeRoundStats(new Uint32Array(await readBackBytes(rt.device, executor.scratchBuffer('round_stats'), 32)));
        expect([gpu.paddedRowsBefore, gpu.paddedRowsAfter, gpu.tokensDropped, gpu.tokensAdded]).toEqual([expected.paddedRowsBefore, expected.paddedRowsAfter, expected.tokensDropped, expected.tokensAdded]);
        expect(gpu.weightMassChanged).toBeCloseTo(expected.weightMassChanged, 5);
        report += `; padded rows ${gpu.paddedRowsBefore} -> ${gpu.paddedRowsAfter}, dropped ${gpu.tokensDropped}, added ${gpu.tokensAdded}, weight mass changed ${(100 * gpu.weightMassChanged).toFixed(1)}%`;
      }
      console.log(report);
    } finally {
      executor.destroy();
    }
  });
});
