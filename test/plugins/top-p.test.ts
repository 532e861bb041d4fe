// The top-p router plugin (examples/plugins/top-p/): loaded from its file the way the CLI loads
// it, its interpreter on hand-computed logits, its spec kind's param check, and the MoE block on
// WebGPU (decode and prefill) against the CPU interpreter with the plugin's semantics, on fresh
// random weights and inputs with every scratch and output buffer poisoned.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { loadSpec } from '../../compiler/cli/command.js';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { loadPlugins } from '../../compiler/plugins/load-plugins.js';
import type { Registry } from '../../compiler/plugins/registry.js';
import { checkSpec } from '../../compiler/spec/check.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import type { KindRef, ModelConfig } from '../../ir/model-config.js';
import { readBackBytes } from '../../runtime/buffer-pool.js';
import { openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor, type MoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { normals, randomWeights, relativeError, seededRandom } from '../codegen/moe-fixtures.js';
import { moec, ROOT } from '../bundle/cli.js';
import { expectRowsClose, route } from '../ir/interpret-helpers.js';

const PLUGIN = 'examples/plugins/top-p/top-p.js';
const EXAMPLE = 'examples/plugins/top-p/top-p.moe';
const TOKEN_COUNTS = [1, 5, 8, 9, 64, 300];
/** A token whose GPU (f32) and CPU (f64) routing differ is excused only if its f64 decision margin is below this. */
const NEAR_TIE = 1e-5;

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`top-p plugin: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

let registry: Registry;
beforeAll(async () => {
  registry = await loadPlugins([{ path: PLUGIN }]);
});

const topP = (p: number, renormalize = false): KindRef => ({ kind: 'top_p', params: { p, renormalize } });
const routeOne = (logits: number[], topK: number, router: KindRef) => registry.semantics.routers['top_p']!({ logits: Float64Array.from(logits), topK, router });
const ln = Math.log;

describe('the reference interpreter', () => {
  // softmax([ln 4, ln 2, 0, 0]) = [.5, .25, .125, .125] exactly in float64, so the cumulative sums
  // .5, .75, .875, 1 are exact too.
  const exact = [ln(4), ln(2), 0, 0];

  test('stops at the first expert whose cumulative probability reaches p exactly', () => {
    expect(routeOne(exact, 4, topP(0.75))).toEqual({ ids: [0, 1, -1, -1], weights: [0.5, 0.25, 0, 0] });
    expect(routeOne(exact, 4, topP(0.875))).toEqual({ ids: [0, 1, 2, -1], weights: [0.5, 0.25, 0.125, 0] });
    // Just past a cumulative sum takes one more.
    expect(routeOne(exact, 4, topP(0.76)).ids).toEqual([0, 1, 2, -1]);
  });

  test('at least one expert, however small p is or however large the first probability', () => {
    expect(routeOne(exact, 4, topP(1e-9))).toEqual({ ids: [0, -1, -1, -1], weights: [0.5, 0, 0, 0] });
    expect(routeOne(exact, 4, topP(0.5)).ids).toEqual([0, -1, -1, -1]);
    expect(routeOne([0, 30, 0, 0], 2, topP(0.5)).ids).toEqual([1, -1]);
  });

  test('p never reached: capped at top_k', () => {
    expect(routeOne(exact, 2, topP(0.9))).toEqual({ ids: [0, 1], weights: [0.5, 0.25] });
    // Eight equal experts (1/8 each): 3 of them reach only 0.375 of p = 1.
    expect(routeOne(new Array<number>(8).fill(0), 3, topP(1))).toEqual({ ids: [0, 1, 2], weights: [0.125, 0.125, 0.125] });
  });

  test('descending probability, ties to the lower expert index', () => {
    // [0, ln 2, 0, ln 4] -> [.125, .25, .125, .5]: experts 3, 1, then 0 and 2 tie and 0 goes first.
    const permuted = [0, ln(2), 0, ln(4)];
    expect(routeOne(permuted, 4, topP(0.75)).ids).toEqual([3, 1, -1, -1]);
    expect(routeOne(permuted, 4, topP(0.8))).toEqual({ ids: [3, 1, 0, -1], weights: [0.5, 0.25, 0.125, 0] });
    expect(routeOne(permuted, 4, topP(1))).toEqual({ ids: [3, 1, 0, 2], weights: [0.5, 0.25, 0.125, 0.125] });
  });

  test('weights are the router probabilities, renormalized only when asked', () => {
    expect(routeOne(exact, 4, topP(0.875, true)).weights).toEqual([0.5 / 0.875, 0.25 / 0.875, 0.125 / 0.875, 0]);
  });

  test('through moe.route (x W^T in float64, ids [T, K] checked): equal logits tie to the lower index', () => {
    // Token 0: four equal experts, p = 0.5 reached exactly by two; token 1: one expert far ahead.
    const r = route(topP(0.5), 4, [[0, 0, 0, 0], [0, 30, 0, 0]], {}, registry.semantics);
    expect(r.ids).toEqual([[0, 1, -1, -1], [1, -1, -1, -1]]);
    expectRowsClose(r.weights, [[0.25, 0.25, 0, 0], [1, 0, 0, 0]]);
  });
});

describe('the spec kind', () => {
  const spec = (router: string) => `model "m" {\n  hidden = 8\n  vocab = 16\n  layers = 1\n  norm = rmsnorm\n  attention = gqa(heads = 2)\n  moe {\n    experts = 4\n    top_k = 2\n    router = ${router}\n    expert = swiglu(intermediate = 8)\n  }\n}\n`;
  const check = (router: string) => checkSpec(spec(router), 'm.moe', registry.kinds);

  test('p defaults to 0.5 and renormalize to false; 0 < p <= 1', () => {
    expect(check('top_p').config?.moe?.router).toEqual({ kind: 'top_p', params: { p: 0.5, renormalize: false } });
    expect(check('top_p(p = 1, renormalize = true)').config?.moe?.router).toEqual({ kind: 'top_p', params: { p: 1, renormalize: true } });
    for (const bad of ['0', '1.5', '-0.25']) {
      const { diagnostics, config } = check(`top_p(p = ${bad})`);
      expect(config).toBeUndefined();
      expect(diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.message} (${d.hint})`)).toEqual([`10:20 top_p: p = ${bad} is out of range (p is a cumulative probability: 0 < p <= 1)`]);
    }
  });

  test('without the plugin the kind is unknown', () => {
    expect(checkSpec(spec('top_p'), 'm.moe').diagnostics.map((d) => d.message)).toEqual(['unknown router kind `top_p`']);
  });
});

