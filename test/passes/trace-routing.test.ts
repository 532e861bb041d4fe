// The trace-routing pass (not a default pass, so no golden directory here: golden.test.ts takes
// every folder of test/passes for a pass of the pipeline). compileModel's traceRouting adds it
// before legalize-webgpu: each function gets a u32 counter state per MoE layer and ends with one
// moe.trace_routes per layer, reading the routing ids the experts read (after token rounding's
// in-place drops). On the interpreter, the traced lowered model counts exactly what a plain count
// of the model-level graph's route ids gives, over a prefill, decode steps and a chunk, and its
// logits are bit-identical to the untraced model's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../compiler/model-plan.js';
import { defaultPasses } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Value } from '../../ir/graph.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { printGraph } from '../../ir/print.js';
import { ropeSpecOf } from '../../passes/lower-attention.js';
import { traceStateName } from '../../passes/trace-routing.js';
import { buildRopeTable } from '../../runtime/rope-table.js';
import { randomDecoderWeights } from '../support/decoder-weights.js';
import { countRoutesByReference, TracedSession } from '../support/routing-counts.js';
import { seededRandom } from '../support/seeded-random.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');
const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`trace-routing: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

/** A tiny example with `layers` layers (tiny-deepseek-v3 needs 3 for two MoE layers: layer 0 is dense) and a small context. */
function spec(name: string, layers = 2, rounding = 'exact') {
  const source = readFileSync(join(examples, `${name}.moe`), 'utf8').replace('layers = 2', `layers = ${layers}`)
    .replace('token_rounding = exact', `token_rounding = ${rounding}`).replace('compile {', 'compile {\n  context = 64');
  const { config, diagnostics } = checkSpec(source, `${name}.moe`);
  expect(diagnostics).toEqual([]);
  return config!;
}

describe('trace-routing', () => {
  it('is not a default pass', () => {
    expect(defaultPasses.map((p) => p.name)).not.toContain('trace-routing');
  });

  it('adds one u32 counter state per MoE layer and one moe.trace_routes per layer at the end of each path', () => {
    const config = spec('tiny-deepseek-v3', 3);
    const { module, plan } = compileModel(config, { traceRouting: true, verifyEach: true });
    for (const f of module.functions) {
      const text = printGraph(f).split('\n');
      expect(text.filter((l) => l.includes('moe.trace'))).toEqual([
        '  state %layers.1.moe.trace: [272] u32',
        '  state %layers.2.moe.trace: [16] u32',
        '  %layers.1.moe.traced = moe.trace_routes(%layers.1.moe.route_ids, %layers.2.moe.route_ids, %layers.1.moe.trace) {experts = 16, next_experts = 16} : [272] u32',
        '  %layers.2.moe.traced = moe.trace_routes(%layers.2.moe.route_ids, %layers.2.moe.trace) {experts = 16, next_experts = 0} : [16] u32',
      ]);
      expect(f.ops.slice(-2).map((op) => op.opcode)).toEqual(['moe.trace_routes', 'moe.trace_routes']);
      expect(f.state!.slice(0, 3).map((s) => s.name)).toEqual(['layers.0.kv_cache_k', 'layers.1.kv_cache_k', 'layers.2.kv_cache_k']); // the caches first, as before
    }
    expect(plan.buffers.filter((b) => b.name.endsWith('.moe.trace'))).toEqual([
      { name: 'layers.1.moe.trace', role: 'state', dtype: 'u32', elements: { perToken: 0, constant: 272 } },
      { name: 'layers.2.moe.trace', role: 'state', dtype: 'u32', elements: { perToken: 0, constant: 16 } },
    ]);
    expect(plan.context).toBe(64);
    const untraced = compileModel(config).plan;
    expect(plan.prefill.length).toBe(untraced.prefill.length + 2);
    expect(plan.decode.length).toBe(untraced.decode.length + 2);
  });

  it('reads the route ids after token rounding rewrote them in place (prefill), the router\'s on decode', () => {
    const config = spec('tiny-mixtral', 2, 'sonic(mode = nearest, tile = 4)');
    const { module } = compileModel(config, { traceRouting: true });
    for (const f of module.functions) {
      const trace = f.ops.find((op) => op.opcode === 'moe.trace_routes')!;
      const rounded = f.ops.find((op) => op.opcode === 'moe.round_apply' && op.inputs[0]!.name === 'layers.0.moe.route_ids');
      const router = f.ops.find((op) => op.opcode === 'moe.route' && op.outputs[0]!.name === 'layers.0.moe.route_ids')!;
      expect(trace.inputs[0]).toBe(rounded ? rounded.outputs[0] : router.outputs[0]);
      expect(rounded !== undefined).toBe(f.name === 'prefill');
    }
  });

  describe.each([['tiny-mixtral', 2], ['tiny-qwen2-moe', 2], ['tiny-deepseek-v3', 3]] as const)('%s on the interpreter', (name, layers) => {
    it('counts what the model-level graph routes, call after call; logits untouched', () => {
      const config = spec(name, layers);
      const graph = buildModelGraph(config);
      const weights = randomDecoderWeights(graph, seededRandom(seed));
      const table = buildRopeTable(ropeSpecOf(config), 64);
      const weight = (p: Value) => (p.role === 'rope' ? table : weights.get(p.name)!);
      const ids = Array.from({ length: 20 }, (_, i) => (i * 37 + 11) % 256);
      const calls = [ids.slice(0, 12), ids.slice(12, 13), ids.slice(13, 14), ids.slice(14, 17)];
      const moeLayers = moeLayerIndices(config);
      const want = countRoutesByReference(graph, weight, moeLayers, config.moe!.experts, calls);
      const traced = new TracedSession(compileModel(config, { traceRouting: true }).module, weight);
      const plain = new TracedSession(compileModel(config).module, weight);
      for (const call of calls) expect(traced.forward(call).data).toEqual(plain.forward(call).data);
      moeLayers.forEach((layer, i) => expect(traced.counters(traceStateName(layer)), `layer ${layer}`).toEqual(want[i]));
      // Every chosen slot counted: K per token per layer (no null experts in these routers).
      for (const counters of want) expect(counters.slice(0, config.moe!.experts).reduce((a, b) => a + b, 0)).toBe(17 * config.moe!.topK);
    });
  });
});
