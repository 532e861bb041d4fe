// manifest.json: what a bundle is, for people and tools: where it came from (spec hash,
// compiler version), its kernels with hashes, what tuning chose them, what the whole-model and
// MoE block plans dispatch, and the weight layout the MoE blocks read (IR name, shape, dtype,
// and the Hugging Face tensors each comes from per family).
import type { GemmTile } from '../../ir/ops-lowered.js';
import type { CandidateParams } from '../../runtime/tuning/load-candidates.js';
import { describeHfNaming, modelTypesMatching } from '../../runtime/hf-naming.js';
import type { CompiledBundle } from './bundle-data.js';
import { sha256 } from './kernel-table.js';

export const BUNDLE_FORMAT = 'moec-bundle/1';

export interface BundleManifest {
  format: string;
  model: string;
  moecVersion: string;
  spec: { file: string; sha256: string };
  moeLayers: number[];
  files: Record<string, { bytes: number; sha256: string }>;
  kernels: CompiledBundle['kernels'];
  /** Where the target's tiles came from, and the defaults the passes were handed; `adapters`: the tuned plan sets (`moec compile --tuning`), picked at load by adapter. */
  tuning: { source: string; gemmTile: GemmTile; gemvRows: number; decodeMaxTokens: number; adapters?: Array<{ key: string; source: string }>;
    /** The plan sets `load({ tune: 'first-load' })` may choose among (`moec compile --load-candidates`), and the token count it times them at. */
    loadCandidates?: { layer: number; prefillTokens: number; sets: Array<{ id: string; params: CandidateParams }> } };
  /** Per MoE layer and path: the kernels dispatched in order (`dispatches` of them) and the tiles the lowered ops carry. */
  plans: CompiledBundle['plans'];
  /**
   * The whole decoder (load().forward / generate): per path the kernels dispatched in order, per
   * generated token, the kernels it uses, its context and KV cache dtype; or, when the spec could
   * not compile one, `available: false` and the compiler's reason (the MoE blocks still run).
   */
  wholeModel: CompiledBundle['wholeModel'];
  /** Plugins the spec was compiled with: name, module file and its sha256. */
  plugins: CompiledBundle['plugins'];
  /** How activations are stored between kernels, and the adapter features that needs. */
  activations: { dtype: 'f32' | 'f16'; requiresFeatures: string[] };
  /** HF model_types whose checkpoints hold exactly the MoE weights below (none ignored). */
  hfModelTypes: string[];
  weights: Array<CompiledBundle['weights'][number] & { hf: Record<string, string> }>;
  config: unknown;
}

export function buildManifest(compiled: CompiledBundle, specFile: string, files: Record<string, string>): BundleManifest {
  const { data } = compiled;
  const modelTypes = modelTypesMatching(compiled.weights.map((w) => w.name));
  return {
    format: BUNDLE_FORMAT,
    model: data.config.name,
    moecVersion: data.moecVersion,
    spec: { file: specFile, sha256: data.specSha256 },
    moeLayers: data.moeLayers,
    files: Object.fromEntries(Object.entries(files).map(([name, text]) => {
      const bytes = new TextEncoder().encode(text);
      return [name, { bytes: bytes.byteLength, sha256: sha256(bytes) }];
    })),
    kernels: compiled.kernels,
    tuning: { source: compiled.target.source, gemmTile: compiled.target.gemmTile, gemvRows: compiled.target.gemvRows, decodeMaxTokens: compiled.target.decodeMaxTokens,
      ...(data.tuned?.length ? { adapters: data.tuned.map((t) => ({ key: t.key, source: t.source })) } : {}),
      ...(data.loadCandidates ? { loadCandidates: { layer: data.loadCandidates.layer, prefillTokens: data.loadCandidates.prefillTokens, sets: data.loadCandidates.sets.map((c) => ({ id: c.id, params: c.params })) } } : {}) },
    plans: compiled.plans,
    wholeModel: compiled.wholeModel,
    plugins: compiled.plugins,
    activations: { dtype: data.config.compile.dtype, requiresFeatures: data.features },
    hfModelTypes: modelTypes,
    weights: compiled.weights.map((w) => ({
      ...w,
      hf: Object.fromEntries(modelTypes.map((t) => [t, describeHfNaming(t, w.name)!])),
    })),
    config: data.config,
  };
}
