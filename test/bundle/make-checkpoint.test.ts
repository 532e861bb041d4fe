// The test fixture's two descriptions of a model, config.json (HF field names) and the .moe spec,
// must agree: `moec import` of the config gives the same MoE block, hidden size and layers.
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../compiler/import/import-config.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import { FAMILIES, hfConfig, moeLayersOf, specText, type CheckpointSizes } from '../fixtures/make-checkpoint.js';

describe('make-checkpoint fixture', () => {
  for (const family of FAMILIES) {
    it(`${family}: config.json imports to the spec's MoE block`, () => {
      const sizes: CheckpointSizes = { hidden: 24, experts: 6, topK: 2, intermediate: 20, layers: 3,
        ...(family.startsWith('deepseek') ? { firstDense: 1, sharedExperts: 2, groups: 3, topkGroups: 2 } : {}) };
      const imported = importHfConfig(JSON.stringify(hfConfig(family, sizes)), `${family}/config.json`);
      const spec = checkSpec(specText(family, sizes), `${family}.moe`);
      expect(spec.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      expect(imported.modelType).toBe(family);
      expect(imported.config.moe).toEqual(spec.config!.moe);
      expect([imported.config.hidden, imported.config.layers]).toEqual([sizes.hidden, 3]);
      expect(moeLayerIndices(spec.config!)).toEqual(moeLayersOf(family, sizes));
    });
  }
});
