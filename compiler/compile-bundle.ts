// `moec compile`'s driver: every MoE layer through the pipeline and codegen, then the bundle
// files (codegen/bundle/), written atomically.
import { assembleBundle, type CompiledBundle } from '../codegen/bundle/bundle-data.js';
import type { BundleManifest } from '../codegen/bundle/manifest.js';
import { refuseToReplace, writeBundle } from '../codegen/bundle/write-bundle.js';
import { moeLayerIndices, type ModelConfig } from '../ir/model-config.js';
import { compileMoeBlock, planTarget, type PlanOptions } from './moe-block-plan.js';

/** Compiles the MoE block of each of `layers` (default: every MoE layer) for the bundle. */
export function compileBundleData(config: ModelConfig, specSource: string, layers = moeLayerIndices(config), options: PlanOptions = {}): CompiledBundle {
  const blocks = layers.map((layer) => ({ layer, ...compileMoeBlock(config, layer, options) }));
  return assembleBundle(config, specSource, blocks, planTarget(options), options.registry?.plugins);
}

export async function compileBundle(config: ModelConfig, specSource: string, specFile: string, outDir: string, options: PlanOptions = {}): Promise<BundleManifest> {
  refuseToReplace(outDir); // before the work, not after
  return writeBundle(compileBundleData(config, specSource, undefined, options), config, specFile, outDir);
}
