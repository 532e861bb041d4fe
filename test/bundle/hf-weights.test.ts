// runtime/hf-weights.ts: HF tensors -> IR weights for every family, checked element by element
// and, for gpt-oss and Mixtral, by a forward pass written directly against the HF layout (as
// transformers computes it) compared with the CPU interpreter fed through the mapping.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { interpretGraph } from '../../ir/interpret/interpret.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { fetchHfCheckpoint, hfWeightsFromSafetensors, hfWeightsFromUrl, safetensorsReader } from '../../runtime/hf-checkpoint.js';
import { hfWeightSource } from '../../runtime/hf-weights.js';
import { describeHfNaming, modelTypesMatching, SUPPORTED_MODEL_TYPES } from '../../runtime/hf-naming.js';
import type { TensorReader } from '../../runtime/tensor-reader.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { checkpointReader, openHfCheckpoint } from '../../runtime/node/checkpoint-weights.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import type { RowRange, WeightSource } from '../../runtime/plan.js';
import { FAMILIES, seededRandom, specText, writeRandomCheckpoint, type CheckpointSizes, type Family } from '../fixtures/make-checkpoint.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'moec-hfw-'));
  dirs.push(d);
  return d;
};

const sizes = (family: Family): CheckpointSizes => ({
  hidden: 8, experts: 4, topK: 2, intermediate: 6, layers: 2,
  ...(family.startsWith('deepseek') ? { firstDense: 1 } : {}),
  ...(family === 'deepseek_v3' ? { groups: 2, topkGroups: 1 } : {}),
});

function configOf(family: Family, s: CheckpointSizes): ModelConfig {
  const result = checkSpec(specText(family, s), `${family}.moe`);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return result.config!;
}

async function irWeights(graph: ReturnType<typeof compileMoeBlockGraph>, source: WeightSource): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const p of graph.params) out.set(p.name, await source.readF32(p.name, p.type.shape as number[]));
  return out;
}

function thrownMessage(fn: () => unknown): Promise<string> {
  return Promise.resolve().then(fn).then(() => { throw new Error('expected an error'); }, (e: Error) => e.message);
}

describe('hf-weights: every family', () => {
  for (const family of FAMILIES) {
    it(`${family}: the spec's MoE weights all come from ${family} tensors, stacked in the IR layout`, async () => {
      const s = sizes(family);
      const dir = tempDir();
      const written = writeRandomCheckpoint(dir, family, s, { seed: 7 });
      const config = configOf(family, s);
      const layer = written.moeLayers[written.moeLayers.length - 1]!;
      const graph = compileMoeBlockGraph(config, layer);
      const names = graph.params.map((p) => p.name);
      // Families with the same MoE tensors (router + SwiGLU experts, no extras) are interchangeable.
      const plain = ['mixtral', 'phimoe', 'qwen3_moe', 'olmoe'];
      expect(modelTypesMatching(names)).toEqual(plain.includes(family) ? plain : [family]);

      const { checkpoint, modelType, weights } = openHfCheckpoint(dir);
      expect(modelType).toBe(family);
      const ir = await irWeights(graph, weights);
      // Every tensor of this layer in the checkpoint is used by some IR weight (nothing silently ignored).
      const layerTensors = written.tensors.filter((n) => n.startsWith(`model.layers.${layer}.`));
      const described = graph.params.map((p) => describeHfNaming(family, p.name)!).join('\n');
      for (const t of layerTensors) expect(described, t).toContain(t.replace(/\.experts\.\d+\./, '.experts.{e}.'));
      // Stacked experts: expert e's slice of the IR gate is the HF tensor of expert e.
      const gate = ir.get(`layers.${layer}.moe.experts.gate`)!;
      const per = s.intermediate * s.hidden;
      const hfGate = family === 'mixtral' || family === 'phimoe' ? `block_sparse_moe.experts.2.w1.weight` : 'mlp.experts.2.gate_proj.weight';
      if (family !== 'gpt_oss') expect(gate.subarray(2 * per, 3 * per)).toEqual(checkpoint.readF32(`model.layers.${layer}.${hfGate}`));
    });
  }
});