/** Float64 softmax, sorted best first (ties to the lower index). */
function sortedProbabilities(logits: number[]): number[] {
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z).sort((a, b) => b - a);
}

/**
 * How close a token's top-p routing is to another decision: the gaps between consecutive sorted
 * probabilities up to the one after the last chosen, and |cumulative - p| after each chosen one.
 */
function topPMargin(logits: number[], p: number, chosen: number): number {
  const sorted = sortedProbabilities(logits);
  let margin = Infinity;
  let cumulative = 0;
  for (let j = 0; j < chosen; j++) {
    if (j + 1 < sorted.length) margin = Math.min(margin, sorted[j]! - sorted[j + 1]!);
    cumulative += sorted[j]!;
    margin = Math.min(margin, Math.abs(cumulative - p));
  }
  return margin;
}

interface Case {
  name: string;
  load(): Promise<{ config: ModelConfig; registry: Registry }>;
}

const cases: Case[] = [
  {
    name: 'top-p.moe: p 0.5, E 8, K 4',
    async load() {
      // What every moec command does: the spec's `plugins = ["./top-p.js"]`, relative to the spec.
      const loaded = await loadSpec(EXAMPLE);
      if (!loaded.config) throw new Error(`${EXAMPLE} does not check`);
      return { config: loaded.config, registry: loaded.registry };
    },
  },
  {
    name: 'inline: p 0.7 renormalized, E 12, K 3, shared',
    async load() {
      const source = `model "top-p-shared" {\n  hidden = 72\n  vocab = 64\n  layers = 1\n  norm = rmsnorm(eps = 1e-6)\n  attention = gqa(heads = 2)\n  moe {\n    experts = 12\n    top_k = 3\n    router = top_p(p = 0.7, renormalize = true)\n    expert = swiglu(intermediate = 56)\n    shared = swiglu(intermediate = 100)\n    shared_gate = sigmoid\n  }\n}\ncompile {\n  target = webgpu\n  dtype = f32\n}\n`;
      const withPlugin = await loadPlugins([{ path: resolve(PLUGIN) }]);
      const checked = checkSpec(source, 'top-p-shared.moe', withPlugin.kinds);
      if (!checked.config) throw new Error(checked.diagnostics.map((d) => d.message).join('; '));
      return { config: checked.config, registry: withPlugin };
    },
  },
];

let rt: GpuRuntime;
const results: string[] = [];
/** Per spec: tokens routed and experts chosen, over every token count. */
const totals = new Map<string, { tokens: number; experts: number }>();

