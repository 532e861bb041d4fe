// How close one token's routing is to a different decision, from float64 logits: the smallest
// gap between a chosen and an unchosen candidate (expert, group, or sparsemixer window edge).
// The GPU routes in f32 and the reference in f64, so where this gap is below ~1e-5 the two may
// honestly choose differently; the tests excuse a mismatched token only when it is that close.
import { boolParam, numParam, type KindRef } from '../../ir/model-config.js';

/** Gap between the k-th and (k+1)-th largest values (Infinity when there is no (k+1)-th). */
function boundaryGap(values: number[], k: number): number {
  const sorted = [...values].sort((a, b) => b - a);
  return k < sorted.length && k > 0 ? sorted[k - 1]! - sorted[k]! : Infinity;
}

function groupGap(keys: number[], groups: number, keep: number, score: (members: number[]) => number): { gap: number; kept: Set<number> } {
  const size = keys.length / groups;
  const scores = Array.from({ length: groups }, (_, g) => score(keys.slice(g * size, (g + 1) * size)));
  const order = scores.map((s, g) => [s, g] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  return { gap: boundaryGap(scores, keep), kept: new Set(order.slice(0, keep).map(([, g]) => g)) };
}

const softmax = (v: number[]): number[] => {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
};

export function decisionMargin(logits: number[], router: KindRef, topK: number, correctionBias?: Float32Array): number {
  const E = logits.length;
  switch (router.kind) {
    case 'softmax_topk':
    case 'sigmoid_topk': {
      const sigmoid = router.kind === 'sigmoid_topk';
      const nulls = sigmoid ? 0 : numParam(router, 'null_experts');
      const probs = sigmoid ? logits.map((l) => 1 / (1 + Math.exp(-l))) : softmax([...logits, ...new Array<number>(nulls).fill(0)]);
      const keys = sigmoid ? probs.map((s, e) => s + (correctionBias && boolParam(router, 'correction_bias') ? correctionBias[e]! : 0)) : probs;
      let margin = Infinity;
      let allowed = keys.map((_, e) => e);
      const groups = numParam(router, 'groups');
      if (groups > 1) {
        const keep = numParam(router, 'topk_groups') || groups;
        const score = sigmoid ? (m: number[]) => [...m].sort((a, b) => b - a).slice(0, 2).reduce((a, b) => a + b, 0) : (m: number[]) => Math.max(...m);
        const { gap, kept } = groupGap(keys.slice(0, E), groups, keep, score);
        margin = gap;
        allowed = allowed.filter((e) => kept.has(Math.floor(e / (E / groups))));
      }
      // Null experts share one probability: a boundary between two of them decides nothing.
      const candidates = allowed.map((e) => keys[e]!);
      const sorted = allowed.map((e) => [keys[e]!, e] as const).sort((a, b) => b[0] - a[0]);
      const bothNull = topK < sorted.length && sorted[topK - 1]![1] >= E && sorted[topK]![1] >= E;
      return Math.min(margin, bothNull ? Infinity : boundaryGap(candidates, topK));
    }
    case 'topk_softmax':
      return boundaryGap(logits, topK);
    case 'sparsemixer': {
      const window = 2 * numParam(router, 'jitter_eps');
      const order = logits.map((l, e) => [l, e] as const).sort((a, b) => b[0] - a[0]);
      let margin = Math.min(boundaryGap(logits, 1), boundaryGap(logits, 2));
      for (const [m, chosen] of order.slice(0, 2)) {
        for (let e = 0; e < E; e++) {
          if (e === chosen) continue;
          const l = logits[e]!;
          margin = Math.min(margin, Math.abs(m - l - window * Math.max(Math.abs(l), m)));
        }
      }
      return margin;
    }
    case 'relu_gate': {
      const positive = logits.filter((l) => l > 0);
      const near = [...logits].sort((a, b) => b - a).slice(0, topK + 1).map((l) => Math.abs(l));
      return Math.min(boundaryGap(positive, topK), ...near);
    }
    default:
      throw new Error(`no decision margin for router ${router.kind}`);
  }
}
