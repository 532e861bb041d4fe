// The skip-experts example plugin (examples/plugins/skip-experts/): its pass in the built CLI's
// pipeline, its op's reference semantics on hand-computed routing, and its WebGPU kernel inside
// whole MoE blocks (both paths, the fused decode path included) against the CPU reference
// interpreter running the same registry, with every scratch and output buffer poisoned (NaN).
// The per-token skip counts the kernel writes are read back and compared with the interpreter's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { compileMoeBlockGraph, compileModelGraph, runPasses } from '../../compiler/pipeline.js';
import type { MoecPlugin } from '../../compiler/plugins/plugin-api.js';
import { Registry } from '../../compiler/plugins/registry.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { moduleOf, type Graph, type Op, type Value } from '../../ir/graph.js';
import { interpretGraph, type HostTensor } from '../../ir/interpret/interpret.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { printGraph } from '../../ir/print.js';
import { TOKENS } from '../../ir/types.js';
import { readBackBytes } from '../../runtime/buffer-pool.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { ensureBuiltCli, moec, ROOT } from '../bundle/cli.js';
import { families, normals, randomWeights, referenceRoute, relativeError, seededRandom, specOf } from '../codegen/moe-fixtures.js';
import { checkRouting, NEAR_TIE } from '../codegen/route-check.js';

const DIR = join(ROOT, 'examples', 'plugins', 'skip-experts');
const SPEC = join(DIR, 'skip-experts.moe');
const TOKEN_COUNTS = [1, 5, 8, 9, 64, 300];
const TOLERANCE = 1e-5;

