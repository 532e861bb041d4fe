// The IR verifier passes after every pass on every example spec: each MoE layer shape (first and
// last MoE layer) lowered for WebGPU, and the whole decoder (lowered as far as the kernels go).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileModelModule, compileMoeBlockModule } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { moeLayerIndices } from '../../ir/model-config.js';

const examples = join(import.meta.dirname, '../../examples');
const specs = readdirSync(examples).filter((f) => f.endsWith('.moe'));

describe.each(specs)('%s', (file) => {
  const { config, diagnostics } = checkSpec(readFileSync(join(examples, file), 'utf8'), file);

  it('checks', () => expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]));

  it('every MoE block shape through every pass with --verify-each', () => {
    const layers = moeLayerIndices(config!);
    for (const layer of new Set([layers[0]!, layers.at(-1)!])) {
      const module = compileMoeBlockModule(config!, layer, { verifyEach: true });
      expect(module.functions.map((f) => f.name)).toEqual(['prefill', 'decode']);
    }
  });

  it('the whole decoder through every pass but legalize-webgpu with --verify-each', () => {
    expect(compileModelModule(config!, { verifyEach: true }).functions).toHaveLength(2);
  });
});
