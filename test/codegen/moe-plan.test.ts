// The MoE block plan without a GPU: dispatches per path (golden), buffer dataflow, sharding,
// JSON round trip, and the errors for what the backend does not run yet.
import { describe, expect, it, vi } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { defaultTarget } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { builtinRegistry } from '../../compiler/spec/kinds/builtin.js';
import { evalTokenExpr, pathSteps, stepReads, stepWrites, type MoeBlockPlan } from '../../runtime/plan.js';
import { configOf, families, HIDDEN, specOf, type Family } from './moe-fixtures.js';

const DECODE_MAX_TOKENS = defaultTarget().decodeMaxTokens;

const family = (name: string): Family => families.find((f) => f.name === name)!;
const planOf = (fam: Family, options = {}, compile?: string): MoeBlockPlan => compileMoeBlockPlan(configOf(fam, compile), 0, options);
const labels = (plan: MoeBlockPlan, tokens: number) => pathSteps(plan, tokens).map((s) => s.label);

describe('dispatches per block', () => {
  it('mixtral-like: 5 prefill (router, align, gate/up, down, combine), 3 decode (router, gate/up, down + combine)', () => {
    const plan = planOf(family('mixtral'));
    expect(labels(plan, 64)).toEqual(['router', 'route-align', 'experts gate/up [0, 8)', 'experts down [0, 8)', 'combine']);
    expect(labels(plan, 1)).toEqual(['router', 'experts gate/up GEMV', 'experts down GEMV + combine']);
  });

  it('with a shared expert: 5 prefill (it is virtual expert E of the grouped GEMMs), 3 decode; the sigmoid gate is folded into the combine', () => {
    for (const name of ['qwen2-moe', 'deepseek-v2', 'deepseek-v3']) {
      const plan = planOf(family(name));
      expect(labels(plan, 64), name).toEqual(['router', 'route-align', 'experts gate/up [0, 16)', 'experts down [0, 16)', 'combine'].map((l) => (name === 'qwen2-moe' ? l.replace('16', '12') : l)));
      expect(plan.decode.length, name).toBe(3);
    }
    expect(planOf(family('qwen2-moe')).kernels.map((k) => k.name)).toContain('combine_shared_gated_in_slots');
  });

  it('without group-shared-expert, prefill keeps the shared expert\'s dense GEMMs: 7 dispatches', () => {
    const plan = planOf(family('qwen2-moe'), { disabledPasses: ['group-shared-expert'] });
    expect(labels(plan, 64)).toEqual(['router', 'route-align', 'experts gate/up [0, 12)', 'experts down [0, 12)', 'shared gate/up', 'shared down', 'combine']);
    expect(plan.kernels.map((k) => k.name)).toContain('combine_shared_gated');
  });

  it('without fuse-decode, decode takes 4 dispatches, 6 with a shared expert', () => {
    const unfused = { disabledPasses: ['fuse-decode'] };
    expect(labels(planOf(family('mixtral'), unfused), 1)).toEqual(['router', 'experts gate/up GEMV [0, 8)', 'experts down GEMV [0, 8)', 'combine']);
    expect(planOf(family('qwen2-moe'), unfused).decode.length).toBe(6);
  });

  it('the token count picks the path: decode up to 8 tokens, prefill above', () => {
    const plan = planOf(family('olmoe'));
    expect(plan.decodeMaxTokens).toBe(DECODE_MAX_TOKENS);
    expect(pathSteps(plan, 8)).toBe(plan.decode);
    expect(pathSteps(plan, 9)).toBe(plan.prefill);
  });

  it('S expert shards: 3 + 2 S prefill and 2 + 2 S decode dispatches (one shard: decode fused into 3)', () => {
    const gptOss = family('gpt-oss'); // 8 experts of 60 x 72 f32
    for (const perShard of [2, 3, 8]) {
      const plan = planOf(gptOss, { maxStorageBufferBindingSize: perShard * 60 * HIDDEN * 4 });
      const shards = Math.ceil(8 / perShard);
      expect(plan.prefill.length, `${perShard} experts per shard`).toBe(3 + 2 * shards);
      expect(plan.decode.length).toBe(shards === 1 ? 3 : 2 + 2 * shards);
      expect(plan.buffers.filter((b) => b.weight?.param.endsWith('experts.down_bias')).map((b) => b.weight!.rowEnd - b.weight!.rowBegin)).toEqual(
        Array.from({ length: shards }, (_, s) => Math.min(perShard, 8 - s * perShard)),
      );
    }
  });
});

