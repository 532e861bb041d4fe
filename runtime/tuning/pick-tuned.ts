// At load: the bundle's tuned plans for the adapter it runs on, if it has any (same identity, and
// the device got the limits the tuned kernels need); else undefined, and the default plans run.
import type { GpuRuntime } from '../device.js';
import { adapterIdentity, sameAdapter, type AdapterIdentity } from './adapter-identity.js';

export interface TunedVariantHeader {
  adapter: AdapterIdentity;
  requires: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number };
}

export function pickTuned<T extends TunedVariantHeader>(variants: readonly T[] | undefined, rt: Pick<GpuRuntime, 'info' | 'adapter' | 'limits'>): T | undefined {
  if (!variants?.length) return undefined;
  const here = adapterIdentity(rt.info, rt.adapter);
  return variants.find((v) => sameAdapter(v.adapter, here) &&
    rt.limits.maxComputeWorkgroupStorageSize >= v.requires.maxComputeWorkgroupStorageSize &&
    rt.limits.maxComputeInvocationsPerWorkgroup >= v.requires.maxComputeInvocationsPerWorkgroup);
}
