// The whole-model plan in a bundle: each decoder layer repeats the same buffers, weights and
// steps with only its number changed, so each top-level array's run of one layer's items is
// stored once as a template (`{layer}` for the number, `{layer-1}` for the layer before, whose
// output the layer's first steps read) and referenced as { $run: i, layer: L }: the stored plan
// hardly grows with depth (Qwen3-30B-A3B's 48 layers: 1.1 MB of plan JSON become 0.08 MB).
// runtime/bundle-plans.ts expands it.
import { expandLayerRuns, LAYER_PLACEHOLDER, mapStrings, PREVIOUS_LAYER_PLACEHOLDER, type StoredModelPlan } from '../../runtime/bundle-plans.js';

/**
 * The layer an item belongs to: L when its strings name `layers.L` (`layers.3.attn.q`, `attention
 * prepare layers.3`) and at most `layers.L-1` besides; undefined for none or other layers.
 */
function layerOf(item: unknown): number | undefined {
  const layers = new Set([...JSON.stringify(item).matchAll(/(?:^|[^\w.])layers\.(\d+)(?!\w)/g)].map((m) => Number(m[1])));
  const last = Math.max(...layers);
  return layers.size === 1 || (layers.size === 2 && layers.has(last - 1)) ? last : undefined;
}

/** `layers.3.attn.q` -> `layers.{layer}.attn.q`, `prepare layers.3` -> `prepare layers.{layer}`, `layers.2.out` -> `layers.{layer-1}.out`, for layer 3. */
function withPlaceholder(layer: number): (s: string) => string {
  const named = (n: number) => new RegExp(`(^|[^\\w.])layers\\.${n}(?!\\w)`, 'g');
  const [current, previous] = [named(layer), named(layer - 1)];
  return (s) => (s.includes('layers.')
    ? s.replace(current, `$1layers.${LAYER_PLACEHOLDER}`).replace(previous, `$1layers.${PREVIOUS_LAYER_PLACEHOLDER}`)
    : s);
}

/** `plan` (its WGSL already replaced by references) with its per-layer runs shared. */
export function storeModelPlan(plan: Record<string, unknown>): StoredModelPlan {
  const runs: unknown[][] = [];
  const index = new Map<string, number>();
  const shareRuns = (items: unknown[]): unknown[] => {
    const out: unknown[] = [];
    for (let begin = 0; begin < items.length;) {
      const layer = layerOf(items[begin]);
      let end = begin + 1;
      if (layer !== undefined) while (end < items.length && layerOf(items[end]) === layer) end++;
      const run = items.slice(begin, end);
      begin = end;
      const template = layer === undefined ? undefined : mapStrings(run, withPlaceholder(layer)) as unknown[];
      // A run that would not survive the substitution (it already holds `{layer}`) stays as it is.
      if (template === undefined || JSON.stringify(expandLayerRuns({ runs: [template], plan: { run: [{ $run: 0, layer }] } })['run']) !== JSON.stringify(run)) {
        out.push(...run);
        continue;
      }
      const text = JSON.stringify(template);
      let i = index.get(text);
      if (i === undefined) index.set(text, (i = runs.push(template) - 1));
      out.push({ $run: i, layer });
    }
    return out;
  };
  const stored: StoredModelPlan = {
    runs,
    plan: Object.fromEntries(Object.entries(plan).map(([key, value]) => [key, Array.isArray(value) ? shareRuns(value) : value])),
  };
  // The plan must read back exactly; otherwise it is stored whole.
  return JSON.stringify(expandLayerRuns(stored)) === JSON.stringify(plan) ? stored : { runs: [], plan };
}