describe('plan structure', () => {
  for (const fam of families) {
    it(`${fam.name}: every step reads only what the input, a weight or an earlier step provides`, () => {
      const plan = planOf(fam);
      for (const path of [plan.prefill, plan.decode]) {
        const ready = new Set(plan.buffers.filter((b) => b.role === 'weight' || b.role === 'input').map((b) => b.name));
        for (const step of path) {
          for (const name of stepReads(step)) expect(ready.has(name), `${step.label} reads ${name}`).toBe(true);
          for (const name of stepWrites(step)) ready.add(name);
        }
        expect(ready.has(plan.output)).toBe(true);
      }
    });
  }

  it('is plain data: JSON round trip changes nothing', () => {
    const plan = planOf(family('deepseek-v3'));
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it('lists the weights in the IR layout and sizes buffers from the token count', () => {
    const plan = planOf(family('gpt-oss'));
    expect(plan.weights.find((w) => w.name === 'layers.0.moe.experts.gate')!.shape).toEqual([8, 60, HIDDEN]);
    expect(plan.weights.find((w) => w.name === 'layers.0.moe.experts.down')!.shape).toEqual([8, HIDDEN, 60]);
    expect(plan.weights.map((w) => w.name)).toContain('layers.0.moe.router.bias');
    const slotOut = plan.buffers.find((b) => b.name === 'slot_out')!;
    expect(evalTokenExpr(slotOut.elements, 10)).toBe(10 * 4 * HIDDEN);
  });

  it('WGSL carries no Handlebars leftovers', () => {
    for (const fam of families) for (const k of planOf(fam).kernels) expect(k.wgsl, `${fam.name}/${k.name}`).not.toMatch(/\{\{|\}\}|&lt;|&gt;/);
  });
});

describe('quantized weights in the plan', () => {
  const mixtral = family('mixtral');
  const quantized = (compile: string, options = {}) => planOf(family('qwen2-moe'), options, `target = webgpu\n dtype = f32\n ${compile}`);

  it('expert and shared matrices are packed u32 words; the router and shared gate are uploaded dequantized', () => {
    const plan = quantized('quantize experts = int4(group = 8)\n quantize shared = int8(group = 4)\n quantize router = int8(group = 8)');
    const weight = (suffix: string) => plan.weights.find((w) => w.name.endsWith(suffix))!;
    expect(weight('experts.gate')).toMatchObject({ format: { format: 'int4', group: 8 }, storage: 'packed' });
    expect(weight('shared.down')).toMatchObject({ format: { format: 'int8', group: 4 }, storage: 'packed' });
    expect(weight('router.weight')).toMatchObject({ format: { format: 'int8', group: 8 }, storage: 'dequantized' });
    expect(weight('shared_gate.weight')).toMatchObject({ format: { format: 'int8', group: 4 }, storage: 'dequantized' });
    const buffer = (name: string) => plan.buffers.find((b) => b.name === name)!;
    // int4 [12, 56, 72], group 8: 4032 elements a matrix = 504 value words + 252 scale words.
    expect(buffer('layers.0.moe.experts.gate')).toMatchObject({ dtype: 'u32', elements: { constant: 12 * 756 } });
    // int8 [100, 72], group 4: 1800 value words + 1800 f32 scales.
    expect(buffer('layers.0.moe.shared.gate')).toMatchObject({ dtype: 'u32', elements: { constant: 3600 } });
    expect(buffer('layers.0.moe.router.weight')).toMatchObject({ dtype: 'f32', elements: { constant: 12 * 72 } });
    expect(plan.kernels.map((k) => k.name)).toEqual(expect.arrayContaining(['grouped_gemm_gateup_72x56_int4g8_shared100_int8g4', 'grouped_gemm_down_weighted_56x72_int4g8_shared100_int8g4', 'decode_down_combine_56_int4g8x72_shared100_int8g4_gated']));
  });

  it('experts are sharded by their packed size', () => {
    // mixtral [8, 40, 72]: 11520 bytes per f32 expert matrix, 2160 in int4 group 8 (360 value + 180 scale words).
    const gateShards = (plan: MoeBlockPlan) => plan.buffers.filter((b) => b.weight?.param.endsWith('experts.gate')).map((b) => b.elements.constant);
    const maxStorageBufferBindingSize = 3 * 11520;
    expect(gateShards(planOf(mixtral, { maxStorageBufferBindingSize }))).toEqual([3 * 2880, 3 * 2880, 2 * 2880]);
    expect(gateShards(planOf(mixtral, { maxStorageBufferBindingSize }, 'target = webgpu\n dtype = f32\n quantize experts = int4(group = 8)'))).toEqual([8 * 540]);
  });

  it('each format renders its own decode, and f32 kernels keep their names', () => {
    for (const format of ['int4(group = 8)', 'int8(group = 8)', 'mxfp4(group = 8)', 'f16', 'bf16']) {
      const plan = planOf(mixtral, {}, `target = webgpu\n dtype = f32\n quantize experts = ${format}`);
      const gemm = plan.kernels.find((k) => k.name.startsWith('grouped_gemm_gateup'))!;
      expect(gemm.wgsl, format).toMatch(/fn w1_at4\(m: u32, i: u32\) -> vec4<f32>/);
      expect(gemm.wgsl).toContain('var<storage, read> w0: array<u32>;');
    }
    expect(planOf(mixtral).kernels.map((k) => k.name)).toContain('grouped_gemm_gateup_72x40');
  });
});

describe('token rounding', () => {
  it('sonic rounds on prefill (router with probabilities, decide, apply) and leaves decode exact', () => {
    const plan = planOf(family('mixtral'), {}, 'target = webgpu\n token_rounding = sonic(mode = nearest, tile = 16)');
    expect(labels(plan, 64)).toEqual(['router', 'round tokens (decide)', 'round tokens (apply)', 'route-align', 'experts gate/up [0, 8)', 'experts down [0, 8)', 'combine']);
    expect(labels(plan, 1)).toEqual(['router', 'experts gate/up GEMV', 'experts down GEMV + combine']);
    // The added pairs: 8 experts x 15 more slot rows than exact routing.
    const exact = planOf(family('mixtral'));
    const rows = (p: MoeBlockPlan) => p.buffers.find((b) => b.name === 'slot_out')!.elements.constant;
    expect(rows(plan) - rows(exact)).toBe(8 * 15 * HIDDEN);
  });
});

describe('what the WebGPU backend refuses, and how it says so', () => {
  const mixtral = family('mixtral');
  it('a weight format no kernel reads (a quantization kind with a storage cost but no WGSL load)', () => {
    const kinds = builtinRegistry().clone();
    kinds.register({ name: 'nf4', category: 'quant', doc: 'no kernel', params: [{ name: 'group', doc: '', value: { type: 'int', min: 1 }, default: 8 }], storage: (p) => ({ bits: 4, scaleBits: 4, group: p['group'] as number }) });
    const { config } = checkSpec(specOf(mixtral, 'target = webgpu\n dtype = f32\n quantize experts = nf4(group = 8)'), 'mixtral.moe', kinds);
    expect(() => compileMoeBlockPlan(config!, 0, { kinds })).toThrow(
      /layers\.0\.moe\.experts\.gate is stored as nf4<g8>, which the WebGPU kernels cannot read; use f32, f16, bf16, int8, int4, int2 or mxfp4 in `quantize experts = \.\.\.`/,
    );
  });
  it('sonic token rounding with expert biases under the default 8 storage buffers', () => {
    expect(() => planOf(family('gpt-oss'), {}, 'target = webgpu\n token_rounding = sonic(mode = up)')).toThrow(/token_rounding = sonic with expert biases needs 9 storage buffers/);
  });
  it('an expert bigger than one binding', () => {
    expect(() => planOf(mixtral, { maxStorageBufferBindingSize: 1000 })).toThrow(/splitting a single expert across bindings is not supported yet/);
  });
  it('a decode path longer than the GEMV serves (it would drop the slots past its MAX_ROWS)', async () => {
    vi.resetModules();
    vi.doMock('../../codegen/kernels/expert-gemv/expert-gemv.js', async (original) => ({ ...(await original<object>()), GEMV_MAX_ROWS: 4 }));
    try {
      const { compileMoeBlockPlan: compileWithSmallGemv } = await import('../../compiler/moe-block-plan.js');
      expect(() => compileWithSmallGemv(configOf(mixtral), 0)).toThrow(`the decode path takes up to ${DECODE_MAX_TOKENS} tokens, but its GEMV computes at most 4 rows`);
    } finally {
      vi.doUnmock('../../codegen/kernels/expert-gemv/expert-gemv.js');
      vi.resetModules();
    }
  });
});
