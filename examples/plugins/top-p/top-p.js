// Top-p dynamic routing ("Harder Tasks Need More Experts", Huang et al. 2024) as a moec router
// plugin: softmax over the E experts, then experts in descending probability until their
// cumulative probability reaches p (at least one; at most the block's top_k, so buffers stay
// [T, top_k] and unused slots are id -1, weight 0). Each chosen expert is weighted by its router
// probability, not renormalized unless `renormalize = true`.
import { fileURLToPath } from 'node:url';
import { definePlugin, f32Literal, softmax, topKIndices } from 'moec/plugin';

/** @type {import('moec/plugin').KindDefinition} */
const topPKind = {
  name: 'top_p',
  category: 'router',
  doc: 'Top-p dynamic routing (Huang et al. 2024): softmax(x W^T), experts in descending probability until their cumulative probability reaches p (at least one, at most top_k), each weighted by its probability (renormalized iff renormalize).',
  params: [
    { name: 'p', doc: 'Cumulative router probability a token\'s chosen experts must reach (0 < p <= 1); top_k caps how many it may take.', value: { type: 'number' }, default: 0.5 },
    { name: 'renormalize', doc: 'Divide the chosen probabilities by their sum (the paper does not).', value: { type: 'bool' }, default: false },
  ],
  // A range check here rather than in the schema, so the hint can state both bounds.
  resolve(params) {
    const p = /** @type {number} */ (params['p']);
    return p > 0 && p <= 1 ? [] : [{ param: 'p', message: `p = ${p} is out of range`, hint: 'p is a cumulative probability: 0 < p <= 1' }];
  },
};

/**
 * One token: experts best first (ties to the lower index) until the cumulative probability
 * reaches p. A NaN probability is never chosen, as on the GPU (its key is not open there).
 * @type {import('moec/plugin').RouterImplementation}
 */
function routeTopP({ logits, topK, router }) {
  const p = /** @type {number} */ (router.params['p']);
  const probs = softmax(logits);
  const ids = [];
  const weights = [];
  let cumulative = 0;
  for (const e of topKIndices(probs, topK, (i) => !Number.isNaN(probs[i]))) {
    if (ids.length > 0 && cumulative >= p) break;
    ids.push(e);
    weights.push(probs[e]);
    cumulative += probs[e];
  }
  const norm = router.params['renormalize'] === true ? cumulative : 1;
  const empty = topK - ids.length;
  return { ids: [...ids, ...new Array(empty).fill(-1)], weights: [...weights.map((w) => w / norm), ...new Array(empty).fill(0)] };
}

// The WGSL selection partial (see codegen/kernels/router/router.wgsl.hbs): `route_token` reads the
// token's `logits`, uses `keys` and `peek_best` (ties to the lower index) and writes TOPK slots.
const selection = `// top_p (plugin): softmax over the E experts, then experts best first until their cumulative
// probability reaches P (at least one, at most TOPK), each weighted by its probability{{#if renormalize}}, renormalized{{/if}}.
const P = {{p}};

fn route_token(row: u32, out: u32) {
  var m = TAKEN;
  for (var e = 0u; e < E; e++) {
    m = max(m, logits[row + e]);
  }
  var z = 0.0;
  for (var e = 0u; e < E; e++) {
    z += exp(logits[row + e] - m);
  }
  for (var e = 0u; e < E; e++) {
    keys[row + e] = exp(logits[row + e] - m) / z;
  }
  var ids: array<i32, TOPK>;
  var w: array<f32, TOPK>;
  // P > 0, so the first slot is always taken.
  var cumulative = 0.0;
  for (var k = 0u; k < TOPK; k++) {
    ids[k] = -1;
    w[k] = 0.0;
    if (cumulative < P) {
      let best = peek_best(row);
      if (best >= 0) {
        let prob = keys[row + u32(best)];
        keys[row + u32(best)] = TAKEN;
        ids[k] = best;
        w[k] = prob;
        cumulative += prob;
      }
    }
  }
{{#if renormalize}}
  let norm = 1.0 / cumulative;
{{else}}
  let norm = 1.0;
{{/if}}
  for (var k = 0u; k < TOPK; k++) {
    route_ids[out + k] = ids[k];
    route_weights[out + k] = select(0.0, w[k] * norm, ids[k] >= 0);
  }
}`;

export default definePlugin({
  name: 'top-p',
  kinds: [topPKind],
  routers: {
    top_p: {
      interpret: routeTopP,
      kernel: {
        template: { source: selection, origin: fileURLToPath(import.meta.url) },
        context: ({ router }) => ({ p: f32Literal(/** @type {number} */ (router.params['p'])), renormalize: router.params['renormalize'] === true }),
      },
    },
  },
});