/** A TensorReader that records what is read, optionally dropping row ranges (a reader that cannot read parts). */
function recordingReader(reader: TensorReader, ignoreRows = false): { reader: TensorReader; reads: string[] } {
  const reads: string[] = [];
  const note = (name: string, rows?: RowRange) => reads.push(rows ? `${name}[${rows.begin}:${rows.end}]` : name);
  return {
    reads,
    reader: {
      ...reader,
      readF32: (name, rows) => (note(name, ignoreRows ? undefined : rows), reader.readF32(name, ignoreRows ? undefined : rows)),
      readU8: (name, rows) => (note(name, ignoreRows ? undefined : rows), reader.readU8!(name, ignoreRows ? undefined : rows)),
    },
  };
}

describe('hf-weights: rows of the leading dim (a shard of experts)', () => {
  for (const family of FAMILIES) {
    it(`${family}: rows [1, 3) equal that slice of the whole weight and read only those experts`, async () => {
      const s = sizes(family);
      const dir = tempDir();
      const written = writeRandomCheckpoint(dir, family, s, { seed: 21, dtype: 'BF16' });
      const layer = written.moeLayers[written.moeLayers.length - 1]!;
      const graph = compileMoeBlockGraph(configOf(family, s), layer);
      const checkpoint = CheckpointDir.open(dir);
      const whole = hfWeightSource(family, checkpointReader(checkpoint));
      const recorded = recordingReader(checkpointReader(checkpoint));
      const ranged = hfWeightSource(family, recorded.reader);
      const rangeIgnored = hfWeightSource(family, recordingReader(checkpointReader(checkpoint), true).reader);
      for (const p of graph.params) {
        const shape = p.type.shape as number[];
        const all = await whole.readF32(p.name, shape);
        const per = all.length / shape[0]!;
        const rows = shape[0]! >= 3 ? { begin: 1, end: 3 } : { begin: 0, end: shape[0]! }; // shared_gate.weight is [1, H]
        const expected = all.subarray(rows.begin * per, rows.end * per);
        recorded.reads.length = 0;
        expect(await ranged.readF32(p.name, shape, rows), p.name).toEqual(expected);
        expect(await rangeIgnored.readF32(p.name, shape, rows), p.name).toEqual(expected);
        // Stacked experts: only experts 1 and 2's tensors; one tensor (fused experts, router, shared): only those rows of it.
        const reads = recorded.reads.map((r) => r.replace(`model.layers.${layer}.`, ''));
        // gpt-oss's up halves come from the gate halves' read of the fused tensor, kept for them (paired-reads.ts).
        const secondHalf = family === 'gpt_oss' && /\.experts\.up(_bias)?$/.test(p.name);
        if (secondHalf) expect(reads, p.name).toEqual([]);
        else if (reads.length === 2) expect(reads.every((r) => /\.experts\.[12]\./.test(r)), reads.join(', ')).toBe(true);
        else expect(reads).toEqual([expect.stringMatching(new RegExp(`\\[${rows.begin}:${rows.end}\\]$`))]);
      }
    });
  }
});

