// `moec import`: every real HF config imports to a spec that checks and whose parameter counts
// match the vendors' published figures; user errors name the file and field and write nothing.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { importCommand } from '../../compiler/cli/import-command.js';
import { ImportError } from '../../compiler/import/config-reader.js';
import { importHfConfig, modelNameFromPath } from '../../compiler/import/import-config.js';
import { compileModelGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { formatSpec } from '../../compiler/spec/format.js';
import { computeStats, type ModelStats } from '../../compiler/stats.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'hf-configs');

interface Published {
  config: string;
  model: string;
  totalParams: number;
  activeParams: number;
  activeCounts: string;
  precision: number;
  activePrecision: number;
}

const published = JSON.parse(readFileSync(join(fixtures, 'published.json'), 'utf8')) as Published[];

/** One unit in the last significant digit of `published` given to `digits` significant digits. */
function lastDigitUnit(published: number, digits: number): number {
  return 10 ** (Math.floor(Math.log10(published)) - digits + 1);
}

/**
 * Whether a computed count agrees with a vendor figure written to `digits` significant digits:
 * within 1%, or inside the figure's rounding interval [p - u/2, p + u/2). With `truncated`, also
 * inside [p, p + u): Qwen3-30B-A3B (3.353B, published "3.3B") and DeepSeek-V2-Lite (2.451B, "2.4B")
 * lie just above their rounding intervals, so these vendors appear to truncate rather than round.
 * (Truncation cannot tell DeepSeek-V3's two counts apart, 36.6B and 37.6B both give "37B"; the
 * count compared is the one published.json says the vendor uses.)
 */
function agreesWithPublished(computed: number, published: number, digits: number, truncated = false): boolean {
  const unit = lastDigitUnit(published, digits);
  if (Math.abs(computed / published - 1) <= 0.01) return true;
  if (computed >= published - unit / 2 && computed < published + unit / 2) return true;
  return truncated && computed >= published && computed < published + unit;
}

/** published.json says in words what the vendor's active figure counts; map it to a stats field. */
function activeCountFor(entry: Published): keyof ModelStats {
  if (/but not the (input )?embedding/i.test(entry.activeCounts)) return 'activeParamsNonEmbedding';
  if (/^embedding \+ lm head/i.test(entry.activeCounts)) return 'activeParams';
  throw new Error(`${entry.config}: cannot tell what activeCounts counts: ${entry.activeCounts}`);
}

function importFixture(configFile: string) {
  const file = join(fixtures, configFile);
  const result = importHfConfig(readFileSync(file, 'utf8'), file);
  return { result, stats: computeStats(compileModelGraph(result.config), result.config) };
}

describe('moec import: the fixture configs', () => {
  it('has a published entry for every fixture config', () => {
    const configs = readdirSync(fixtures).filter((f) => f.endsWith('.config.json')).sort();
    expect(published.map((p) => p.config).sort()).toEqual(configs);
  });

  for (const entry of published) {
    describe(entry.model, () => {
      const { result, stats } = importFixture(entry.config);

      it('generates a spec that passes checkSpec and names its source', () => {
        const checked = checkSpec(result.source, 'imported.moe');
        expect(checked.diagnostics).toEqual([]);
        expect(checked.config).toEqual(result.config);
        expect(result.source.split('\n')[0]).toContain(entry.config);
        expect(result.source.split('\n')[0]).toContain(`model_type "${result.modelType}"`);
        expect(formatSpec(result.source, 'imported.moe').text, 'imported specs are in moec fmt\'s layout').toBe(result.source);
      });

      it(`matches the published total (${entry.totalParams / 1e9}B)`, () => {
        expect(agreesWithPublished(stats.totalParams, entry.totalParams, entry.precision), `computed ${stats.totalParams}`).toBe(true);
      });

      const count = activeCountFor(entry);
      it(`matches the published active count (${entry.activeParams / 1e9}B, compared with ${count})`, () => {
        expect(agreesWithPublished(stats[count], entry.activeParams, entry.activePrecision, true), `computed ${stats[count]}`).toBe(true);
      });
    });
  }
});

describe('agreesWithPublished', () => {
  it('accepts rounding and truncation to the published precision', () => {
    expect(agreesWithPublished(3.353e9, 3.3e9, 2, true)).toBe(true); // Qwen3-30B-A3B, truncated
    expect(agreesWithPublished(3.353e9, 3.3e9, 2)).toBe(false); // ... but not rounded, and +1.6%
    expect(agreesWithPublished(14.249e9, 14e9, 2)).toBe(true); // +1.8%, inside [13.5B, 14.5B)
  });

  it('rejects a 10% error and a wrong count', () => {
    const mixtral = importFixture('mixtral-8x7b-v0.1.config.json').stats;
    expect(agreesWithPublished(mixtral.activeParams, 12.9e9, 3, true)).toBe(true);
    expect(agreesWithPublished(mixtral.activeParams * 1.1, 12.9e9, 3, true)).toBe(false);
    expect(agreesWithPublished(mixtral.activeParams * 0.9, 12.9e9, 3, true)).toBe(false);
    expect(agreesWithPublished(mixtral.totalParams * 1.1, 46.7e9, 3)).toBe(false);
    // gpt-oss-20b counted with the embedding table (4.19B) is not OpenAI's 3.61B.
    const gptOss = importFixture('gpt-oss-20b.config.json').stats;
    expect(agreesWithPublished(gptOss.activeParams, 3.61e9, 3, true)).toBe(false);
    // DeepSeek-V2-Lite with the embedding (2.66B) is not DeepSeek's 2.4B, even truncated.
    const lite = importFixture('deepseek-v2-lite.config.json').stats;
    expect(agreesWithPublished(lite.activeParams, 2.4e9, 2, true)).toBe(false);
  });
});

describe('moec import: what each family maps to', () => {
  const source = (configFile: string) => importFixture(configFile).result.source;

  it('maps Qwen2-MoE sparse steps, dense layers and the shared expert', () => {
    const base = JSON.parse(readFileSync(join(fixtures, 'qwen1.5-moe-a2.7b.config.json'), 'utf8'));
    const config = { ...base, decoder_sparse_step: 2, mlp_only_layers: [5], norm_topk_prob: true };
    const { source, config: model } = importHfConfig(JSON.stringify(config), 'qwen.config.json');
    expect(source).toContain('every = 2');
    expect(source).toContain('offset = 1');
    expect(source).toContain('dense_layers = [5]');
    expect(source).toContain('mlp = swiglu(intermediate = 5632)');
    expect(model.moe!.router).toEqual({ kind: 'softmax_topk', params: expect.objectContaining({ renormalize: true }) });
    expect(model.moe!.shared).toEqual({ kind: 'swiglu', params: expect.objectContaining({ intermediate: 5632 }) });
    expect(model.moe!.sharedGate).toBe('sigmoid');
  });

  it('maps DeepSeek routers, shared experts and MLA', () => {
    const v2 = importFixture('deepseek-v2.config.json').result.config;
    expect(v2.moe!.router.params).toMatchObject({ renormalize: false, groups: 8, topk_groups: 3, scale: 16 });
    expect(v2.moe!.shared!.params['intermediate']).toBe(1536 * 2);
    expect(v2.moe!.firstLayer).toBe(1);
    const lite = importFixture('deepseek-v2-lite.config.json').result.config;
    expect(lite.attention.params['q_lora_rank']).toBe(0);
    const v3 = importFixture('deepseek-v3.config.json').result;
    expect(v3.config.moe!.router).toEqual({ kind: 'sigmoid_topk', params: { renormalize: true, groups: 8, topk_groups: 4, scale: 2.5, correction_bias: true } });
    expect(v3.notes.join('\n')).toMatch(/num_nextn_predict_layers/);
  });

  it('maps gpt-oss layer_types to a sliding window with full_every', () => {
    const config = importFixture('gpt-oss-20b.config.json').result.config;
    expect(config.attention.params).toMatchObject({ sliding_window: 128, full_every: 2, sinks: true, qkv_bias: true, o_bias: true });
    expect(config.moe!.expert).toEqual({ kind: 'clamped_swiglu', params: expect.objectContaining({ intermediate: 2880, limit: 7 }) });
    expect(config.compile.quantize.experts?.kind).toBe('mxfp4');
  });

  it('maps PhiMoE to sparsemixer, LayerNorm and biases', () => {
    const config = importFixture('phi-3.5-moe-instruct.config.json').result.config;
    expect(config.moe!.router).toEqual({ kind: 'sparsemixer', params: { jitter_eps: 0.01 } });
    expect(config.norm.kind).toBe('layernorm');
    expect(config.lmHeadBias).toBe(true);
    expect(config.attention.params).toMatchObject({ qkv_bias: true, o_bias: true });
  });

  it('writes what it cannot express as comments', () => {
    expect(source('deepseek-v3.config.json')).toMatch(/^\/\/ - num_nextn_predict_layers = 1: the multi-token prediction module is left out/m);
    expect(source('mixtral-8x7b-v0.1.config.json')).not.toMatch(/not expressible/i);
    expect(source('deepseek-v3.config.json')).not.toMatch(/rope_scaling/);
  });

  it('maps rope_scaling to a rope kind, as transformers computes it', () => {
    const rope = (file: string) => importFixture(file).result.config.rope;
    expect(rope('mixtral-8x7b-v0.1.config.json')).toEqual({ kind: 'default', params: {} });
    expect(rope('deepseek-v3.config.json')).toEqual({ kind: 'yarn', params: { factor: 40, original_context: 4096, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1, attention_factor: 0, truncate: true } });
    expect(rope('deepseek-v2-lite.config.json').params).toMatchObject({ factor: 40, mscale: 0.707, mscale_all_dim: 0.707 });
    expect(rope('gpt-oss-20b.config.json')).toEqual({ kind: 'yarn', params: { factor: 32, original_context: 4096, beta_fast: 32, beta_slow: 1, mscale: 0, mscale_all_dim: 0, attention_factor: 0, truncate: false } });
    // The fixture leaves out Phi-3.5-MoE's 64 + 64 factors; these are made up, with the real mscales.
    const phi = JSON.parse(readFileSync(join(fixtures, 'phi-3.5-moe-instruct.config.json'), 'utf8')) as Record<string, unknown>;
    const factors = (base: number) => Array.from({ length: 64 }, (_, i) => base + i / 100);
    const scaling = { type: 'longrope', short_factor: factors(1), long_factor: factors(1.5), short_mscale: 1.243163121016122, long_mscale: 1.243163121016122, original_max_position_embeddings: 4096 };
    const longrope = checkSpec(importHfConfig(JSON.stringify({ ...phi, rope_scaling: scaling }), 'phi.config.json').source, 'phi.moe').config!.rope;
    expect(longrope).toEqual({ kind: 'longrope', params: { short_factor: factors(1), long_factor: factors(1.5), original_context: 4096, short_mscale: 1.243163121016122, long_mscale: 1.243163121016122 } });
    // Without mscales, Phi-3's default magnitude sqrt(1 + ln(131072 / 4096) / ln(4096)).
    const { short_mscale: _s, long_mscale: _l, ...bare } = scaling;
    const computed = checkSpec(importHfConfig(JSON.stringify({ ...phi, rope_scaling: bare }), 'phi.config.json').source, 'phi.moe').config!.rope;
    expect(computed.params['short_mscale']).toBeCloseTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 12);
  });

  it('maps the attention details each family\'s modeling code has', () => {
    const attention = (file: string) => importFixture(file).result.config.attention.params;
    // modeling_olmoe.py: q_norm / k_norm over the whole projections; modeling_qwen3_moe.py: per head.
    expect(attention('olmoe-1b-7b-0924.config.json')).toMatchObject({ qk_norm: true, qk_norm_span: 'projection', clip_qkv: 0 });
    expect(attention('qwen3-30b-a3b.config.json')).toMatchObject({ qk_norm: true, qk_norm_span: 'head' });
    // modeling_deepseek_v3.py scales the softmax by YaRN's mscale^2; modular_deepseek_v2.py does not.
    expect(attention('deepseek-v3.config.json')).toMatchObject({ rope_interleave: true, latent_norm_eps: 1e-6, softmax_mscale: true });
    expect(attention('deepseek-v2-lite.config.json')).toMatchObject({ rope_interleave: true, softmax_mscale: false });
  });

  it('names the model after the config file or its folder', () => {
    expect(modelNameFromPath('fixtures/olmoe-1b-7b-0924.config.json')).toBe('olmoe-1b-7b-0924');
    expect(modelNameFromPath('models/Mixtral-8x7B/config.json')).toBe('Mixtral-8x7B');
  });
});