interface SkipModule {
  default: MoecPlugin;
  DEFAULT_BETA: number;
  skipExperts(options?: { beta?: number; renormalize?: boolean }): MoecPlugin;
}

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`skip-experts: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

let plugin: SkipModule;
const results: string[] = [];

beforeAll(async () => {
  // The plugin imports `moec/plugin` (dist/compiler/plugins/index.js): build it first.
  ensureBuiltCli();
  plugin = (await import(pathToFileURL(join(DIR, 'skip-experts.js')).href)) as SkipModule;
});

const registryWith = (options?: { beta?: number; renormalize?: boolean }) => Registry.builtin().with(plugin.skipExperts(options));
const skipOpOf = (graph: Graph): Op => graph.ops.find((op) => op.opcode === 'moe.skip_experts')!;

describe('the skip-experts pass in `moec ir`', () => {
  it('runs right after quantize-weights and keeps the decode path fused', async () => {
    const { status, stdout, stderr } = await moec(['ir', SPEC, '--layer', '0', '--print-ir-after=all']);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    const headers = stdout.split('\n').filter((l) => l.startsWith('// IR after'));
    expect(headers.slice(0, 4)).toEqual(['// IR after build', '// IR after quantize-weights', '// IR after skip-experts', '// IR after set-activation-dtype']);
    const afterSkip = stdout.slice(stdout.indexOf('// IR after skip-experts'), stdout.indexOf('// IR after set-activation-dtype'));
    expect(afterSkip).toContain('= moe.skip_experts(%layers.0.moe.route_ids, %layers.0.moe.routing_weights) {beta = 0.3, renormalize = false}');
    expect(afterSkip).toContain('moe.experts(%hidden_states, %layers.0.moe.kept_route_ids, %layers.0.moe.kept_routing_weights');
    // The last pass's output: the decode path is router, skip, the two fused kernels.
    const last = stdout.slice(stdout.lastIndexOf('// IR after legalize-webgpu'));
    const decode = last.slice(last.indexOf('graph @decode'));
    const opcodes = [...decode.matchAll(/^ {2}%[^=]*= ([\w.]+)\(/gm)].map((m) => m[1]);
    expect(opcodes).toEqual(['moe.route', 'moe.skip_experts', 'moe.decode_gate_up', 'moe.decode_down_combine']);
    expect(decode).toContain('moe.decode_down_combine(%layers.0.moe.kept_route_ids, %layers.0.moe.kept_routing_weights');
    expect(last).toContain('// @prefill: 6 dispatches');
    expect(last).toContain('// @decode: 4 dispatches');
  });
});

describe('the skip-experts pass', () => {
  it('puts one moe.skip_experts after every router, and a second run changes nothing', () => {
    const config = checked(readFileSync(SPEC, 'utf8'), SPEC);
    const registry = registryWith();
    const once = compileMoeBlockGraph(config, 0, { registry });
    expect(once.ops.map((op) => op.opcode)).toEqual(['moe.route', 'moe.skip_experts', 'moe.experts']);
    const pass = registry.passes.find((p) => p.name === 'skip-experts')!;
    const twice = runPasses(moduleOf(once), config, { registry, passes: [pass] }).functions[0]!;
    expect(printGraph(twice)).toBe(printGraph(once));
    // The whole decoder: one per MoE layer (tiny-mixtral has two).
    const model = compileModelGraph(config, { registry });
    expect(model.ops.filter((op) => op.opcode === 'moe.skip_experts')).toHaveLength(config.layers);
  });
});

describe('moe.skip_experts in the reference interpreter', () => {
  /** A graph of the one op over route ids and weights given as inputs. */
  function skipGraph(k: number, attrs: { beta: number; renormalize: boolean }): Graph {
    const ids: Value = { id: 0, name: 'route_ids', type: { shape: [TOKENS, k], dtype: 'i32' } };
    const weights: Value = { id: 1, name: 'routing_weights', type: { shape: [TOKENS, k], dtype: 'f32' } };
    const outputs: Value[] = [
      { id: 2, name: 'kept_route_ids', type: { shape: [TOKENS, k], dtype: 'i32' } },
      { id: 3, name: 'kept_routing_weights', type: { shape: [TOKENS, k], dtype: 'f32' } },
      { id: 4, name: 'skipped_slots', type: { shape: [TOKENS], dtype: 'u32' } },
    ];
    return { name: 'skip', inputs: [ids, weights], params: [], ops: [{ opcode: 'moe.skip_experts', inputs: [ids, weights], outputs, attrs }], outputs };
  }

  function run(beta: number, renormalize: boolean, ids: number[][], weights: number[][]) {
    const k = ids[0]!.length;
    const shape = [ids.length, k];
    const out = interpretGraph(
      skipGraph(k, { beta, renormalize }),
      { route_ids: { shape, data: Int32Array.from(ids.flat()) }, routing_weights: { shape, data: Float32Array.from(weights.flat()) } },
      () => new Float32Array(0),
      registryWith({ beta, renormalize }).semantics,
    );
    const rows = (t: HostTensor) => Array.from({ length: ids.length }, (_, i) => Array.from(t.data.subarray(i * k, (i + 1) * k)));
    return { ids: rows(out['kept_route_ids']!), weights: rows(out['kept_routing_weights']!), skipped: Array.from(out['skipped_slots']!.data) };
  }

  // beta = 0.5; every weight and product exact in f32.
  const TOP2_IDS = [[3, 5], [1, 2], [4, -1], [6, 7], [0, 1], [2, 3]];
  const TOP2_WEIGHTS = [
    [0.5, 0.25], // w2 = beta w1 exactly: kept (the test is strict)
    [0.75, 0.25], // 0.25 < 0.375: skipped
    [1, 0], // an empty slot stays empty, nothing skipped
    [0.125, 0.625], // the largest weight in slot 1: slot 0 is the one skipped
    [0.5, 0.5], // equal weights: both kept
    [0.5, 0.24999998], // just below the threshold: skipped
  ];

  it('top-2: skips below beta times the largest weight, keeps at it, leaves -1 slots alone', () => {
    const r = run(0.5, false, TOP2_IDS, TOP2_WEIGHTS);
    expect(r.ids).toEqual([[3, 5], [1, -1], [4, -1], [-1, 7], [0, 1], [2, -1]]);
    expect(r.weights).toEqual([[0.5, 0.25], [0.75, 0], [1, 0], [0, 0.625], [0.5, 0.5], [0.5, 0]]);
    expect(r.skipped).toEqual([0, 1, 0, 1, 0, 1]);
  });

  it('top-2 renormalized: the kept weight takes the skipped one\'s share; unskipped tokens are untouched', () => {
    const r = run(0.5, true, TOP2_IDS, TOP2_WEIGHTS);
    expect(r.ids).toEqual([[3, 5], [1, -1], [4, -1], [-1, 7], [0, 1], [2, -1]]);
    const expected = [[0.5, 0.25], [1, 0], [1, 0], [0, 0.75], [0.5, 0.5], [0.74999998, 0]];
    r.weights.flat().forEach((w, i) => expect(w).toBeCloseTo(expected.flat()[i]!, 6));
    expect(r.weights[0]).toEqual([0.5, 0.25]);
    expect(r.skipped).toEqual([0, 1, 0, 1, 0, 1]);
  });

  it('top-3: every slot below the threshold goes, the largest never', () => {
    const ids = [[0, 1, 2], [3, 4, 5], [2, 5, -1], [7, 6, 1], [1, 2, 3]];
    const weights = [[0.625, 0.25, 0.125], [0.875, 0.0625, 0.0625], [0.75, 0.25, 0], [0.25, 0.5, 0.25], [0.5, 0.5, 0.5]];
    // beta 0.25: thresholds 0.15625, 0.21875, 0.1875, 0.125, 0.125.
    const r = run(0.25, false, ids, weights);
    expect(r.ids).toEqual([[0, 1, -1], [3, -1, -1], [2, 5, -1], [7, 6, 1], [1, 2, 3]]);
    expect(r.weights).toEqual([[0.625, 0.25, 0], [0.875, 0, 0], [0.75, 0.25, 0], [0.25, 0.5, 0.25], [0.5, 0.5, 0.5]]);
    expect(r.skipped).toEqual([1, 2, 0, 0, 0]);
    const renormalized = run(0.25, true, ids, weights);
    expect(renormalized.weights[1]).toEqual([1, 0, 0]);
    expect(renormalized.weights[0]![0]! + renormalized.weights[0]![1]!).toBeCloseTo(1, 6);
    expect(renormalized.weights[0]![0]! / renormalized.weights[0]![1]!).toBeCloseTo(2.5, 6);
  });

  it('beta 0 skips nothing, beta 1 everything below the largest weight', () => {
    const ids = [[0, 1, 2]];
    const weights = [[0.5, 0.5, 0.25]];
    expect(run(0, false, ids, weights).skipped).toEqual([0]);
    expect(run(1, false, ids, weights).ids).toEqual([[0, 1, -1]]);
  });

  it('refuses a beta outside [0, 1]', () => {
    expect(() => plugin.skipExperts({ beta: 1.5 })).toThrow(/beta must be in \[0, 1\]/);
    expect(() => plugin.skipExperts({ beta: -0.1 })).toThrow(/beta must be in \[0, 1\]/);
  });
});

/** The example spec (tiny-mixtral, top-2) and two moe-fixtures families: top-3 unnormalized, top-4 with a gated shared expert. */
const CASES: { name: string; config: () => ModelConfig }[] = [
  { name: 'skip-experts.moe', config: () => checked(readFileSync(SPEC, 'utf8'), SPEC) },
  { name: 'olmoe', config: () => checked(specOf(families.find((f) => f.name === 'olmoe')!), 'olmoe.moe') },
  { name: 'qwen2-moe', config: () => checked(specOf(families.find((f) => f.name === 'qwen2-moe')!), 'qwen2-moe.moe') },
];

function checked(source: string, file: string): ModelConfig {
  const result = checkSpec(source, file);
  if (!result.config) throw new Error(`${file}: ${result.diagnostics.map((d) => d.message).join('; ')}`);
  return result.config;
}

/** The CPU reference block output and, with the skip op, its per-token skip counts. */
function referenceOf(graph: Graph, registry: Registry, x: Float32Array, tokens: number, weights: Map<string, Float32Array>) {
  const skip = graph.ops.find((op) => op.opcode === 'moe.skip_experts');
  const withCounts: Graph = skip ? { ...graph, outputs: [...graph.outputs, skip.outputs[2]!] } : graph;
  const H = graph.inputs[0]!.type.shape[1] as number;
  const out = interpretGraph(withCounts, { hidden_states: { shape: [tokens, H], data: x } }, (p) => weights.get(p.name)!, registry.semantics);
  return { out: out[graph.outputs[0]!.name]!.data as Float32Array, skipped: skip ? Int32Array.from(out[skip.outputs[2]!.name]!.data) : undefined };
}

/** Tokens whose skip decision sits within NEAR_TIE of the threshold (the GPU router's weights may differ by an ulp). */
function skipNearTies(graph: Graph, x: Float32Array, tokens: number, weights: Map<string, Float32Array>, beta: number): number[] {
  const route = referenceRoute(graph, x, tokens, weights);
  const K = route.ids.length / tokens;
  const ties: number[] = [];
  for (let t = 0; t < tokens; t++) {
    const slots = Array.from({ length: K }, (_, k) => t * K + k).filter((s) => route.ids[s] !== -1);
    const wmax = Math.max(...slots.map((s) => route.weights[s]!));
    if (slots.some((s) => Math.abs(route.weights[s]! - beta * wmax) < NEAR_TIE * wmax)) ties.push(t);
  }
  return ties;
}

describe('moe.skip_experts on WebGPU, inside the MoE block', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
  });
  afterAll(() => {
    console.log(['case               renorm  tokens  path     rel.error  skipped (gpu = cpu)  change vs no skipping  excluded', ...results].join('\n'));
    rt?.destroy();
  });

  CASES.forEach((c, index) => [false, true].forEach((renormalize) => {
    describe(`${c.name}, beta ${0.3}${renormalize ? ', renormalized' : ''}`, () => {
      const beta = 0.3;
      let config: ModelConfig;
      let registry: Registry;
      let graph: Graph;
      let plain: Graph;
      let executor: MoeBlockExecutor;
      let weights: Map<string, Float32Array>;
      let random: () => number;

      beforeAll(async () => {
        config = c.config();
        registry = registryWith({ beta, renormalize });
        graph = compileMoeBlockGraph(config, 0, { registry });
        plain = compileMoeBlockGraph(config, 0);
        random = seededRandom(seed + 1_000_003 * (2 * index + Number(renormalize)));
        weights = randomWeights(graph, random);
        const plan = compileMoeBlockPlan(config, 0, { registry });
        expect(plan.decode.map((s) => s.label).slice(0, 2)).toEqual(['router', `skip experts (beta ${beta})`]);
        expect(plan.prefill.map((s) => s.label).slice(0, 2)).toEqual(['router', `skip experts (beta ${beta})`]);
        executor = await createMoeBlockExecutor(rt, plan, { readF32: (name) => weights.get(name)! });
      });
      afterAll(() => executor?.destroy());

      for (const tokens of TOKEN_COUNTS) {
        it(`${tokens} token${tokens > 1 ? 's' : ''} match the reference, skip counts included`, async () => {
          const H = graph.inputs[0]!.type.shape[1] as number;
          const K = skipOpOf(graph).inputs[0]!.type.shape[1] as number;
          const x = normals(random, tokens * H, 1);
          executor.poisonScratch(tokens);
          const out = await executor.run(x, tokens);
          await rt.settle();
          const gpuSkipped = new Uint32Array(await readBackBytes(rt.device, executor.scratchBuffer('skipped_slots'), tokens * 4));
          const ref = referenceOf(graph, registry, x, tokens, weights);
          const routing = await checkRouting(rt.device, executor, graph, x, tokens, weights);
          expect(routing.unexplained, 'routing differs from the reference without a near-tie').toEqual([]);
          const excluded = new Set([...routing.excluded, ...skipNearTies(graph, x, tokens, weights, beta)]);
          const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !excluded.has(t));
          const error = relativeError(out, ref.out, H, kept);
          const cpuSkipped = ref.skipped!;
          const sum = (a: ArrayLike<number>, rows: number[]) => rows.reduce((n, t) => n + a[t]!, 0);
          const change = relativeError(ref.out, referenceOf(plain, Registry.builtin(), x, tokens, weights).out, H);
          const path = tokens <= executor.plan.decodeMaxTokens ? 'decode' : 'prefill';
          const all = Array.from({ length: tokens }, (_, t) => t);
          results.push(`${c.name.padEnd(18)} ${String(renormalize).padEnd(6)} ${String(tokens).padStart(6)}  ${path.padEnd(8)} ${error.toExponential(2).padStart(9)}  ` +
            `${`${sum(gpuSkipped, all)}/${tokens * K} (${sum(cpuSkipped, all)})`.padEnd(19)}  ${change.toExponential(2).padStart(21)}  ${excluded.size}`);
          expect(out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
          expect(error).toBeLessThan(TOLERANCE);
          expect(kept.map((t) => gpuSkipped[t]), 'skipped slots per token').toEqual(kept.map((t) => cpuSkipped[t]));
          if (excluded.size === 0) expect(sum(gpuSkipped, all)).toBe(sum(cpuSkipped, all));
          expect(excluded.size, 'near-ties should be rare').toBeLessThanOrEqual(Math.max(1, tokens / 20));
        });
      }
    });
  }));
});

describe('what skipping costs in accuracy (CPU reference, random weights)', () => {
  it('fraction of expert evaluations skipped and the block output change, by beta, with and without renormalization', () => {
    const config = checked(readFileSync(SPEC, 'utf8'), SPEC);
    const plain = compileMoeBlockGraph(config, 0);
    const random = seededRandom(seed + 77);
    const weights = randomWeights(plain, random);
    const tokens = 2048;
    const H = config.hidden;
    const x = normals(random, tokens * H, 1);
    const base = referenceOf(plain, Registry.builtin(), x, tokens, weights).out;
    const lines = ['beta  renorm  skipped  output change (rel. L2)'];
    for (const beta of [0.1, 0.3, 0.5]) {
      const fractions: number[] = [];
      for (const renormalize of [false, true]) {
        const registry = registryWith({ beta, renormalize });
        const ref = referenceOf(compileMoeBlockGraph(config, 0, { registry }), registry, x, tokens, weights);
        const skipped = ref.skipped!.reduce((n, v) => n + v, 0) / (tokens * 2);
        fractions.push(skipped);
        const change = relativeError(ref.out, base, H);
        lines.push(`${beta.toFixed(1)}   ${String(renormalize).padEnd(6)}  ${(100 * skipped).toFixed(1).padStart(5)}%  ${change.toExponential(2)}`);
        if (skipped > 0) expect(change).toBeGreaterThan(0);
      }
      expect(fractions[0]).toBe(fractions[1]); // renormalizing changes weights, never which slots go
    }
    console.log(`skip-experts on ${config.name}, ${tokens} tokens (seed ${seed}):\n${lines.join('\n')}`);
  });
});
