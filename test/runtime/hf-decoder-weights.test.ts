// The whole decoder from a Hugging Face checkpoint: for every family, each IR param of
// buildModelGraph is read (readHfWeights) from a whole-model fixture checkpoint in the family's
// names and shapes, and equals the tensor written, as the IR lays it out (the expected layout is
// written out here, apart from runtime/hf-naming.ts); the reference interpreter then runs on them.
// Also: bf16, FP8 and MXFP4 checkpoints, and checkpoints the spec does not describe.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Graph } from '../../ir/graph.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { E4M3_VALUES } from '../../runtime/hf-fp8.js';
import { readHfWeights, type IrWeight } from '../../runtime/hf-weights.js';
import { CheckpointDir } from '../../runtime/node/checkpoint-dir.js';
import { checkpointReader } from '../../runtime/node/checkpoint-weights.js';
import { encodeSafetensors, type TensorToEncode } from '../../runtime/safetensors-encode.js';
import type { TensorReader } from '../../runtime/tensor-reader.js';
import { FAMILIES, specText, writeRandomCheckpoint, type CheckpointOptions, type CheckpointSizes, type Family, type WrittenCheckpoint } from '../fixtures/make-checkpoint.js';

const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`hf-decoder-weights: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'moec-hfdec-'));
  dirs.push(d);
  return d;
};

const sizes = (family: Family, base: Partial<CheckpointSizes> = {}): CheckpointSizes => ({
  hidden: 16, experts: 4, topK: 2, intermediate: 8, layers: 2,
  ...(family.startsWith('deepseek') ? { firstDense: 1 } : {}),
  ...(family === 'deepseek_v3' ? { groups: 2, topkGroups: 1 } : {}),
  ...base,
});

function decoderGraph(family: Family, s: CheckpointSizes): Graph {
  const source = specText(family, s).replace('  dtype = f32\n', '  dtype = f32\n  context = 16\n');
  const { config, diagnostics } = checkSpec(source, `${family}.moe`);
  expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return buildModelGraph(config!);
}

const irWeights = (graph: Graph): IrWeight[] => graph.params.map((p) => ({ name: p.name, shape: p.type.shape as number[] }));

/** A whole-model checkpoint of `family`, its decoder graph and the graph's weights read from it. */
async function loadWhole(family: Family, s: CheckpointSizes, options: Omit<CheckpointOptions, 'seed' | 'wholeModel'> = {}) {
  const dir = tempDir();
  const written = writeRandomCheckpoint(dir, family, s, { seed, wholeModel: true, ...options });
  const graph = decoderGraph(family, s);
  const checkpoint = CheckpointDir.open(dir);
  const weights = await readHfWeights(family, checkpointReader(checkpoint), irWeights(graph), { config: written.config });
  return { dir, written, graph, checkpoint, weights };
}

// transformers' names for the tensors outside the MoE blocks (modeling_<family>.py), by IR name.
const ATTENTION: Record<string, string> = {
  q: 'q_proj.weight', k: 'k_proj.weight', v: 'v_proj.weight', o: 'o_proj.weight',
  q_bias: 'q_proj.bias', k_bias: 'k_proj.bias', v_bias: 'v_proj.bias', o_bias: 'o_proj.bias',
  q_norm: 'q_norm.weight', k_norm: 'k_norm.weight', sinks: 'sinks',
  q_a: 'q_a_proj.weight', q_a_norm: 'q_a_layernorm.weight', q_b: 'q_b_proj.weight',
  kv_a: 'kv_a_proj_with_mqa.weight', kv_a_norm: 'kv_a_layernorm.weight', kv_b: 'kv_b_proj.weight',
};

/**
 * IR weight `name` of `shape` made from the written HF tensors as transformers lays them out;
 * `used` collects the tensors it took.
 */
function expectedWeight(family: Family, name: string, shape: readonly number[], values: ReadonlyMap<string, Float32Array>, used: Set<string>): Float32Array {
  const hf = (tensor: string): Float32Array => {
    used.add(tensor);
    const v = values.get(tensor);
    if (!v) throw new Error(`${name}: the fixture wrote no tensor ${tensor}`);
    return v;
  };
  const top: Record<string, string> = { 'embed.table': 'model.embed_tokens.weight', 'final_norm.weight': 'model.norm.weight', 'final_norm.bias': 'model.norm.bias' };
  if (top[name]) return hf(top[name]);
  if (name.startsWith('lm_head.')) return hf(name);
  const [, layer, group, suffix] = /^layers\.(\d+)\.(\w+)\.(.+)$/.exec(name)!;
  const p = `model.layers.${layer}`;
  switch (group) {
    case 'attn_norm': return hf(`${p}.input_layernorm.${suffix}`);
    case 'mlp_norm': return hf(`${p}.post_attention_layernorm.${suffix}`);
    case 'attn': return hf(`${p}.self_attn.${ATTENTION[suffix!]}`);
    case 'mlp': return hf(`${p}.mlp.${suffix}_proj.weight`);
  }
  return expectedMoeWeight(family, `${p}.${family === 'mixtral' || family === 'phimoe' ? 'block_sparse_moe' : 'mlp'}`, suffix!, shape, hf);
}

function expectedMoeWeight(family: Family, p: string, suffix: string, shape: readonly number[], hf: (tensor: string) => Float32Array): Float32Array {
  const [E, rows, cols] = shape as [number, number, number];
  if (family === 'gpt_oss') {
    // GptOssExperts: gate_up_proj [E, H, 2I] with gate at even columns, up at odd; down_proj [E, I, H]; both x @ W.
    const half = suffix.startsWith('experts.up') ? 1 : 0;
    const I = rows;
    switch (suffix) {
      case 'router.weight': return hf(`${p}.router.weight`);
      case 'router.bias': return hf(`${p}.router.bias`);
      case 'experts.down_bias': return hf(`${p}.experts.down_proj_bias`);
      case 'experts.gate_bias':
      case 'experts.up_bias': {
        const b = hf(`${p}.experts.gate_up_proj_bias`);
        return Float32Array.from({ length: E * I }, (_, j) => b[Math.floor(j / I) * 2 * I + 2 * (j % I) + half]!);
      }
      case 'experts.gate':
      case 'experts.up': {
        const w = hf(`${p}.experts.gate_up_proj`);
        return Float32Array.from({ length: E * I * cols }, (_, j) => {
          const [e, i, h] = [Math.floor(j / (I * cols)), Math.floor(j / cols) % I, j % cols];
          return w[(e * cols + h) * 2 * I + 2 * i + half]!;
        });
      }
      case 'experts.down': {
        const w = hf(`${p}.experts.down_proj`);
        return Float32Array.from({ length: E * rows * cols }, (_, j) => {
          const [e, h, i] = [Math.floor(j / (rows * cols)), Math.floor(j / cols) % rows, j % cols];
          return w[(e * cols + i) * rows + h]!;
        });
      }
    }
  }
  const experts = family === 'mixtral' || family === 'phimoe' ? { gate: 'w1', up: 'w3', down: 'w2' } : { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
  const shared = family === 'qwen2_moe' ? 'shared_expert' : 'shared_experts';
  const m = /^(experts|shared)\.(gate|up|down)$/.exec(suffix);
  if (m?.[1] === 'experts') {
    const out = new Float32Array(E * rows * cols);
    for (let e = 0; e < E; e++) out.set(hf(`${p}.experts.${e}.${experts[m[2] as 'gate']}.weight`), e * rows * cols);
    return out;
  }
  if (m?.[1] === 'shared') return hf(`${p}.${shared}.${m[2]}_proj.weight`);
  const named: Record<string, string> = { 'router.weight': 'gate.weight', 'router.correction_bias': 'gate.e_score_correction_bias', 'shared_gate.weight': 'shared_expert_gate.weight' };
  return hf(`${p}.${named[suffix]}`);
}

function expectRunnable(graph: Graph, weights: ReadonlyMap<string, Float32Array>): void {
  const logits = new ReferenceSession(graph, (p) => weights.get(p.name)!).forward([1, 2, 3]);
  expect(logits.shape).toEqual([3, 64]);
  const data = logits.data as Float32Array;
  expect(data.every(Number.isFinite)).toBe(true);
  expect(Math.max(...data) - Math.min(...data)).toBeGreaterThan(1e-3);
}

describe('readHfWeights: the whole decoder of every family', () => {
  FAMILIES.forEach((family, index) => {
    it(`${family}: every IR param from its tensor, in the IR layout; the reference interpreter runs on them`, async () => {
      const s = sizes(family);
      const { written, graph, checkpoint, weights } = await loadWhole(family, s, { shards: 1 + (index % 3) });
      const used = new Set<string>();
      for (const p of graph.params) {
        const got = weights.get(p.name)!;
        expect(got, p.name).toBeDefined();
        expect(got.length, p.name).toBe((p.type.shape as number[]).reduce((a, d) => a * d, 1));
        expect(got, p.name).toEqual(expectedWeight(family, p.name, p.type.shape as number[], written.values, used));
      }
      // Every tensor of the checkpoint is some IR weight's: nothing is silently left out.
      expect([...used].sort()).toEqual(checkpoint.names().sort());
      expectRunnable(graph, weights);
    });
  });
});

describe('readHfWeights: stored dtypes', () => {
  it('bf16 (phimoe): each weight is the stored bf16 value', async () => {
    const s = sizes('phimoe');
    const { written, graph, weights } = await loadWhole('phimoe', s, { dtype: 'BF16' });
    const used = new Set<string>();
    for (const p of graph.params) expect(weights.get(p.name), p.name).toEqual(expectedWeight('phimoe', p.name, p.type.shape as number[], written.values, used));
    expectRunnable(graph, weights);
  });

  it('FP8 (deepseek_v3): attention and dense MLP projections are decoded by their block scales too', async () => {
    const block = [8, 8] as const;
    const s = sizes('deepseek_v3');
    const { written, graph, checkpoint, weights } = await loadWhole('deepseek_v3', s, { fp8Experts: { blockSize: block } });
    for (const [irName, tensor] of [['layers.1.attn.kv_a', 'model.layers.1.self_attn.kv_a_proj_with_mqa.weight'], ['layers.0.mlp.down', 'model.layers.0.mlp.down_proj.weight']] as const) {
      expect(checkpoint.dtype(tensor)).toBe('F8_E4M3');
      const [rows, cols] = checkpoint.shape(tensor) as [number, number];
      const codes = checkpoint.readBytes(tensor);
      const scales = checkpoint.readF32(`${tensor}_scale_inv`);
      const scaleCols = Math.ceil(cols / block[1]);
      const decoded = Float32Array.from({ length: rows * cols }, (_, j) => {
        const [r, c] = [Math.floor(j / cols), j % cols];
        return E4M3_VALUES[codes[j]!]! * scales[Math.floor(r / block[0]) * scaleCols + Math.floor(c / block[1])]!;
      });
      expect(weights.get(irName), irName).toEqual(decoded);
    }
    // Norms, embedding and LM head stay as they were written.
    for (const [irName, tensor] of [['layers.1.attn.kv_a_norm', 'model.layers.1.self_attn.kv_a_layernorm.weight'], ['lm_head.weight', 'lm_head.weight']]) {
      expect(weights.get(irName!), irName).toEqual(written.values.get(tensor!));
    }
    expectRunnable(graph, weights);
  });

  it('MXFP4 experts (gpt_oss): the rest of the decoder is read beside them', async () => {
    const s = sizes('gpt_oss', { hidden: 32, intermediate: 32 });
    const { written, graph, weights } = await loadWhole('gpt_oss', s, { mxfp4Experts: true });
    expect(written.tensors).toContain('model.layers.1.mlp.experts.gate_up_proj_blocks');
    expect(weights.get('layers.1.attn.sinks')).toEqual(written.values.get('model.layers.1.self_attn.sinks'));
    expect(weights.get('layers.1.moe.experts.gate')!.every(Number.isFinite)).toBe(true);
    expectRunnable(graph, weights);
  });
});

/** A copy of F32 checkpoint `written` (one file) with its tensors edited, in a new directory. */
function editedCheckpoint(written: WrittenCheckpoint, from: string, edit: (tensors: Record<string, TensorToEncode>) => void): string {
  const checkpoint = CheckpointDir.open(from);
  const tensors: Record<string, TensorToEncode> = Object.fromEntries(written.tensors.map((n) =>
    [n, { dtype: 'F32', shape: checkpoint.shape(n), data: written.values.get(n)! } satisfies TensorToEncode]));
  edit(tensors);
  const dir = tempDir();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(written.config));
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  return dir;
}

/** A reader that counts the tensors it reads. */
function counting(reader: TensorReader): { reader: TensorReader; reads: string[] } {
  const reads: string[] = [];
  return { reads, reader: { ...reader, readF32: (name, rows) => (reads.push(name), reader.readF32(name, rows)) } };
}

function thrownMessage(fn: () => Promise<unknown>): Promise<string> {
  return fn().then(() => { throw new Error('expected an error'); }, (e: Error) => e.message);
}

describe('readHfWeights: a checkpoint the spec does not describe fails before any tensor is read, naming the tensor and the file', () => {
  const s = sizes('qwen3_moe');
  const from = tempDir();
  const written = writeRandomCheckpoint(from, 'qwen3_moe', s, { seed, wholeModel: true });
  const graph = decoderGraph('qwen3_moe', s);
  const read = async (dir: string, family: Family = 'qwen3_moe', g = graph) => {
    const { reader, reads } = counting(checkpointReader(CheckpointDir.open(dir)));
    const message = await thrownMessage(() => readHfWeights(family, reader, irWeights(g)));
    expect(reads).toEqual([]);
    return message;
  };

  it('a missing attention tensor', async () => {
    const dir = editedCheckpoint(written, from, (t) => delete t['model.layers.1.self_attn.k_proj.weight']);
    expect(await read(dir)).toBe(`${join(dir, 'model.safetensors')}: tensor "model.layers.1.self_attn.k_proj.weight" not found ` +
      '(needed for layers.1.attn.k of a qwen3_moe checkpoint)');
  });

  it('a norm of the wrong shape', async () => {
    const dir = editedCheckpoint(written, from, (t) => {
      t['model.layers.0.post_attention_layernorm.weight'] = { dtype: 'F32', shape: [s.hidden - 1], data: new Float32Array(s.hidden - 1).fill(1) };
    });
    expect(await read(dir)).toBe(`${join(dir, 'model.safetensors')}: tensor "model.layers.0.post_attention_layernorm.weight" has shape [${s.hidden - 1}], ` +
      `expected [${s.hidden}] (for layers.0.mlp_norm.weight)`);
  });

  it('a tensor the spec has no weight for, one no IR weight can hold, and a layer past the spec\'s last', async () => {
    const phimoe = tempDir();
    writeRandomCheckpoint(phimoe, 'phimoe', sizes('phimoe'), { seed, wholeModel: true });
    expect(await read(phimoe, 'phimoe', decoderGraph('mixtral', sizes('mixtral')))).toBe(`${join(phimoe, 'model.safetensors')}: ` +
      'tensor "model.layers.0.input_layernorm.bias" is part of layer 0\'s input norm, but the spec has no weight for it (layers.0.attn_norm.bias); ' +
      'the spec does not describe this checkpoint');
    // DeepSeek's attention_bias: biases mla cannot hold.
    const v2 = tempDir();
    const v2Written = writeRandomCheckpoint(v2, 'deepseek_v2', sizes('deepseek_v2'), { seed, wholeModel: true });
    const biased = editedCheckpoint(v2Written, v2, (t) => {
      t['model.layers.0.self_attn.kv_a_proj_with_mqa.bias'] = { dtype: 'F32', shape: [20], data: new Float32Array(20) };
    });
    expect(await read(biased, 'deepseek_v2', decoderGraph('deepseek_v2', sizes('deepseek_v2')))).toBe(`${join(biased, 'model.safetensors')}: ` +
      'tensor "model.layers.0.self_attn.kv_a_proj_with_mqa.bias" is part of layer 0\'s attention, but no IR weight can hold it ' +
      '(mla has no projection biases); moec cannot load this checkpoint');
    const oneLayer = decoderGraph('qwen3_moe', { ...s, layers: 1 });
    expect(await read(from, 'qwen3_moe', oneLayer)).toBe(`${join(from, 'model.safetensors')}: tensor "model.layers.1.input_layernorm.weight" ` +
      'is part of layer 1, but the spec has 1 layer(s); the spec does not describe this checkpoint (num_hidden_layers)');
  });

  it('DeepSeek-V3\'s multi-token-prediction layer after the last is left out, as transformers does', async () => {
    const s3 = sizes('deepseek_v3');
    const v3 = tempDir();
    const v3Written = writeRandomCheckpoint(v3, 'deepseek_v3', s3, { seed, wholeModel: true });
    const withMtp = editedCheckpoint(v3Written, v3, (t) => {
      t['model.layers.2.input_layernorm.weight'] = { dtype: 'F32', shape: [s3.hidden], data: new Float32Array(s3.hidden).fill(1) };
      t['model.layers.2.eh_proj.weight'] = { dtype: 'F32', shape: [s3.hidden, 2 * s3.hidden], data: new Float32Array(2 * s3.hidden * s3.hidden) };
    });
    const graph3 = decoderGraph('deepseek_v3', s3);
    const weights = await readHfWeights('deepseek_v3', checkpointReader(CheckpointDir.open(withMtp)), irWeights(graph3));
    expect(weights.get('layers.1.attn.q_b')).toEqual(v3Written.values.get('model.layers.1.self_attn.q_b_proj.weight'));
  });
});
