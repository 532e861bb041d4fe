// Benchmark: `moec pack` throughput and peak memory on a Mixtral-shaped BF16 checkpoint (written
// once into MOEC_BENCH_DIR or a temporary folder, one shard per layer, streamed), with the experts
// packed as int4 and int8 by 1 and 2 worker threads. Each pack runs in a child process, so its peak
// resident memory (getrusage, every thread) is its own; the checkpoint is several times larger
// than what a worker holds at once (one piece of one expert weight buffer). Never passes or fails.
//   npm run build && node dist/bench/pack.js        (MOEC_BENCH_LAYERS=n layers, default 8)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alignColumns } from '../compiler/placement/compare-table.js';
import { checkSpec } from '../compiler/spec/check.js';
import { packModel, type PackResult } from '../compiler/pack/pack-model.js';
import { encodeSafetensors, type TensorToEncode } from '../runtime/safetensors-encode.js';

const H = 1024;
const I = 2816;
const E = 8;
const V = 8192;
const HEADS = 8;
const KV_HEADS = 2;
const HEAD_DIM = 128;
const LAYERS = Number(process.env.MOEC_BENCH_LAYERS ?? 8);

const specOf = (quantize: string): string => `
model "bench-pack" {
  hidden = ${H}
  vocab = ${V}
  layers = ${LAYERS}
  norm = rmsnorm(eps = 1e-5)
  attention = gqa(heads = ${HEADS}, kv_heads = ${KV_HEADS}, head_dim = ${HEAD_DIM}, rope_theta = 1e6)
  moe {
    experts = ${E}
    top_k = 2
    router = softmax_topk(renormalize = true)
    expert = swiglu(intermediate = ${I})
  }
}
compile {
  ${quantize}
}
`;

/** Random BF16 values of magnitude ~2^-6 (a cheap LCG: the point is the bytes, not their statistics). */
function randomBf16(seed: number, shape: number[]): TensorToEncode {
  const n = shape.reduce((a, d) => a * d, 1);
  const bits = new Uint16Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = ((s >>> 16) & 0x8000) | (0x3c00 + ((s >>> 8) & 0x1ff)); // sign, exponent 2^-7..2^-6, 7 mantissa bits
  }
  return { dtype: 'BF16', shape, data: bits };
}

const ones = (n: number): TensorToEncode => ({ dtype: 'BF16', shape: [n], data: new Uint16Array(n).fill(0x3f80) });

/** config.json and one safetensors shard per layer (the embedding with the first, the head with the last), streamed. */
function writeCheckpoint(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ['MixtralForCausalLM'], model_type: 'mixtral', hidden_size: H, intermediate_size: I, num_hidden_layers: LAYERS, vocab_size: V,
    num_attention_heads: HEADS, num_key_value_heads: KV_HEADS, head_dim: HEAD_DIM, num_local_experts: E, num_experts_per_tok: 2,
    rms_norm_eps: 1e-5, rope_theta: 1e6, tie_word_embeddings: false, max_position_embeddings: 4096, hidden_act: 'silu', torch_dtype: 'bfloat16',
  };
  const weightMap: Record<string, string> = {};
  let seed = 1;
  for (let layer = 0; layer < LAYERS; layer++) {
    const file = `model-${String(layer + 1).padStart(5, '0')}-of-${String(LAYERS).padStart(5, '0')}.safetensors`;
    const p = `model.layers.${layer}`;
    const tensors: Record<string, TensorToEncode> = {
      [`${p}.input_layernorm.weight`]: ones(H),
      [`${p}.post_attention_layernorm.weight`]: ones(H),
      [`${p}.self_attn.q_proj.weight`]: randomBf16(seed++, [HEADS * HEAD_DIM, H]),
      [`${p}.self_attn.k_proj.weight`]: randomBf16(seed++, [KV_HEADS * HEAD_DIM, H]),
      [`${p}.self_attn.v_proj.weight`]: randomBf16(seed++, [KV_HEADS * HEAD_DIM, H]),
      [`${p}.self_attn.o_proj.weight`]: randomBf16(seed++, [H, HEADS * HEAD_DIM]),
      [`${p}.block_sparse_moe.gate.weight`]: randomBf16(seed++, [E, H]),
    };
    for (let e = 0; e < E; e++) {
      const x = `${p}.block_sparse_moe.experts.${e}`;
      tensors[`${x}.w1.weight`] = randomBf16(seed++, [I, H]);
      tensors[`${x}.w3.weight`] = randomBf16(seed++, [I, H]);
      tensors[`${x}.w2.weight`] = randomBf16(seed++, [H, I]);
    }
    if (layer === 0) tensors['model.embed_tokens.weight'] = randomBf16(seed++, [V, H]);
    if (layer === LAYERS - 1) Object.assign(tensors, { 'model.norm.weight': ones(H), 'lm_head.weight': randomBf16(seed++, [V, H]) });
    writeFileSync(join(dir, file), encodeSafetensors(tensors, { format: 'pt' }));
    for (const name of Object.keys(tensors)) weightMap[name] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
}

