// compiler/stats.ts against parameter counts, bytes and FLOPs worked out by hand from the layer
// formulas (not from the IR), and the shape of `moec stats --json` from the built CLI.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileModelGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { computeStats, type ModelStats } from '../../compiler/stats.js';
import { CLI, ensureBuiltCli } from '../bundle/cli.js';

const root = join(import.meta.dirname, '..', '..');

function statsOf(source: string, file = 'test.moe'): ModelStats {
  const { config, diagnostics } = checkSpec(source, file);
  expect(diagnostics).toEqual([]);
  return computeStats(compileModelGraph(config!), config!);
}

const int4Bytes = (n: number) => (n * (4 + 16 / 32)) / 8;

describe('stats: Mixtral-8x7B (examples/mixtral-8x7b.moe, experts int4 group 32)', () => {
  const [H, V, L, heads, kvHeads, d, E, k, I] = [4096, 32000, 32, 32, 8, 128, 8, 2, 14336];
  const attention = H * heads * d + 2 * H * kvHeads * d + heads * d * H; // q, k, v, o; no biases
  const norms = 2 * H; // attention and MLP RMSNorm weights
  const router = E * H;
  const expert = 3 * I * H; // gate, up, down
  const total = 2 * V * H + L * (attention + norms + router + E * expert) + H; // + untied head, + final norm
  const active = total - L * (E - k) * expert;
  const stats = statsOf(readFileSync(join(root, 'examples', 'mixtral-8x7b.moe'), 'utf8'));

  it('counts parameters', () => {
    expect(total).toBe(46_702_792_704); // Mistral: 46.7B
    expect(stats.totalParams).toBe(total);
    expect(active).toBe(12_879_925_248); // Mistral: 12.9B
    expect(stats.activeParams).toBe(active);
    expect(stats.activeParamsNonEmbedding).toBe(active - V * H);
  });

  it('counts FLOPs per token: 2 x active matmul weights + QK^T and AV over the context', () => {
    const matmulWeights = active - V * H - (2 * L + 1) * H; // no embedding lookup, no norm vectors
    const scores = L * 2 * heads * (d + d) * 4096;
    expect(stats.context).toBe(4096);
    expect(stats.flopsPerToken).toBe(2 * matmulWeights + scores);
  });

  it('counts weight bytes with int4 experts (4 + 16/32 bits) and f32 for the rest', () => {
    const experts = L * E * expert;
    expect(stats.weightBytes).toBe(int4Bytes(experts) + (total - experts) * 4);
    // One token reads one row of the (untied) embedding table, not all of it.
    expect(stats.activeWeightBytes).toBe(int4Bytes(L * k * expert) + (active - L * k * expert - V * H + H) * 4);
  });
});