describe('hf-weights: gpt-oss fused experts', () => {
  const s: CheckpointSizes = { hidden: 8, experts: 4, topK: 2, intermediate: 6, layers: 1 };
  const dir = tempDir();
  writeRandomCheckpoint(dir, 'gpt_oss', s, { seed: 11 });
  const checkpoint = CheckpointDir.open(dir);
  const hf = (n: string) => checkpoint.readF32(`model.layers.0.mlp.${n}`);
  const { hidden: H, experts: E, intermediate: I } = s;

  it('de-interleaves gate_up_proj [E, H, 2I] (gate = ::2, up = 1::2) and transposes to [E, I, H]; down_proj [E, I, H] -> [E, H, I]', async () => {
    const { weights } = openHfCheckpoint(dir);
    const gate = await weights.readF32('layers.0.moe.experts.gate', [E, I, H]);
    const up = await weights.readF32('layers.0.moe.experts.up', [E, I, H]);
    const down = await weights.readF32('layers.0.moe.experts.down', [E, H, I]);
    const gateBias = await weights.readF32('layers.0.moe.experts.gate_bias', [E, I]);
    const upBias = await weights.readF32('layers.0.moe.experts.up_bias', [E, I]);
    const gu = hf('experts.gate_up_proj');
    const gub = hf('experts.gate_up_proj_bias');
    const dp = hf('experts.down_proj');
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < I; i++) {
        expect(gateBias[e * I + i]).toBe(gub[e * 2 * I + 2 * i]);
        expect(upBias[e * I + i]).toBe(gub[e * 2 * I + 2 * i + 1]);
        for (let h = 0; h < H; h++) {
          expect(gate[(e * I + i) * H + h]).toBe(gu[(e * H + h) * 2 * I + 2 * i]);
          expect(up[(e * I + i) * H + h]).toBe(gu[(e * H + h) * 2 * I + 2 * i + 1]);
          expect(down[(e * H + h) * I + i]).toBe(dp[(e * I + i) * H + h]);
        }
      }
    }
  });

  it('the CPU interpreter through the mapping equals a forward written against the HF layout', async () => {
    const config = configOf('gpt_oss', s);
    const graph = compileMoeBlockGraph(config, 0);
    const ir = await irWeights(graph, openHfCheckpoint(dir).weights);
    const tokens = 5;
    const random = seededRandom(3);
    const x = Float32Array.from({ length: tokens * H }, () => random() * 4 - 2);
    const got = interpretGraph(graph, { hidden_states: { shape: [tokens, H], data: x } }, (p) => ir.get(p.name)!);
    const y = got[graph.outputs[0]!.name]!.data;

    // transformers GptOssTopKRouter + GptOssExperts, on the HF tensors directly.
    const [rw, rb, gu, gub, dp, db] = ['router.weight', 'router.bias', 'experts.gate_up_proj', 'experts.gate_up_proj_bias',
      'experts.down_proj', 'experts.down_proj_bias'].map(hf) as Float32Array[];
    for (let t = 0; t < tokens; t++) {
      const xt = x.subarray(t * H, (t + 1) * H);
      const logits = Array.from({ length: E }, (_, e) => rb![e]! + xt.reduce((a, v, h) => a + v * rw![e * H + h]!, 0));
      const top = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, s.topK);
      const z = top.map((e) => Math.exp(logits[e]! - logits[top[0]!]!));
      const sum = z.reduce((a, b) => a + b, 0);
      const expected = new Float64Array(H);
      top.forEach((e, k) => {
        const gateUp = Array.from({ length: 2 * I }, (_, j) => gub![e * 2 * I + j]! + xt.reduce((a, v, h) => a + v * gu![(e * H + h) * 2 * I + j]!, 0));
        const act = Array.from({ length: I }, (_, i) => {
          const g = Math.min(gateUp[2 * i]!, 7);
          const u = Math.min(Math.max(gateUp[2 * i + 1]!, -7), 7);
          return (u + 1) * g / (1 + Math.exp(-1.702 * g));
        });
        for (let h = 0; h < H; h++) {
          const out = db![e * H + h]! + act.reduce((a, v, i) => a + v * dp![(e * I + i) * H + h]!, 0);
          expected[h] += (z[k]! / sum) * out;
        }
      });
      for (let h = 0; h < H; h++) expect(y[t * H + h]).toBeCloseTo(expected[h]!, 5);
    }
  });
});

