// How a bundle stores its plans compactly, and how the runtime restores them. Two kinds of
// sharing: each distinct WGSL text is stored once (plans refer to it as { $wgsl: id }), and
// layers whose plans differ only in their layer number share one template ({ $template: i },
// with `{layer}` where the number was). codegen/bundle/kernel-table.ts writes this form.
import type { MoeBlockPlan } from './plan.js';

export const LAYER_PLACEHOLDER = '{layer}';

/** `layers.3.moe.x` -> `layers.{layer}.moe.x`, `m.moe_block_3` -> `m.moe_block_{layer}`. */
export function layerToPlaceholder(text: string, layer: number): string {
  return text
    .replace(new RegExp(`(^|[^\\w.])layers\\.${layer}\\.`, 'g'), `$1layers.${LAYER_PLACEHOLDER}.`)
    .replace(new RegExp(`moe_block_${layer}$`), `moe_block_${LAYER_PLACEHOLDER}`);
}

export function placeholderToLayer(text: string, layer: number): string {
  return text.split(LAYER_PLACEHOLDER).join(String(layer));
}

/** Applies `f` to every string of a JSON value (object keys included). */
export function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [f(k), mapStrings(v, f)]));
}

export class BundlePlanError extends Error {
  override readonly name = 'BundlePlanError';
}

/** Layer `layer`'s plan: its template instantiated (if it has one), WGSL put back. */
export function inflatePlan(stored: unknown, layer: number, templates: readonly unknown[], kernels: Readonly<Record<string, string>>): MoeBlockPlan {
  const template = (stored as { $template?: unknown } | undefined)?.$template;
  let plan = stored;
  if (typeof template === 'number') {
    if (!(template in templates)) throw new BundlePlanError(`bundle: layer ${layer} refers to plan template ${template}, which the bundle lacks`);
    plan = mapStrings(templates[template], (s) => placeholderToLayer(s, layer));
  }
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    const ref = (v as { $wgsl?: unknown }).$wgsl;
    if (typeof ref === 'string' && Object.keys(v).length === 1) {
      const code = kernels[ref];
      if (code === undefined) throw new BundlePlanError(`bundle: layer ${layer}'s plan refers to kernel ${ref}, which the bundle lacks`);
      return code;
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
  };
  return walk(plan) as MoeBlockPlan;
}
