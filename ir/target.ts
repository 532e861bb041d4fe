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
  /** The tile of every grouped and dense GEMM. */
  gemmTile: GemmTile;
  /** Outputs per workgroup of every GEMV. */
  gemvRows: number;
  /** Keys per context chunk of decode attention (flash-decoding splits the cache into these). */
  decodeChunkKeys: number;
  /** Lowered opcodes the target has a kernel for (legalize-webgpu refuses any other). */
  opcodes: readonly string[];
  /** Weight storage formats its kernels decode (f32, int4, ..., a plugin's), by name, with their word layouts. */
  weightFormats: FormatLayouts;
  /** Where the numbers came from, for the manifest. */
  source: string;
}

/** 16 rows keep per-expert padding small at prefill sizes; 4 x 4 outputs per thread (64 threads) measured best of the tiles tried on lavapipe. */
export const DEFAULT_GEMM_TILE: GemmTile = { bm: 16, bn: 64, bk: 16, tm: 4, tn: 4 };

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
    decodeChunkKeys: 256,
    opcodes: kernels.opcodes,
    weightFormats: kernels.weightFormats,
    source: 'defaults: no tuning cache',
    ...overrides,
  };
}
