// What the passes know of the machine they lower for: its limits, the tiles and path bounds to
// use (the defaults below today; a tuning result later), and which lowered ops it can run. The
// compiler builds one and hands it to every pass; passes print what they took from it as attrs.
import { DEFAULT_LIMITS } from '../runtime/device.js';
import type { FormatLayouts } from '../runtime/quant/weight-format.js';
import type { GemmTile } from './ops-lowered.js';

export interface TargetLimits {
  maxStorageBufferBindingSize: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
}

export interface TargetDescription {
  name: 'webgpu';
  limits: TargetLimits;
  /** Token counts up to this take the decode path (GEMVs over the chosen experts). */
  decodeMaxTokens: number;
  /** The tile of every dense GEMM, and of the grouped ones unless expertGemmTiles says otherwise. */
  gemmTile: GemmTile;
  /**
   * The routed experts' grouped GEMM tiles (`moec tune`): gate/up and down may differ in bn, bk,
   * tm, tn but share bm (moe.align pads each expert to it). Absent: both take gemmTile.
   */
  expertGemmTiles?: ExpertGemmTiles;
  /** Outputs per workgroup of every unfused GEMV (expert_gemv, gemv: 4 threads each). */
  gemvRows: number;
  /**
   * Outputs per workgroup, one thread each, of the fused decode MoE kernels (moe.decode_gate_up,
   * moe.decode_down_combine; `moec tune`'s decode.rows family). Default DEFAULT_DECODE_ROWS.
   */
  decodeRows: number;
  /** Keys per context chunk of decode attention (flash-decoding splits the cache into these). */
  decodeChunkKeys: number;
  /** The flash attention loops' tiles: prefill, and decode's per-chunk partials. */
  attentionTiles: { prefill: AttentionTile; decode: AttentionTile };
  /** Lowered opcodes the target has a kernel for (legalize-webgpu refuses any other). */
  opcodes: readonly string[];
  /** Weight storage formats its kernels decode (f32, int4, ..., a plugin's), by name, with their word layouts. */
  weightFormats: FormatLayouts;
  /** Where the numbers came from, for the manifest. */
  source: string;
}

export interface ExpertGemmTiles {
  gateUp: GemmTile;
  down: GemmTile;
}

/** The grouped GEMM tiles the passes lower with: the tuned ones, else gemmTile for both. */
export function expertGemmTilesOf(target: TargetDescription): ExpertGemmTiles {
  const tiles = target.expertGemmTiles ?? { gateUp: target.gemmTile, down: target.gemmTile };
  if (tiles.gateUp.bm !== tiles.down.bm) throw new Error(`target: the grouped gate/up and down GEMM tiles must share bm (moe.align pads each expert to it), got ${tiles.gateUp.bm} and ${tiles.down.bm}`);
  return tiles;
}

/** 32 threads per fused decode workgroup: the GEMVs' row count, kept when the kernels were fused. */
export const DEFAULT_DECODE_ROWS = 32;

/** 16 rows keep per-expert padding small at prefill sizes; 4 x 4 outputs per thread (64 threads) measured best of the tiles tried on lavapipe. */
export const DEFAULT_GEMM_TILE: GemmTile = { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 };

/**
 * A flash attention tile: query rows (a kv head's (token, head) pairs) per workgroup, keys per
 * online-softmax step, head-dim columns staged per chunk, threads.
 */
export interface AttentionTile {
  queryRows: number;
  keys: number;
  dimChunk: number;
  threads: number;
}

/** Checked against WebGPU's default 16 KiB of workgroup memory and 256 invocations for head widths up to MLA's 576 (codegen/kernels/attention). */
export const DEFAULT_ATTENTION_PREFILL_TILE: AttentionTile = { queryRows: 16, keys: 16, dimChunk: 64, threads: 256 };
export const DEFAULT_ATTENTION_DECODE_TILE: AttentionTile = { queryRows: 8, keys: 32, dimChunk: 32, threads: 128 };

/** As an op attribute, printed with the op: `tile = attention_tile(query_rows = 16, keys = 16, dim_chunk = 64, threads = 256)`. */
export const attentionTileAttr = (t: AttentionTile): { kind: string; params: Record<string, number> } =>
  ({ kind: 'attention_tile', params: { query_rows: t.queryRows, keys: t.keys, dim_chunk: t.dimChunk, threads: t.threads } });

export function attentionTileOf(attr: unknown): AttentionTile | undefined {
  const p = (attr as { kind?: string; params?: Record<string, number> } | undefined);
  if (p?.kind !== 'attention_tile' || !p.params) return undefined;
  return { queryRows: p.params['query_rows']!, keys: p.params['keys']!, dimChunk: p.params['dim_chunk']!, threads: p.params['threads']! };
}

/** WebGPU's default limits, the compiler's default tiles; opcodes and formats come from the kernel registry. */
export function webgpuTarget(kernels: { opcodes: readonly string[]; weightFormats: FormatLayouts }, overrides: Partial<TargetDescription> = {}): TargetDescription {
  return {
    name: 'webgpu',
    limits: {
      maxStorageBufferBindingSize: DEFAULT_LIMITS.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: DEFAULT_LIMITS.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: DEFAULT_LIMITS.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: DEFAULT_LIMITS.maxComputeInvocationsPerWorkgroup,
    },
    decodeMaxTokens: 8,
    gemmTile: DEFAULT_GEMM_TILE,
    gemvRows: 32,
    decodeRows: DEFAULT_DECODE_ROWS,
    decodeChunkKeys: 256,
    attentionTiles: { prefill: DEFAULT_ATTENTION_PREFILL_TILE, decode: DEFAULT_ATTENTION_DECODE_TILE },
    opcodes: kernels.opcodes,
    weightFormats: kernels.weightFormats,
    source: 'defaults: no tuning cache',
    ...overrides,
  };
}
