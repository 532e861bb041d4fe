// The quantize-weights pass takes each format's storage from its kind: the built-in kinds', and a
// plugin's, registered in a cloned registry, which the pass and the stats use without knowing it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileModelGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { builtinRegistry } from '../../compiler/spec/kinds/builtin.js';
import type { KindDefinition } from '../../compiler/spec/kinds/registry.js';
import { computeStats } from '../../compiler/stats.js';
import { printGraph } from '../../ir/print.js';

/** 2-bit values with one 16-bit scale per group: 2 + 16 / 16 = 3 bits per weight at group 16. */
const q2k: KindDefinition = {
  name: 'q2k',
  category: 'quant',
  doc: 'A plugin format: 2-bit values, one f16 scale per group.',
  params: [{ name: 'group', doc: 'Weights sharing one scale.', value: { type: 'int', min: 1 }, default: 64 }],
  storage: (params) => ({ bits: 2, scaleBits: 16, group: params['group'] as number }),
};

// The golden case's spec, with the experts in the plugin's format (the attention stays int8).
const goldenSpec = join(import.meta.dirname, 'quantize-weights', 'experts-int4-attention-int8.moe');
const source = readFileSync(goldenSpec, 'utf8').replace('quantize experts = int4(group = 32)', 'quantize experts = q2k(group = 16)');

const expertDtype = (quant: string) => {
  const { config, diagnostics } = checkSpec(source.replace('q2k(group = 16)', quant), 'tiny-quantized.moe');
  expect(diagnostics).toEqual([]);
  return compileModelGraph(config!).params.find((p) => p.role === 'expert')!.type.dtype;
};

describe('quantize-weights with the built-in quantization kinds', () => {
  it.each([
    ['f32', 'f32'],
    ['f16', 'f16'],
    ['bf16', 'bf16'],
    ['int8(group = 32)', { format: 'int8', group: 32, bitsPerWeight: 8 + 32 / 32 }], // f32 scales
    ['int4(group = 32)', { format: 'int4', group: 32, bitsPerWeight: 4 + 16 / 32 }], // f16 scales
    ['mxfp4(group = 32)', { format: 'mxfp4', group: 32, bitsPerWeight: 4 + 8 / 32 }], // E8M0 byte scales
  ])('%s', (quant, dtype) => {
    expect(expertDtype(quant)).toEqual(dtype);
  });
});

describe('quantize-weights with a plugin quantization kind', () => {
  const registry = builtinRegistry().clone();
  registry.register(q2k);
  const { config, diagnostics } = checkSpec(source, 'tiny-quantized.moe', registry);

  it('is unknown to the built-in registry, so only the plugin spec checks', () => {
    expect(source).toContain('q2k(group = 16)');
    expect(diagnostics).toEqual([]);
    expect(checkSpec(source, 'tiny-quantized.moe').diagnostics.map((d) => d.message)).toContain('unknown quantization kind `q2k`');
  });

  it('stores the expert matrices in the kind\'s format, at its bits per weight', () => {
    const graph = compileModelGraph(config!, { kinds: registry, verifyEach: true });
    const experts = graph.params.filter((p) => p.role === 'expert');
    expect(experts.map((p) => p.name)).toEqual(['layers.1.moe.experts.gate', 'layers.1.moe.experts.up', 'layers.1.moe.experts.down']);
    for (const p of experts) expect(p.type.dtype).toEqual({ format: 'q2k', group: 16, bitsPerWeight: 3 });
    expect(printGraph(graph)).toContain('param %layers.1.moe.experts.gate: [4, 32, 64] q2k<g16> expert');
  });

  it('counts the kind\'s storage cost in the weight bytes, next to a built-in kind\'s', () => {
    const stats = computeStats(compileModelGraph(config!, { kinds: registry }), config!);
    const experts = 4 * 3 * 32 * 64; // gate, up, down of 4 experts in the one MoE layer
    const attention = 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64); // q, k, v, o of 2 layers, int8 at 8 + 32 / 64 bits
    expect(stats.weightBytes).toBe((experts * 3) / 8 + (attention * 8.5) / 8 + (stats.totalParams - experts - attention) * 4);
  });

  it('needs the registry the spec was checked with: the built-in one has no q2k storage', () => {
    expect(() => compileModelGraph(config!)).toThrow('quantize-weights: no storage format for quantization kind q2k');
  });
});
