// How a bundle stores its plans compactly, and how the runtime restores them. Two kinds of
// sharing: each distinct WGSL text is stored once (plans refer to it as { $wgsl: id }), and
// what differs only in a layer number is stored once with `{layer}` where the number was: MoE
// layers' whole plans ({ $template: i }), and in the whole-model plan each layer's run of
// buffers, weights and steps ({ $run: i, layer: L }). codegen/bundle/kernel-table.ts and
// codegen/bundle/model-plan-store.ts write this form.
import type { ModelPlan, MoeBlockPlan } from './plan.js';

export const LAYER_PLACEHOLDER = '{layer}';
/** In the model plan's layer runs: the layer before (a layer's first step reads the previous one's output). */
export const PREVIOUS_LAYER_PLACEHOLDER = '{layer-1}';

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
  return restoreKernels(plan, kernels, `layer ${layer}'s plan`) as MoeBlockPlan;
}

/** The whole-model plan as a bundle stores it: per-layer runs shared, WGSL by reference. */
export interface StoredModelPlan {
  /** Runs of consecutive array items (buffers, weights, steps) of one layer, with `{layer}` for its number and `{layer-1}` for the one before. */
  runs: unknown[][];
  /** The plan, its WGSL as { $wgsl: id } and, in its top-level arrays, { $run: i, layer: L } for run i of layer L. */
  plan: Record<string, unknown>;
}

const isRunRef = (v: unknown): v is { $run: number; layer: number } =>
  typeof v === 'object' && v !== null && Object.keys(v).length === 2 && typeof (v as { $run?: unknown }).$run === 'number' &&
  typeof (v as { layer?: unknown }).layer === 'number';

/** Every top-level array of `plan` with its run references expanded (still with { $wgsl } references). */
export function expandLayerRuns(stored: StoredModelPlan): Record<string, unknown> {
  return Object.fromEntries(Object.entries(stored.plan).map(([key, value]) => [key, Array.isArray(value)
    ? value.flatMap((item) => {
      if (!isRunRef(item)) return [item];
      const run = stored.runs[item.$run];
      if (!run) throw new BundlePlanError(`bundle: the model plan's ${key} refers to layer run ${item.$run}, which the bundle lacks`);
      return mapStrings(run, (s) => placeholderToLayer(s.split(PREVIOUS_LAYER_PLACEHOLDER).join(String(item.layer - 1)), item.layer)) as unknown[];
    })
    : value]));
}

/** The whole-model plan: its layer runs expanded, WGSL put back. */
export function inflateModelPlan(stored: StoredModelPlan, kernels: Readonly<Record<string, string>>): ModelPlan {
  return restoreKernels(expandLayerRuns(stored), kernels, 'the model plan') as ModelPlan;
}

/** `value` with each { $wgsl: id } replaced by the kernel's WGSL. */
function restoreKernels(value: unknown, kernels: Readonly<Record<string, string>>, what: string): unknown {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    const ref = (v as { $wgsl?: unknown }).$wgsl;
    if (typeof ref === 'string' && Object.keys(v).length === 1) {
      const code = kernels[ref];
      if (code === undefined) throw new BundlePlanError(`bundle: ${what} refers to kernel ${ref}, which the bundle lacks`);
      return code;
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
  };
  return walk(value);
}