describe('stats: a small spec with every kind of weight', () => {
  const source = `
    model "small" {
      hidden = 64
      vocab = 256
      layers = 4
      tie_embeddings = true
      norm = layernorm(eps = 1e-5)
      attention = gqa(heads = 4, kv_heads = 2, head_dim = 32, qkv_bias = true, o_bias = true, qk_norm = true, sliding_window = 16, full_every = 2, sinks = true)
      moe {
        experts = 8
        top_k = 2
        router = softmax_topk(renormalize = true)
        expert = swiglu(intermediate = 96)
        shared = swiglu(intermediate = 160)
        shared_gate = sigmoid
        every = 2
        offset = 1
      }
      dense { mlp = swiglu(intermediate = 128) }
    }
    compile {
      quantize experts = int4(group = 32)
      context = 100
    }`;
  const stats = statsOf(source);
  // Layers 1 and 3 are MoE (i % 2 == 1), 0 and 2 dense. The LM head is the embedding table.
  const [H, V, heads, kvHeads, d] = [64, 256, 4, 2, 32];
  const attentionMatrices = heads * d * H + 2 * kvHeads * d * H + H * heads * d; // 24576
  const attentionVectors = heads * d + 2 * kvHeads * d + H + 2 * d + heads; // biases, q/k norm, sinks: 388
  const layerNorms = 2 * 2 * H; // two LayerNorms with weight and bias
  const dense = 3 * 128 * H;
  const router = 8 * H;
  const experts = 8 * 3 * 96 * H;
  const shared = 3 * 160 * H;
  const sharedGate = H;
  const embedding = V * H;

  it('counts parameters, the tied head once and the input embedding as part of the head', () => {
    const total = embedding + 4 * (attentionMatrices + attentionVectors + layerNorms) + 2 * dense + 2 * (router + experts + shared + sharedGate) + 2 * H;
    expect(total).toBe(524_048);
    expect(stats.totalParams).toBe(total);
    const active = total - 2 * experts * (6 / 8);
    expect(stats.activeParams).toBe(active);
    // A tied table is the LM head, which this count keeps.
    expect(stats.activeParamsNonEmbedding).toBe(active);
  });

  it('counts FLOPs with the tied head as a matmul and sliding layers seeing their window', () => {
    const matmul = embedding + 4 * attentionMatrices + 2 * dense + 2 * (router + experts * (2 / 8) + shared + sharedGate);
    const keys = [16, 100, 16, 100]; // layers 1 and 3 attend the full 100-token context
    const scores = keys.reduce((sum, n) => sum + 2 * heads * (d + d) * n, 0);
    expect(stats.context).toBe(100);
    expect(stats.flopsPerToken).toBe(2 * matmul + scores);
    expect(stats.flopsPerToken).toBe(719_104);
  });

  it('counts int4 bytes for the expert matrices only', () => {
    expect(stats.weightBytes).toBe(int4Bytes(2 * experts) + (stats.totalParams - 2 * experts) * 4);
  });
});

describe('stats: multi-head latent attention (examples/tiny-deepseek-v3.moe)', () => {
  it('counts MLA, the dense first layer, the shared expert and the correction bias', () => {
    const stats = statsOf(readFileSync(join(root, 'examples', 'tiny-deepseek-v3.moe'), 'utf8'));
    const [H, V, heads, qRank, kvRank, nope, rope, v] = [128, 256, 4, 48, 40, 16, 8, 16];
    const mla = qRank * H + qRank + heads * (nope + rope) * qRank // q_a, q_a_norm, q_b
      + (kvRank + rope) * H + kvRank + heads * (nope + v) * kvRank // kv_a, kv_a_norm, kv_b
      + H * heads * v; // o
    const moe = 16 * H + 16 + 16 * 3 * 72 * H + 3 * 72 * H; // router, correction bias, experts, shared
    const total = 2 * V * H + 2 * (mla + 2 * H) + 3 * 200 * H + moe + H;
    expect(total).toBe(675_648);
    expect(stats.totalParams).toBe(total);
    expect(stats.activeParams).toBe(total - 12 * 3 * 72 * H);
  });
});

describe('moec stats --json (built CLI)', () => {
  beforeAll(() => ensureBuiltCli());

  const cli = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8' });

  it('prints the stats object with its documented keys', () => {
    const spec = join(root, 'examples', 'tiny-mixtral.moe');
    const printed = JSON.parse(cli('stats', spec, '--json')) as Record<string, number>;
    expect(Object.keys(printed).sort()).toEqual(['activeParams', 'activeParamsNonEmbedding', 'activeWeightBytes', 'context', 'flopsPerToken', 'totalParams', 'weightBytes']);
    expect(printed).toEqual({ ...statsOf(readFileSync(spec, 'utf8')) });
    const shorter = JSON.parse(cli('stats', spec, '--json', '--context', '100')) as Record<string, number>;
    expect(shorter['context']).toBe(100);
    // tiny-mixtral: 2 layers, 4 heads of 16: 2 * 4 * (16 + 16) FLOPs per key per layer.
    expect(printed['flopsPerToken']! - shorter['flopsPerToken']!).toBe(2 * 2 * 4 * 32 * (4096 - 100));
  });
});
