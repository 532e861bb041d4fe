// Every examples/*.moe at its real size, as written (int4 / int8 / mxfp4 weights included),
// compiles to MoE block plans that fit WebGPU's default limits: no GPU run, only the plans.
// Expert weights are sharded at their packed size; the printed table shows what each needs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { DEFAULT_LIMITS } from '../../runtime/device.js';
import { evalTokenExpr, type MoeBlockPlan } from '../../runtime/plan.js';
import { describeFormat } from '../../runtime/quant/weight-format.js';

const examplesDir = fileURLToPath(new URL('../../examples/', import.meta.url));
const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.moe')).sort();
const rows: string[] = [];

const MiB = 2 ** 20;
const weightBytes = (plan: MoeBlockPlan): number => plan.buffers.filter((b) => b.role === 'weight').reduce((n, b) => n + b.elements.constant * 4, 0);

describe('every example compiles at real size under the default limits', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(12);
  });

  for (const file of examples) {
    it(file, () => {
      const source = readFileSync(join(examplesDir, file), 'utf8');
      const checked = checkSpec(source, file);
      expect(checked.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message)).toEqual([]);
      const config = checked.config!;
      const layers = moeLayerIndices(config);
      expect(layers.length).toBeGreaterThan(0);
      // Every MoE layer of a spec has the same shapes; the first and last stand for them all.
      for (const layer of new Set([layers[0]!, layers[layers.length - 1]!])) {
        const plan = compileMoeBlockPlan(config, layer);
        for (const [limit, needed] of Object.entries(plan.requires)) {
          expect(needed, `${file} layer ${layer}: ${limit}`).toBeLessThanOrEqual(DEFAULT_LIMITS[limit as keyof typeof DEFAULT_LIMITS]);
        }
        for (const b of plan.buffers) {
          const bytes = evalTokenExpr(b.elements, plan.maxTokens) * 4;
          expect(bytes, `${file}: ${b.name} at ${plan.maxTokens} tokens`).toBeLessThanOrEqual(DEFAULT_LIMITS.maxStorageBufferBindingSize);
        }
        expect(plan.maxTokens, `${file}: tokens one run can hold`).toBeGreaterThanOrEqual(256);
        const gate = plan.weights.find((w) => w.name.endsWith('experts.gate'))!;
        const quantize = config.compile.quantize.experts;
        expect(gate.format.format).toBe(quantize?.kind ?? 'f32');
        if (layer === layers[0]) {
          const shards = plan.buffers.filter((b) => b.weight?.param === gate.name).length;
          const shared = plan.weights.find((w) => w.name.endsWith('shared.gate'));
          rows.push([
            file.padEnd(24),
            describeFormat(gate.format).padEnd(18),
            (shared ? describeFormat(shared.format) : '-').padEnd(19),
            String(plan.experts).padStart(4),
            String(shards).padStart(6),
            (weightBytes(plan) / MiB).toFixed(1).padStart(9),
            String(plan.maxTokens).padStart(9),
            String(plan.kernels.length).padStart(7),
          ].join(' '));
        }
      }
    });
  }

  it('prints what each needs', () => {
    console.log(['example                  experts            shared              E    shards  MiB/layer  maxTokens kernels', ...rows].join('\n'));
  });
});
