// What attention.prepare and mla.prepare share: the attention header (Params { tokens, past },
// attention-shape.ts) with `enable f16` and to_act for f16 activations, a workgroup sum, the
// rope-table row of a position, and the writes of a staged row into an f32 or f16 cache.
import { cacheArray, declareAttentionBindings, type KvCacheDtype } from '../attention/attention-shape.js';
import { activationArray, type ActivationDtype, type KernelBinding, type StorageDecl } from '../kernel.js';
import { DEFAULT_LIMITS } from '../../../runtime/device.js';
import { renderTemplate } from '../template.js';

export type { KvCacheDtype };

/**
 * An f16 cache is the packed u32 pairs kv-cache-write.wgsl.hbs writes (element e in half e % 2 of
 * word e / 2), declared atomic here: a row of odd width shares a word with its neighbour, which
 * another workgroup writes, so a half is replaced with atomicAnd + atomicOr.
 */
export function preparedCacheArray(dtype: KvCacheDtype): string {
  return dtype === 'f16' ? 'array<atomic<u32>>' : cacheArray(dtype);
}

export const activationInput = (name: string, act: ActivationDtype): StorageDecl => ({ name, access: 'read', type: activationArray(act) });

/** The header (bindings in order, then Params) and the shared functions: to_act, workgroup_sum, rope_row, store_<cache> for each cache. */
export function preparePreamble(storage: StorageDecl[], act: ActivationDtype, caches: { name: string; dtype: KvCacheDtype }[]): { preamble: string; bindings: KernelBinding[]; uniformBinding: number } {
  const { header, bindings, uniformBinding } = declareAttentionBindings(storage);
  const preamble = renderTemplate('attention-prepare/prepare-common.wgsl.hbs', {
    f16: act === 'f16',
    act,
    header,
    workgroupSum: renderTemplate('norm/workgroup-sum.wgsl.hbs', {}),
    stores: caches.map((c) => renderTemplate('attention-prepare/cache-store.wgsl.hbs', { cache: c.name, f16: c.dtype === 'f16' })).join('\n'),
  });
  return { preamble, bindings, uniformBinding };
}

/** Throws unless `floats` of staged row plus the sum's THREADS floats fit the default workgroup memory. */
export function checkWorkgroupMemory(what: string, floats: number): void {
  const bytes = 4 * floats;
  if (bytes > DEFAULT_LIMITS.maxComputeWorkgroupStorageSize) {
    throw new Error(`${what}: a cache row of ${floats} floats needs ${bytes} bytes of workgroup memory, more than WebGPU's default ${DEFAULT_LIMITS.maxComputeWorkgroupStorageSize}`);
  }
}

export function checkRope(what: string, dim: number, ropeSwitch: number): void {
  if (dim % 2) throw new Error(`${what}: the rotary width ${dim} must be even`);
  if (!Number.isInteger(ropeSwitch) || ropeSwitch < 0) throw new Error(`${what}: rope_switch ${ropeSwitch} must be 0 (one table variant) or a positive integer`);
}
