// `moec compile`'s driver: every MoE layer through the pipeline and codegen, then the bundle
// files (codegen/bundle/), written atomically. A plugin weight format the plans use brings its
// runtime module (codec) into model.js.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { assembleBundle, type CompiledBundle, type PluginInfo } from '../codegen/bundle/bundle-data.js';
import type { BundleManifest } from '../codegen/bundle/manifest.js';
import { refuseToReplace, writeBundle } from '../codegen/bundle/write-bundle.js';
import { moeLayerIndices, type ModelConfig } from '../ir/model-config.js';
import { compileMoeBlock, planTarget, type PlanOptions } from './moe-block-plan.js';

/** Compiles the MoE block of each of `layers` (default: every MoE layer) for the bundle. */
export function compileBundleData(config: ModelConfig, specSource: string, layers = moeLayerIndices(config), options: PlanOptions = {}): CompiledBundle {
  const blocks = layers.map((layer) => ({ layer, ...compileMoeBlock(config, layer, options) }));
  const plugins: PluginInfo[] = (options.registry?.plugins ?? []).map((p) => (p.formats
    ? { ...p, formats: p.formats.map((f) => ({ ...f, sha256: createHash('sha256').update(readFileSync(f.runtime)).digest('hex') })) }
    : p));
  const used = new Set(blocks.flatMap((b) => b.plan.weights.map((w) => w.format.format)));
  const formatModules = plugins.flatMap((p) => p.formats ?? []).filter((f) => used.has(f.name));
  return { ...assembleBundle(config, specSource, blocks, planTarget(options), plugins), formatModules };
}

export async function compileBundle(config: ModelConfig, specSource: string, specFile: string, outDir: string, options: PlanOptions = {}): Promise<BundleManifest> {
  refuseToReplace(outDir); // before the work, not after
  return writeBundle(compileBundleData(config, specSource, undefined, options), config, specFile, outDir);
}
