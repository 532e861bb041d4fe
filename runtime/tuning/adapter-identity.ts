/// <reference types="@webgpu/types" />
// Which GPU a tuning result belongs to: the adapter's GPUAdapterInfo and the limits and features
// that change which kernels can run (workgroup storage, invocations, f16, subgroups). Tuning files
// and bundles key their entries by it; a bundle picks the entry equal to the adapter it runs on.
// Browser-safe: no hashing library, a readable file stem plus a short FNV-1a of the whole identity.

export interface AdapterIdentity {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  limits: KernelLimits;
  /** Adapter features kernels may use, sorted. */
  features: string[];
}

export interface KernelLimits {
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxStorageBufferBindingSize: number;
}

/** Features whose presence changes the kernels a tuner may pick (timestamp-query only changes how it times). */
export const KERNEL_FEATURES = ['shader-f16', 'subgroups'] as const;

const LIMIT_NAMES: readonly (keyof KernelLimits)[] = ['maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxStorageBufferBindingSize'];

/** The identity of `adapter` (what it offers, not what a device asked for). */
export function adapterIdentity(info: { vendor: string; architecture: string; device: string; description: string }, adapter: Pick<GPUAdapter, 'limits' | 'features'>): AdapterIdentity {
  const limits = Object.fromEntries(LIMIT_NAMES.map((name) => [name, Number(adapter.limits[name])])) as unknown as KernelLimits;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    limits,
    features: KERNEL_FEATURES.filter((f) => adapter.features.has(f)),
  };
}

/** One canonical text of an identity (fixed key order), for comparing and hashing. */
export function identityText(id: AdapterIdentity): string {
  return JSON.stringify([id.vendor, id.architecture, id.device, id.description, LIMIT_NAMES.map((n) => id.limits[n]), [...id.features].sort()]);
}

export const sameAdapter = (a: AdapterIdentity, b: AdapterIdentity): boolean => identityText(a) === identityText(b);

/** 8 hex digits of FNV-1a over `text` (`seed` varies the start, for a wider hash from two runs). */
export function fnv1a(text: string, seed = 0x811c9dc5): string {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** `mesa-llvmpipe-3f2a09c1`: readable (vendor, architecture or description) and unique (the hash of the whole identity); a file stem. */
export function adapterKey(id: AdapterIdentity): string {
  const words = [id.vendor, id.architecture || id.description || id.device].join('-').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return `${words || 'adapter'}-${fnv1a(identityText(id))}`;
}

/** `mesa / llvmpipe / ...` for messages. */
export const describeAdapter = (id: AdapterIdentity): string => [id.vendor, id.architecture, id.device, id.description].filter(Boolean).join(' / ') || '(an adapter with no GPUAdapterInfo)';