describe('the MoE block on WebGPU', () => {
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
  });
  afterAll(() => {
    const means = [...totals].map(([name, t]) => `${name}: ${(t.experts / t.tokens).toFixed(2)} experts per token over ${t.tokens} tokens`);
    console.log(['spec                                          tokens  path     rel.error  experts/token (gpu)  near-tie tokens excluded', ...results, ...means].join('\n'));
    rt?.destroy();
  });

  cases.forEach((c, index) => {
    describe(c.name, () => {
      let executor: MoeBlockExecutor;
      let graph: Graph;
      let weights: Map<string, Float32Array>;
      let random: () => number;
      let withPlugin: Registry;
      let H: number;

      beforeAll(async () => {
        const { config, registry: r } = await c.load();
        withPlugin = r;
        graph = compileMoeBlockGraph(config, 0, { registry: withPlugin });
        H = config.hidden;
        random = seededRandom(seed + 1_000_003 * index);
        weights = randomWeights(graph, random);
        executor = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0, { registry: withPlugin }), { readF32: (name) => weights.get(name)! });
      });
      afterAll(() => executor?.destroy());

      /** The reference interpreter with the plugin's semantics; `routeOnly` cuts the graph after moe.route. */
      const interpret = (x: Float32Array, tokens: number, routeOnly = false) => {
        const routeOp = graph.ops.find((op) => op.opcode === 'moe.route')!;
        const g: Graph = routeOnly ? { ...graph, ops: [routeOp], outputs: routeOp.outputs } : graph;
        return interpretGraph(g, { hidden_states: { shape: [tokens, H], data: x } }, (p: Value) => weights.get(p.name)!, withPlugin.semantics);
      };

      for (const tokens of TOKEN_COUNTS) {
        it(`${tokens} token${tokens > 1 ? 's' : ''} match the reference interpreter`, async () => {
          const x = normals(random, tokens * H, 1);
          executor.poisonScratch(tokens);
          const out = await executor.run(x, tokens);
          await rt.settle();
          const ref = interpret(x, tokens)[graph.outputs[0]!.name]!.data as Float32Array;

          const routeOp = graph.ops.find((op) => op.opcode === 'moe.route')!;
          const router = routeOp.attrs['router'] as KindRef;
          const K = routeOp.attrs['top_k'] as number;
          const E = routeOp.attrs['experts'] as number;
          const gpuIds = new Int32Array(await readBackBytes(rt.device, executor.scratchBuffer('route_ids'), tokens * K * 4));
          const gpuWeights = new Float32Array(await readBackBytes(rt.device, executor.scratchBuffer('routing_weights'), tokens * K * 4));
          const cpu = interpret(x, tokens, true);
          const cpuIds = cpu[routeOp.outputs[0]!.name]!.data as Int32Array;
          const cpuWeights = cpu[routeOp.outputs[1]!.name]!.data as Float32Array;
          const routerWeight = weights.get(routeOp.inputs[1]!.name)!;

          const excluded: number[] = [];
          const unexplained: string[] = [];
          for (let t = 0; t < tokens; t++) {
            const slots = Array.from({ length: K }, (_, k) => t * K + k);
            const same = slots.every((s) => gpuIds[s] === cpuIds[s] && Math.abs(gpuWeights[s]! - cpuWeights[s]!) <= NEAR_TIE * Math.max(1, Math.abs(cpuWeights[s]!)));
            if (same) continue;
            const logits = Array.from({ length: E }, (_, e) => {
              let acc = 0;
              for (let h = 0; h < H; h++) acc += x[t * H + h]! * routerWeight[e * H + h]!;
              return acc;
            });
            const chosen = slots.filter((s) => cpuIds[s]! >= 0 || gpuIds[s]! >= 0).length;
            const margin = topPMargin(logits, router.params['p'] as number, chosen);
            const describe = (ids: Int32Array, ws: Float32Array) => JSON.stringify(slots.map((s) => [ids[s], ws[s]]));
            if (margin < NEAR_TIE) excluded.push(t);
            else unexplained.push(`token ${t}: gpu ${describe(gpuIds, gpuWeights)} vs cpu ${describe(cpuIds, cpuWeights)}, f64 decision margin ${margin.toExponential(2)}`);
          }
          expect(unexplained, 'routing differs from the reference without a near-tie').toEqual([]);

          const counts = Array.from({ length: tokens }, (_, t) => Array.from({ length: K }, (_, k) => gpuIds[t * K + k]!).filter((e) => e >= 0).length);
          expect(Math.min(...counts), 'every token has at least one expert').toBeGreaterThanOrEqual(1);
          const kept = Array.from({ length: tokens }, (_, t) => t).filter((t) => !excluded.includes(t));
          const error = relativeError(out, ref, H, kept);
          const chosen = counts.reduce((a, b) => a + b, 0);
          const mean = chosen / tokens;
          const total = totals.get(c.name) ?? { tokens: 0, experts: 0 };
          totals.set(c.name, { tokens: total.tokens + tokens, experts: total.experts + chosen });
          const path = tokens <= executor.plan.decodeMaxTokens ? 'decode' : 'prefill';
          results.push(`${c.name.padEnd(45)} ${String(tokens).padStart(6)}  ${path.padEnd(8)} ${error.toExponential(2).padStart(9)}  ${mean.toFixed(2).padStart(19)}  ${excluded.length}`);
          expect(out.every(Number.isFinite), 'an output is NaN: some element was never written').toBe(true);
          expect(error).toBeLessThan(1e-5);
          expect(excluded.length, 'near-ties should be rare').toBeLessThanOrEqual(Math.max(1, tokens / 20));
        });
      }

      if (index === 0) {
        it('hand-set logits on the GPU: p reached exactly, at least one expert, ties to the lower index', async () => {
          // Token t's input is the unit vector e_t, so its logits are column t of the router weight.
          const tokens = 3;
          const routerName = graph.ops.find((op) => op.opcode === 'moe.route')!.inputs[1]!.name;
          const saved = weights.get(routerName)!;
          const E = saved.length / H;
          // Token 0: experts 0..3 at 0, the rest at -200 (probability 0 in f32): 1/4 each, p = 0.5 reached
          // exactly by two. Token 1: expert 3 far ahead, alone. Token 2: experts 5 and 6 tie at logit 1
          // (0.238 each), then the six at 0 tie (0.087 each): 5, 6, 0.
          const logits = [
            Array.from({ length: E }, (_, e) => (e < 4 ? 0 : -200)),
            Array.from({ length: E }, (_, e) => (e === 3 ? 30 : 0)),
            Array.from({ length: E }, (_, e) => (e === 5 || e === 6 ? 1 : 0)),
          ];
          const routerWeight = new Float32Array(E * H);
          logits.forEach((row, t) => row.forEach((l, e) => (routerWeight[e * H + t] = l)));
          const x = new Float32Array(tokens * H);
          for (let t = 0; t < tokens; t++) x[t * H + t] = 1;
          const handWeights = new Map(weights).set(routerName, routerWeight);
          const hand = await createMoeBlockExecutor(rt, executor.plan, { readF32: (name) => handWeights.get(name)! });
          try {
            hand.poisonScratch(tokens);
            await hand.run(x, tokens);
            const K = 4;
            const ids = Array.from(new Int32Array(await readBackBytes(rt.device, hand.scratchBuffer('route_ids'), tokens * K * 4)));
            const ws = Array.from(new Float32Array(await readBackBytes(rt.device, hand.scratchBuffer('routing_weights'), tokens * K * 4)));
            expect(ids).toEqual([0, 1, -1, -1, 3, -1, -1, -1, 5, 6, 0, -1]);
            expect(ws.slice(0, 4)).toEqual([0.25, 0.25, 0, 0]);
            expect(ws.slice(5, 8)).toEqual([0, 0, 0]);
            expect(ws[11]).toBe(0);
          } finally {
            hand.destroy();
          }
        });
      }
    });
  });
});