describe('moec import: errors', () => {
  const mixtral = JSON.parse(readFileSync(join(fixtures, 'mixtral-8x7b-v0.1.config.json'), 'utf8')) as Record<string, unknown>;
  const importError = (text: string, file = 'm.config.json'): string => {
    try {
      importHfConfig(text, file);
    } catch (e) {
      expect(e).toBeInstanceOf(ImportError);
      return (e as Error).message;
    }
    throw new Error('expected an ImportError');
  };

  it('names the rope_scaling field it cannot honour', () => {
    expect(importError(JSON.stringify({ ...mixtral, rope_scaling: { rope_type: 'dynamic', factor: 2 } }))).toBe(
      'm.config.json: field "rope_scaling" has rope_type "dynamic", which moec does not support (supported: "default", "linear", "yarn", "longrope")');
    expect(importError(JSON.stringify({ ...mixtral, rope_scaling: { type: 'yarn' } }))).toMatch(/^m\.config\.json \(rope_scaling\): field "factor" is missing/);
    const longrope = { type: 'longrope', short_factor: Array(64).fill(1), long_factor: Array(63).fill(2), original_max_position_embeddings: 4096 };
    expect(importError(JSON.stringify({ ...mixtral, rope_scaling: longrope }))).toBe('m.config.json (rope_scaling): field "long_factor" has 63 numbers, but the rotary dim 128 has 64 pairs');
  });

  it('rejects an unknown model_type and lists the supported ones', () => {
    expect(importError(JSON.stringify({ ...mixtral, model_type: 'foo' }))).toBe(
      'm.config.json: model_type "foo" is not supported; supported: mixtral, phimoe, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3, gpt_oss');
  });

  it('names a missing field and what it is needed for', () => {
    const { num_local_experts: _, ...config } = mixtral;
    expect(importError(JSON.stringify(config))).toBe('m.config.json: field "num_local_experts" is missing (needed for the number of experts)');
    expect(importError(JSON.stringify({ ...mixtral, num_local_experts: null }))).toBe('m.config.json: field "num_local_experts" is null (needed for the number of experts)');
  });

  it('names a mistyped field and its value', () => {
    expect(importError(JSON.stringify({ ...mixtral, num_local_experts: 'x' }))).toBe('m.config.json: field "num_local_experts" must be a positive integer, got "x"');
    expect(importError(JSON.stringify({ ...mixtral, num_experts_per_tok: 1.5 }))).toBe('m.config.json: field "num_experts_per_tok" must be a positive integer, got 1.5');
    expect(importError(JSON.stringify({ ...mixtral, rms_norm_eps: '1e-5' }))).toBe('m.config.json: field "rms_norm_eps" must be a positive number, got "1e-5"');
    expect(importError(JSON.stringify({ ...mixtral, model_type: 7 }))).toBe('m.config.json: field "model_type" must be a string, got 7');
  });

  it('reports bad JSON with the parser message', () => {
    expect(importError('{"model_type": "mixtral",}')).toMatch(/^m\.config\.json: not valid JSON: .+/);
    expect(importError('[1, 2]')).toBe('m.config.json: not a config.json: the top level must be an object, got a list');
  });

  it('blames the config, not the importer, for values that do not fit together', () => {
    expect(importError(JSON.stringify({ ...mixtral, num_experts_per_tok: 9 }))).toMatch(
      /^m\.config\.json: the model this config describes is not valid[^\n]*\n.*top_k = 9 is more than experts = 8/s);
  });

  it('rejects values the language cannot map', () => {
    const gptOss = JSON.parse(readFileSync(join(fixtures, 'gpt-oss-20b.config.json'), 'utf8')) as Record<string, unknown>;
    const types = (gptOss['layer_types'] as string[]).map((_, i) => (i < 3 ? 'full_attention' : 'sliding_attention'));
    expect(importError(JSON.stringify({ ...gptOss, layer_types: types }), 'g.json')).toMatch(/^g\.json: field "layer_types" mixes sliding and full layers/);
    const v3 = JSON.parse(readFileSync(join(fixtures, 'deepseek-v3.config.json'), 'utf8')) as Record<string, unknown>;
    expect(importError(JSON.stringify({ ...v3, topk_method: 'greedy' }), 'd.json')).toBe('d.json: field "topk_method" is "greedy", which the importer does not support; supported: "noaux_tc"');
  });
});

