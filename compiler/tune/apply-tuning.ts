// A tuning file -> the target each adapter in it gets, for one spec: per family the entry of the
// spec's shape with the current template hash (stale ones are reported, not used) at the bucket
// nearest the token count asked for. One prefill path serves every token count above the
// crossover, so its GEMM tiles come from one bucket (`prefillTokens`, default the largest tuned);
// likewise one decode kernel pair serves 1..decodeMaxTokens tokens, so its rows per workgroup come
// from the bucket nearest `decodeTokens` (default 1: generation's one token per step).
import type { ModelConfig } from '../../ir/model-config.js';
import { moeLayerIndices } from '../../ir/model-config.js';
import type { TargetDescription } from '../../ir/target.js';
import { adapterKey, describeAdapter, type AdapterIdentity } from '../../runtime/tuning/adapter-identity.js';
import type { AdapterTuning, TuningEntry, TuningFile } from '../../runtime/tuning/tuning-file.js';
import { compileMoeBlock, planTarget, type PlanOptions } from '../moe-block-plan.js';
import { blockDims, familyShapes } from './family-shapes.js';
import { decodeWorkgroupBytes, gemmTileOfParams, gemmTileText, gemmWorkgroupBytes } from './search-space.js';
import { gemmThreads } from '../../codegen/kernels/grouped-gemm/grouped-gemm.js';
import type { TemplateReader } from './template-hash.js';

export interface TunedTarget {
  adapter: AdapterIdentity;
  key: string;
  /** Target overrides: expertGemmTiles, decodeRows, decodeMaxTokens, source. */
  target: Partial<TargetDescription>;
  /** The entries used. */
  used: TuningEntry[];
  /** Device limits the tuned kernels need beyond a plan's own `requires` (workgroup memory and threads of the tiles and decode rows). */
  requires: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number };
}

export interface ApplyOptions {
  /** The token count whose bucket decides the prefill tiles (default: the largest bucket tuned). */
  prefillTokens?: number;
  /** The token count whose bucket decides the fused decode kernels' rows (default 1). */
  decodeTokens?: number;
  warn?(message: string): void;
  readTemplate?: TemplateReader;
  /** Where the tuning came from, for the manifest (a file path, or `cache DIR`). */
  origin?: string;
}

const tileOfParams = gemmTileOfParams;
const tileText = gemmTileText;

/** The entry at the bucket nearest `tokens` (log scale), or undefined. */
export function nearestBucket(entries: readonly TuningEntry[], tokens: number): TuningEntry | undefined {
  const distance = (e: TuningEntry) => Math.abs(Math.log2(e.tokens) - Math.log2(Math.max(1, tokens)));
  return [...entries].sort((a, b) => distance(a) - distance(b) || b.tokens - a.tokens)[0];
}

/** The target for one adapter's section, or undefined when none of its entries fits this spec. */
export function tunedTargetFor(section: AdapterTuning, config: ModelConfig, plan: PlanOptions = {}, options: ApplyOptions = {}): TunedTarget | undefined {
  const layer = moeLayerIndices(config)[0];
  if (layer === undefined) return undefined;
  const base = planTarget(plan);
  const defaultPlan = compileMoeBlock(config, layer, plan).plan;
  const shapes = familyShapes(defaultPlan, options.readTemplate);
  const current = (family: string): TuningEntry[] => {
    const shape = shapes.find((s) => s.family === family);
    if (!shape) return [];
    const matching = section.entries.filter((e) => e.family === family && e.shape === shape.shape);
    const stale = matching.filter((e) => e.templateHash !== shape.templateHash);
    if (stale.length) options.warn?.(`${describeAdapter(section.adapter)}: ${stale.length} ${family} entr${stale.length === 1 ? 'y was' : 'ies were'} tuned with other templates (hash ${stale[0]!.templateHash}, now ${shape.templateHash}); ignored, rerun moec tune`);
    return matching.filter((e) => e.templateHash === shape.templateHash);
  };
  const gateUps = current('grouped_gemm.gate_up');
  const downs = current('grouped_gemm.down');
  const decodeRows = current('decode.rows');
  const crossover = current('decode_max_tokens');
  const used: TuningEntry[] = [];
  const target: Partial<TargetDescription> = {};
  const notes: string[] = [];
  const bucket = options.prefillTokens ?? Math.max(0, ...gateUps.map((e) => e.tokens));
  const gateUp = nearestBucket(gateUps, bucket);
  if (gateUp) {
    const up = tileOfParams(gateUp.config);
    const sameBucket = downs.find((e) => e.tokens === gateUp.tokens && e.config['bm'] === up.bm);
    const down = sameBucket ? tileOfParams(sameBucket.config) : { ...base.gemmTile, bm: up.bm };
    target.expertGemmTiles = { gateUp: up, down };
    used.push(gateUp, ...(sameBucket ? [sameBucket] : []));
    notes.push(`grouped gate/up ${tileText(up)} (T=${gateUp.tokens}, ${gateUp.kept})`, `down ${tileText(down)}${sameBucket ? ` (T=${sameBucket.tokens}, ${sameBucket.kept})` : ' (default with its bm)'}`);
  }
  const rows = nearestBucket(decodeRows, options.decodeTokens ?? 1);
  if (rows) {
    target.decodeRows = rows.config['rows']!;
    used.push(rows);
    notes.push(`decode rows ${target.decodeRows} (T=${rows.tokens}, ${rows.kept})`);
  }
  const cross = nearestBucket(crossover, 8);
  if (cross) {
    target.decodeMaxTokens = cross.config['decodeMaxTokens']!;
    used.push(cross);
    notes.push(`decodeMaxTokens ${target.decodeMaxTokens} (${cross.kept})`);
  }
  if (!used.length) return undefined;
  const tiles = target.expertGemmTiles ? [target.expertGemmTiles.gateUp, target.expertGemmTiles.down] : [];
  const { sharedGate } = blockDims(defaultPlan);
  target.source = `tuning${options.origin ? ` ${options.origin}` : ''} for ${describeAdapter(section.adapter)} [${adapterKey(section.adapter)}]: ${notes.join(', ')}`;
  return {
    adapter: section.adapter,
    key: adapterKey(section.adapter),
    target,
    used,
    requires: {
      maxComputeWorkgroupStorageSize: Math.max(0, ...tiles.map((t, i) => gemmWorkgroupBytes(t, i === 0)), decodeWorkgroupBytes(target.decodeRows ?? 0, sharedGate)),
      maxComputeInvocationsPerWorkgroup: Math.max(0, ...tiles.map(gemmThreads), target.decodeRows ?? 0),
    },
  };
}

/** Every adapter of `file` that has entries for this spec. */
export function tunedTargets(file: TuningFile, config: ModelConfig, plan: PlanOptions = {}, options: ApplyOptions = {}): TunedTarget[] {
  return file.adapters.map((a) => tunedTargetFor(a, config, plan, options)).filter((t): t is TunedTarget => t !== undefined);
}