describe('hf-weights: errors are one line naming the file and the tensor', () => {
  const s: CheckpointSizes = { hidden: 8, experts: 4, topK: 2, intermediate: 6, layers: 1 };

  it('an unknown model_type lists the supported ones', () => {
    expect(() => hfWeightSource('llama', { has: () => false, shape: () => [], readF32: () => new Float32Array() }))
      .toThrow(`model_type "llama" is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  });

  it('a missing expert, a wrong shape, an MXFP4 tensor', async () => {
    const dir = tempDir();
    writeRandomCheckpoint(dir, 'mixtral', s, { seed: 1, shards: 2 });
    const { weights, checkpoint } = openHfCheckpoint(dir);
    const missing = await thrownMessage(() => weights.readF32('layers.0.moe.experts.gate', [5, 6, 8]));
    expect(missing).toBe(`${join(dir, 'model.safetensors.index.json')}: tensor "model.layers.0.block_sparse_moe.experts.4.w1.weight" not found (needed for layers.0.moe.experts.gate of a mixtral checkpoint)`);
    const shape = await thrownMessage(() => weights.readF32('layers.0.moe.experts.down', [4, 8, 7]));
    const file = checkpoint.pathOf('model.layers.0.block_sparse_moe.experts.0.w2.weight');
    expect(shape).toBe(`${file}: tensor "model.layers.0.block_sparse_moe.experts.0.w2.weight" has shape [8, 6], expected [8, 7] (for layers.0.moe.experts.down)`);
    const nope = await thrownMessage(() => weights.readF32('layers.0.moe.router.bias', [4]));
    expect(nope).toMatch(/a mixtral checkpoint has no tensor for layers\.0\.moe\.router\.bias/);

    // MXFP4 blocks hold 32 inputs each: a hidden size of 8 cannot be stored so.
    const mx = encodeSafetensors({
      'model.layers.0.mlp.experts.gate_up_proj_blocks': { dtype: 'U8', shape: [4, 12, 1, 16], data: new Uint8Array(4 * 12 * 16) },
      'model.layers.0.mlp.experts.gate_up_proj_scales': { dtype: 'U8', shape: [4, 12, 1], data: new Uint8Array(4 * 12) },
    });
    const oss = hfWeightsFromSafetensors('gpt_oss', [{ name: 'model-00001-of-00001.safetensors', bytes: mx }]);
    expect(await thrownMessage(() => oss.readF32('layers.0.moe.experts.gate', [4, 6, 8]))).toBe('model-00001-of-00001.safetensors: ' +
      'tensor "model.layers.0.mlp.experts.gate_up_proj_blocks" is MXFP4 (blocks of 32 inputs), but layers.0.moe.experts.gate has 8 inputs per row, not a multiple of 32');
    expect(await thrownMessage(() => oss.readF32('layers.0.moe.experts.down', [4, 8, 6]))).toBe('model-00001-of-00001.safetensors: ' +
      'tensor "model.layers.0.mlp.experts.down_proj" (or MXFP4 "model.layers.0.mlp.experts.down_proj_blocks" + "model.layers.0.mlp.experts.down_proj_scales") ' +
      'not found (needed for layers.0.moe.experts.down of a gpt_oss checkpoint)');
    expect(await thrownMessage(() => weights.readF32('layers.0.moe.experts.gate', [4, 6, 8], { begin: 3, end: 5 })))
      .toBe('layers.0.moe.experts.gate [4, 6, 8]: rows [3, 5) are not a range within its 4 rows');
  });

  it('a NaN or infinite value: names the file, the tensor and the element', async () => {
    const router = new Float32Array(4 * 8).fill(0.5);
    router[1 * 8 + 2] = Number.NaN;
    const mixtral = hfWeightsFromSafetensors('mixtral', [{ name: 'model.safetensors', bytes: encodeSafetensors({
      'model.layers.0.block_sparse_moe.gate.weight': { dtype: 'F32', shape: [4, 8], data: router },
    }) }]);
    expect(await thrownMessage(() => mixtral.readF32('layers.0.moe.router.weight', [4, 8])))
      .toBe('model.safetensors: tensor "model.layers.0.block_sparse_moe.gate.weight" holds NaN at [1, 2]; moec loads only finite weights');
    // gpt-oss down_proj [E, I, H] = [4, 6, 8]; a read of experts [2, 4) reports the element's index in the whole tensor.
    const down = new Float32Array(4 * 6 * 8);
    down[(3 * 6 + 1) * 8 + 5] = Number.NEGATIVE_INFINITY;
    const oss = hfWeightsFromSafetensors('gpt_oss', [{ name: 'model-00001-of-00001.safetensors', bytes: encodeSafetensors({
      'model.layers.0.mlp.experts.down_proj': { dtype: 'F32', shape: [4, 6, 8], data: down },
    }) }]);
    expect(await oss.readF32('layers.0.moe.experts.down', [4, 8, 6], { begin: 0, end: 2 })).toHaveLength(2 * 8 * 6);
    expect(await thrownMessage(() => oss.readF32('layers.0.moe.experts.down', [4, 8, 6], { begin: 2, end: 4 })))
      .toBe('model-00001-of-00001.safetensors: tensor "model.layers.0.mlp.experts.down_proj" holds -Infinity at [3, 1, 5]; moec loads only finite weights');
  });

  it('checkBlock: a spec that lacks a tensor the checkpoint has, or needs one it lacks', () => {
    const q2 = tempDir();
    writeRandomCheckpoint(q2, 'qwen2_moe', s, { seed: 2 });
    const qwen3Spec = compileMoeBlockGraph(configOf('qwen3_moe', s), 0).params.map((p) => p.name);
    const opened = openHfCheckpoint(q2);
    expect(() => opened.weights.checkBlock(qwen3Spec)).toThrow(
      `${join(q2, 'model.safetensors')}: tensor "model.layers.0.mlp.shared_expert.gate_proj.weight" is part of layer 0's MoE block, ` +
      'but the spec has no weight for it (layers.0.moe.shared.gate); the spec does not describe this checkpoint');
    const gptSpec = compileMoeBlockGraph(configOf('gpt_oss', s), 0).params.map((p) => p.name);
    expect(() => opened.weights.checkBlock(gptSpec)).toThrow(
      `${join(q2, 'model.safetensors')}: a qwen2_moe checkpoint has no tensors for layers.0.moe.router.bias, layers.0.moe.experts.gate_bias, ` +
      'layers.0.moe.experts.up_bias, layers.0.moe.experts.down_bias; the spec does not describe this checkpoint (checkpoints that match it: gpt_oss)');
    expect(() => opened.weights.checkBlock(compileMoeBlockGraph(configOf('qwen2_moe', s), 0).params.map((p) => p.name))).not.toThrow();
  });

  it('safetensorsReader refuses a tensor present in two files', () => {
    const one = encodeSafetensors({ a: { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
    expect(() => safetensorsReader([{ name: 'x.safetensors', bytes: one }, { name: 'y.safetensors', bytes: one }]))
      .toThrow('y.safetensors: tensor "a" is also in x.safetensors; which one to load is ambiguous');
  });

  it('openHfCheckpoint names config.json for an unsupported model_type', () => {
    const dir = tempDir();
    writeRandomCheckpoint(dir, 'mixtral', s, { seed: 1 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama' }));
    expect(() => openHfCheckpoint(dir)).toThrow(`${join(dir, 'config.json')}: model_type "llama" is not supported; supported: `);
  });
});

describe('fetchHfCheckpoint', () => {
  // A fetch() over a directory that ignores Range, as the simplest server does; test/bundle/http-checkpoint.test.ts serves ranges.
  const s: CheckpointSizes = { hidden: 8, experts: 4, topK: 2, intermediate: 6, layers: 2 };
  const fetchFrom = (dir: string, seen: string[]) => (async (url: string | URL | Request) => {
    const name = new URL(String(url)).pathname.replace(/^\/ckpt\//, '');
    seen.push(name);
    const path = join(dir, name);
    return existsSync(path) ? new Response(readFileSync(path)) : new Response('not found', { status: 404, statusText: 'Not Found' });
  }) as typeof fetch;

  for (const shards of [1, 3]) {
    it(`${shards === 1 ? 'model.safetensors' : 'shards named by the index'}: the same weights as the directory`, async () => {
      const dir = tempDir();
      const written = writeRandomCheckpoint(dir, 'qwen3_moe', s, { seed: 4, shards });
      const seen: string[] = [];
      const warnings: string[] = [];
      const fetched = await fetchHfCheckpoint('http://127.0.0.1:1/ckpt', { fetch: fetchFrom(dir, seen), onWarning: (w) => warnings.push(w) });
      expect(fetched.modelType).toBe('qwen3_moe');
      expect([...fetched.files].sort()).toEqual(written.files);
      // With an index no shard is fetched until a tensor is read; without one, model.safetensors's header is read at once.
      expect(seen).toEqual(['config.json', 'model.safetensors.index.json', ...(shards === 1 ? ['model.safetensors'] : [])]);
      const fromUrl = await hfWeightsFromUrl('http://127.0.0.1:1/ckpt/', { fetch: fetchFrom(dir, []), onWarning: (w) => warnings.push(w) });
      const fromDir = openHfCheckpoint(dir).weights;
      for (const name of ['layers.1.moe.router.weight', 'layers.1.moe.experts.down']) {
        const shape = name.endsWith('router.weight') ? [4, 8] : [4, 8, 6];
        expect(await fromUrl.readF32(name, shape)).toEqual(await fromDir.readF32(name, shape));
      }
      expect(warnings.length).toBeGreaterThan(0);
      expect(warnings.every((w) => w.includes('the server ignored a Range request'))).toBe(true);
    });
  }

  it('names the URL of a file that cannot be fetched, and the tensor that needed it', async () => {
    const dir = tempDir();
    const written = writeRandomCheckpoint(dir, 'mixtral', s, { seed: 4, shards: 2 });
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const layer = written.moeLayers.find((l) => Object.entries(index.weight_map).some(([n, f]) => n.startsWith(`model.layers.${l}.`) && f === 'model-00002-of-00002.safetensors'))!;
    const source = await hfWeightsFromUrl('http://127.0.0.1:1/ckpt/', { fetch: fetchFrom(dir, []) });
    await expect(source.readF32(`layers.${layer}.moe.router.weight`, [4, 8]))
      .rejects.toThrow(/^http:\/\/127\.0\.0\.1:1\/ckpt\/model-00002-of-00002\.safetensors: HTTP 404 Not Found \(reading the safetensors header \(for tensor "model\.layers\./);
  });
});
