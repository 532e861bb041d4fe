// The attention core every attention kind reduces to, in float64: queries against a KV cache
// whose slot j holds position j. GQA uses it with per-head keys; MLA's absorbed form uses it as
// multi-query attention over the compressed latent (one kv head, values = the latent itself).

export interface AttentionCoreShape {
  heads: number;
  /** Key/value heads; query head h reads kv head floor(h / (heads / kvHeads)). */
  kvHeads: number;
  /** Width of one query/key head. */
  keyDim: number;
  /** Width of one value head. */
  valueDim: number;
  /** Multiplies q.k before the softmax. */
  scale: number;
  /** Keys a query sees: its own position and the window - 1 before it; 0 means the whole prefix. */
  window: number;
}

/**
 * For each query row t (at position positions[t]), softmax(scale * q_t . k_j) over the cached
 * positions j <= positions[t] (and j > positions[t] - window), times v_j. With `sinks`, head h's
 * sink logit joins the softmax denominator and is then dropped (gpt-oss,
 * transformers/models/gpt_oss/modeling_gpt_oss.py eager_attention_forward).
 *
 * q: [T, heads * keyDim]; keyCache: [context, kvHeads * keyDim]; valueCache: [context, kvHeads * valueDim].
 * Returns [T, heads * valueDim].
 */
export function attendToCache(
  q: ArrayLike<number>,
  keyCache: ArrayLike<number>,
  valueCache: ArrayLike<number>,
  positions: ArrayLike<number>,
  shape: AttentionCoreShape,
  sinks?: ArrayLike<number>,
): Float64Array {
  const { heads, kvHeads, keyDim, valueDim, scale, window } = shape;
  const group = heads / kvHeads;
  const tokens = positions.length;
  const out = new Float64Array(tokens * heads * valueDim);
  for (let t = 0; t < tokens; t++) {
    const pos = positions[t]!;
    const first = window > 0 ? Math.max(0, pos - window + 1) : 0;
    for (let h = 0; h < heads; h++) {
      const kv = Math.floor(h / group);
      const qOffset = (t * heads + h) * keyDim;
      const logits = new Float64Array(pos - first + 1);
      let max = sinks ? sinks[h]! : -Infinity;
      for (let j = first; j <= pos; j++) {
        let dot = 0;
        const kOffset = (j * kvHeads + kv) * keyDim;
        for (let d = 0; d < keyDim; d++) dot += q[qOffset + d]! * keyCache[kOffset + d]!;
        logits[j - first] = dot * scale;
        max = Math.max(max, logits[j - first]!);
      }
      let sum = sinks ? Math.exp(sinks[h]! - max) : 0;
      for (let i = 0; i < logits.length; i++) {
        logits[i] = Math.exp(logits[i]! - max);
        sum += logits[i]!;
      }
      const oOffset = (t * heads + h) * valueDim;
      for (let j = first; j <= pos; j++) {
        const p = logits[j - first]! / sum;
        const vOffset = (j * kvHeads + kv) * valueDim;
        for (let d = 0; d < valueDim; d++) out[oOffset + d] += p * valueCache[vOffset + d]!;
      }
    }
  }
  return out;
}