interface ChildRun {
  checkpoint: string;
  output: string;
  quantize: string;
  workers: number;
}

/** In the child: one pack, its result as JSON on stdout. */
async function packOnce(run: ChildRun): Promise<void> {
  const source = specOf(run.quantize);
  const { config, diagnostics } = checkSpec(source, 'bench-pack.moe');
  if (!config) throw new Error(diagnostics.map((d) => d.message).join('\n'));
  const result = await packModel(config, { checkpoint: run.checkpoint, output: run.output, specSource: source, workers: run.workers });
  process.stdout.write(JSON.stringify({ ...result, manifest: { shards: result.manifest.shards.length } }));
}

async function main(): Promise<void> {
  const root = process.env.MOEC_BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'moec-bench-pack-'));
  const checkpoint = join(root, 'checkpoint');
  if (!existsSync(join(checkpoint, 'config.json')) || JSON.parse(readFileSync(join(checkpoint, 'config.json'), 'utf8')).num_hidden_layers !== LAYERS) {
    rmSync(checkpoint, { recursive: true, force: true });
    const start = performance.now();
    writeCheckpoint(checkpoint);
    console.log(`wrote a ${LAYERS}-layer Mixtral-shaped BF16 checkpoint to ${checkpoint} in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  }
  const rows = [['experts', 'workers', 'checkpoint', 'packed', 'shards', 'time', 'checkpoint MB/s', 'packed MB/s', 'peak RSS']];
  const MB = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
  for (const quantize of ['quantize experts = int4(group = 32)', 'quantize experts = int8(group = 32)']) {
    for (const workers of [1, 2]) {
      const output = join(root, 'packed');
      const run: ChildRun = { checkpoint, output, quantize, workers };
      const json = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(run)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      const r = JSON.parse(json) as PackResult & { manifest: { shards: number } };
      rows.push([quantize.replace('quantize experts = ', ''), String(workers), MB(r.checkpointBytes), MB(r.bytes), String(r.manifest.shards), `${r.seconds.toFixed(1)} s`,
        (r.checkpointBytes / 1e6 / r.seconds).toFixed(1), (r.bytes / 1e6 / r.seconds).toFixed(1), MB(r.peakRssBytes)]);
      rmSync(output, { recursive: true, force: true });
    }
  }
  console.log(`\nmoec pack: ${LAYERS} layers, ${E} experts of ${I} x ${H}, vocab ${V}; BF16 checkpoint read as f32, the rest of the model f32`);
  process.stdout.write(alignColumns(rows));
  if (!process.env.MOEC_BENCH_DIR) rmSync(root, { recursive: true, force: true });
}

if (process.argv[2] === '--child') await packOnce(JSON.parse(process.argv[3]!) as ChildRun);
else await main();