describe('moec import: the command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moec-import-'));
  afterEach(() => vi.restoreAllMocks());

  function runImport(args: string[]): { code: number; stdout: string; stderr: string } {
    let stdout = '';
    let stderr = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
    const code = importCommand.run(args) as number;
    vi.restoreAllMocks();
    return { code, stdout, stderr };
  }

  it('writes the checked spec to -o', () => {
    const out = join(dir, 'deepseek-v3.moe');
    const r = runImport([join(fixtures, 'deepseek-v3.config.json'), '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/note: num_nextn_predict_layers = 1/);
    expect(checkSpec(readFileSync(out, 'utf8'), out).config?.moe?.experts).toBe(256);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('prints to stdout without -o', () => {
    const r = runImport([join(fixtures, 'mixtral-8x7b-v0.1.config.json')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\/\/ Imported by `moec import` from mixtral-8x7b-v0\.1\.config\.json \(model_type "mixtral"\)/);
  });

  const bad: [string, string, RegExp][] = [
    ['unknown model_type', JSON.stringify({ model_type: 'foo' }), /bad\.config\.json: model_type "foo" is not supported/],
    ['missing field', JSON.stringify({ model_type: 'mixtral', hidden_size: 64 }), /bad\.config\.json: field "vocab_size" is missing/],
    ['wrong type', JSON.stringify({ model_type: 'mixtral', hidden_size: 'wide' }), /bad\.config\.json: field "hidden_size" must be a positive integer, got "wide"/],
    ['bad JSON', '{ model_type: mixtral }', /bad\.config\.json: not valid JSON: /],
  ];
  for (const [what, text, message] of bad) {
    it(`exits 1 and writes nothing on ${what}`, () => {
      const config = join(dir, 'bad.config.json');
      writeFileSync(config, text);
      const out = join(dir, `never-${what.replace(/ /g, '-')}.moe`);
      const r = runImport([config, '-o', out]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
      expect(existsSync(out)).toBe(false);
    });
  }
});
