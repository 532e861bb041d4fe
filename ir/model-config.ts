// The resolved description of a model and how to compile it: what the IR builder consumes.
// The spec front end (compiler/spec) and the HF importer produce it; every kind's params are
// filled in with defaults, so consumers never guess.

export type ParamValue = number | boolean | string | number[] | string[] | KindRef[];

/** A registry kind with all of its parameters resolved, e.g. { kind: 'int4', params: { group: 32 } }. */
export interface KindRef {
  kind: string;
  params: Record<string, ParamValue>;
}

export interface MoeConfig {
  experts: number;
  topK: number;
  router: KindRef;
  /** The routed experts' MLP (an activation kind carrying its intermediate size). */
  expert: KindRef;
  /** One always-on shared MLP (DeepSeek's n_shared_experts are merged into one wider MLP). */
  shared?: KindRef;
  sharedGate: 'none' | 'sigmoid';
  /** Layer i is an MoE layer iff i >= firstLayer, i % every == offset and i is not in denseLayers. */
  firstLayer: number;
  every: number;
  offset: number;
  denseLayers: number[];
}

export const quantTargets = ['experts', 'shared', 'dense', 'attention', 'router', 'embeddings', 'lm_head'] as const;
export type QuantTarget = (typeof quantTargets)[number];

export interface CompileConfig {
  target: 'webgpu';
  dtype: 'f32' | 'f16';
  quantize: Partial<Record<QuantTarget, KindRef>>;
  tokenRounding: KindRef;
  /** Context length: positions the KV cache holds; FLOPs per token are reported at it. */
  context: number;
  /** Storage of the KV cache. */
  kvCache: 'f32' | 'f16';
  /** Plugin modules, as the spec writes them (relative to the spec file). */
  plugins: string[];
  /**
   * Under `quantize experts = mixed(...)`: each MoE layer's routed experts' formats, one quant
   * kind per expert, keyed by model layer index. Chosen from the weights and a routing trace
   * (compiler/mixed-precision/), never written in a spec; absent until then.
   */
  expertFormats?: Record<number, KindRef[]>;
}

export interface ModelConfig {
  name: string;
  hidden: number;
  vocab: number;
  layers: number;
  tieEmbeddings: boolean;
  lmHeadBias: boolean;
  norm: KindRef;
  attention: KindRef;
  /** Rotary embedding scaling (HF rope_scaling); `default` is plain RoPE with the attention's rope_theta. */
  rope: KindRef;
  /** The MLP of layers that are not MoE layers. */
  dense?: { mlp: KindRef };
  moe?: MoeConfig;
  compile: CompileConfig;
}

export function isMoeLayer(config: ModelConfig, layer: number): boolean {
  const moe = config.moe;
  if (!moe) return false;
  return layer >= moe.firstLayer && layer % moe.every === moe.offset && !moe.denseLayers.includes(layer);
}

export function moeLayerIndices(config: ModelConfig): number[] {
  return Array.from({ length: config.layers }, (_, i) => i).filter((i) => isMoeLayer(config, i));
}

/** Keys a query sees on `layer` (itself and window - 1 before it), or 0 for the whole prefix. */
export function attentionWindow(attention: KindRef, layer: number): number {
  const window = attention.params['sliding_window'];
  if (typeof window !== 'number' || window === 0) return 0;
  const fullEvery = attention.params['full_every'];
  // gpt-oss alternates by layer_types: layer i is full iff (i + 1) % full_every == 0.
  return typeof fullEvery === 'number' && fullEvery > 0 && (layer + 1) % fullEvery === 0 ? 0 : window;
}

export function numParam(ref: KindRef, name: string): number {
  const v = ref.params[name];
  if (typeof v !== 'number') throw new Error(`${ref.kind}: parameter ${name} is not a number`);
  return v;
}

export function boolParam(ref: KindRef, name: string): boolean {
  return ref.params[name] === true;
}
