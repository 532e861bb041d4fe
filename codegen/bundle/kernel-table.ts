// Layers of one model share most kernels (same shapes, same WGSL) and usually whole plans
// (the same steps, only the layer number in weight names differs), and the whole-model plan
// runs the MoE blocks' kernels too. The bundle stores each distinct WGSL text once, keyed by its
// hash, and each distinct MoE block plan once as a template; the stored form is read back by
// runtime/bundle-plans.ts.
import { createHash } from 'node:crypto';
import { layerToPlaceholder, mapStrings, placeholderToLayer } from '../../runtime/bundle-plans.js';

export interface KernelInfo {
  /** Key into the bundle's kernel table: the first 16 hex digits of the sha256. */
  id: string;
  sha256: string;
  bytes: number;
  /** Names the plans give the kernel (a `name`, `label` or `entryPoint` next to the WGSL). */
  names: string[];
  /** MoE layers whose block plans use it. */
  layers: number[];
  /** Whether the whole-model plan uses it. */
  model: boolean;
}

export interface KernelTable {
  plans: Record<string, unknown>;
  /** The whole-model plan given to deduplicateKernels, its WGSL replaced by references. */
  model?: unknown;
  planTemplates: unknown[];
  kernels: Record<string, string>;
  info: KernelInfo[];
}

/** A string is a kernel if it declares a compute entry point. */
const isWgsl = (s: string): boolean => /@compute\b/.test(s);

export const sha256 = (text: string | Uint8Array): string => createHash('sha256').update(text).digest('hex');

/**
 * Replaces every WGSL string of every MoE block plan (by layer) and of the whole-model plan
 * `model`, if any, by a reference into one deduplicated table.
 */
export function deduplicateKernels(plans: ReadonlyMap<number, unknown>, model?: unknown): KernelTable {
  const kernels: Record<string, string> = {};
  const info = new Map<string, KernelInfo>();
  const idOf = new Map<string, string>(); // each layer repeats the same WGSL: hash it once
  const out: Record<string, unknown> = {};
  const replaceWgsl = (plan: unknown, user: number | 'model'): unknown => {
    const walk = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(walk);
      if (typeof v === 'string' && isWgsl(v)) return { $wgsl: record(v, user, []) };
      if (typeof v !== 'object' || v === null) return v;
      const o = v as Record<string, unknown>;
      const names = ['name', 'label', 'entryPoint'].map((k) => o[k]).filter((n): n is string => typeof n === 'string');
      return Object.fromEntries(Object.entries(o).map(([k, x]) =>
        [k, typeof x === 'string' && isWgsl(x) ? { $wgsl: record(x, user, names) } : walk(x)]));
    };
    return walk(plan);
  };
  for (const [layer, plan] of plans) out[String(layer)] = replaceWgsl(plan, layer);
  const storedModel = model === undefined ? undefined : replaceWgsl(model, 'model');
  const { plans: shared, planTemplates } = shareTemplates(out);
  return { plans: shared, planTemplates, kernels, info: [...info.values()], ...(storedModel === undefined ? {} : { model: storedModel }) };

  function record(code: string, user: number | 'model', names: string[]): string {
    const id = idOf.get(code) ?? addKernel(code);
    const entry = info.get(id)!;
    for (const n of names) if (!entry.names.includes(n)) entry.names.push(n);
    if (user === 'model') entry.model = true;
    else if (!entry.layers.includes(user)) entry.layers.push(user);
    return id;
  }

  function addKernel(code: string): string {
    const hash = sha256(code);
    const short = hash.slice(0, 16);
    const id = kernels[short] === undefined ? short : hash; // a prefix collision keeps the full hash
    kernels[id] = code;
    info.set(id, { id, sha256: hash, bytes: new TextEncoder().encode(code).byteLength, names: [], layers: [], model: false });
    idOf.set(code, id);
    return id;
  }
}

/** layerToPlaceholder for `layer`, which skips (with two cheap tests) the strings it cannot change: most of them. */
function withPlaceholder(layer: number): (s: string) => string {
  const weightName = `layers.${layer}.`;
  const blockName = `moe_block_${layer}`;
  return (s) => (s.includes(weightName) || s.endsWith(blockName) ? layerToPlaceholder(s, layer) : s);
}

/** Plans equal up to their layer number become one template; a plan that does not round-trip stays whole. */
function shareTemplates(plans: Record<string, unknown>): { plans: Record<string, unknown>; planTemplates: unknown[] } {
  const planTemplates: unknown[] = [];
  const index = new Map<string, number>();
  const out: Record<string, unknown> = {};
  for (const [key, plan] of Object.entries(plans)) {
    const layer = Number(key);
    const template = mapStrings(plan, withPlaceholder(layer));
    if (JSON.stringify(mapStrings(template, (s) => placeholderToLayer(s, layer))) !== JSON.stringify(plan)) {
      out[key] = plan;
      continue;
    }
    const text = JSON.stringify(template);
    let i = index.get(text);
    if (i === undefined) {
      index.set(text, (i = planTemplates.length));
      planTemplates.push(template);
    }
    out[key] = { $template: i };
  }
  return { plans: out, planTemplates };
}