describe('the CLI', () => {
  it('moec ir --layer 0 prints the block with the top_p router', async () => {
    const result = await moec(['ir', EXAMPLE, '--layer', '0']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    // Both paths route with the plugin's kind, its defaults filled in.
    expect(result.stdout.match(/= moe\.route\(.*\{router = top_p\(p = 0\.5, renormalize = false\), experts = 8, top_k = 4\}/g)).toHaveLength(2);
  });

  it('moec check: ok with the plugins line (or --plugin), unknown router kind without', async () => {
    expect(await moec(['check', EXAMPLE])).toMatchObject({ status: 0, stdout: `${EXAMPLE}: ok (tiny-top-p)\n`, stderr: '' });
    mkdirSync(join(ROOT, '.tmp'), { recursive: true });
    const dir = mkdtempSync(join(ROOT, '.tmp', 'top-p-'));
    try {
      const bare = join(dir, 'no-plugin.moe');
      writeFileSync(bare, readFileSync(EXAMPLE, 'utf8').replace(/^\s*plugins = .*\n/m, ''));
      const without = await moec(['check', bare]);
      expect(without.status).toBe(1);
      expect(without.stdout).toBe('');
      expect(without.stderr).toMatch(new RegExp(`^${bare.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: error: unknown router kind \`top_p\``));
      expect(await moec(['check', bare, '--plugin', PLUGIN])).toMatchObject({ status: 0, stdout: `${bare}: ok (tiny-top-p)\n` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
