// A seeded, skewed routing trace for tests and benchmarks: each MoE layer's expert popularity is
// Zipf-distributed under its own random permutation, and consecutive layers are correlated: each
// of a token's top-k choices at layer l+1 follows a fixed per-layer map of its choice at layer l
// with probability `follow`, else is drawn from the layer's popularity (choices stay distinct).
import type { RoutingTrace } from './placement.js';
import { seededRandom } from '../seeded-random.js';

export interface SyntheticTraceOptions {
  experts: number;
  /** The model layer index of each MoE layer. */
  moeLayers: readonly number[];
  tokens: number;
  topK: number;
  seed: number;
  /** Popularity of the expert of rank r is proportional to 1 / (r + 1)^zipfExponent. */
  zipfExponent?: number;
  /** Chance that a choice follows the previous layer's map rather than the popularity draw. */
  follow?: number;
  model?: string;
}

export interface SyntheticRouting {
  trace: RoutingTrace;
  /** choices[l][t * topK + k]: the k-th expert token t chose at MoE layer l. */
  choices: Int32Array[];
}


function shuffled(n: number, random: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Cumulative popularity per expert: Zipf over ranks, ranks dealt to experts by a random permutation. */
function zipfCumulative(experts: number, exponent: number, random: () => number): Float64Array {
  const rankOf = shuffled(experts, random);
  const weights = rankOf.map((rank) => 1 / (rank + 1) ** exponent);
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative = new Float64Array(experts);
  let sum = 0;
  weights.forEach((w, e) => (cumulative[e] = sum += w / total));
  return cumulative;
}

function draw(cumulative: Float64Array, random: () => number): number {
  const u = random();
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function syntheticRouting(options: SyntheticTraceOptions): SyntheticRouting {
  const { experts: E, moeLayers, tokens, topK: K, seed, zipfExponent = 1.2, follow = 0.7, model = 'synthetic' } = options;
  if (K > E) throw new Error(`top-k ${K} exceeds ${E} experts`);
  const random = seededRandom(seed);
  const popularity = moeLayers.map(() => zipfCumulative(E, zipfExponent, random));
  const nextOf = moeLayers.map(() => shuffled(E, random)); // nextOf[l][i]: where a token leaving i at layer l tends to go
  const choices = moeLayers.map(() => new Int32Array(tokens * K));
  for (let t = 0; t < tokens; t++) {
    for (let l = 0; l < moeLayers.length; l++) {
      const chosen = choices[l]!.subarray(t * K, (t + 1) * K);
      for (let k = 0; k < K; k++) {
        const taken = (e: number): boolean => chosen.subarray(0, k).includes(e);
        let e = l > 0 && random() < follow ? nextOf[l - 1]![choices[l - 1]![t * K + k]!]! : draw(popularity[l]!, random);
        while (taken(e)) e = draw(popularity[l]!, random);
        chosen[k] = e;
      }
    }
  }
  return { trace: traceOf(choices, moeLayers, E, K, tokens, model), choices };
}

/** Counts and all k x k transitions of each token's choices, per MoE layer. */
export function traceOf(choices: readonly Int32Array[], moeLayers: readonly number[], experts: number, topK: number, tokens: number, model: string): RoutingTrace {
  const layers = moeLayers.map((layer, l) => {
    const counts = new Array<number>(experts).fill(0);
    for (const e of choices[l]!) counts[e]!++;
    const last = l === moeLayers.length - 1;
    const transitions = last ? [] : Array.from({ length: experts }, () => new Array<number>(experts).fill(0));
    if (!last) {
      for (let t = 0; t < tokens; t++) {
        for (let a = 0; a < topK; a++) {
          for (let b = 0; b < topK; b++) transitions[choices[l]![t * topK + a]!]![choices[l + 1]![t * topK + b]!]!++;
        }
      }
    }
    return { layer, counts, transitions };
  });
  return { version: 1, model, tokens, layers };
}
