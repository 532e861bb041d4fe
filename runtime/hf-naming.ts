// Which Hugging Face tensors hold which IR weight, per model_type. Each model family names and
// lays out its MoE tensors differently; this table maps every IR weight of a MoE block
// (layers.L.moe.*) to the tensors of one family and says how to turn them into the IR layout
// (experts stacked on a leading [E] dim, gpt-oss's fused, interleaved gate/up split and
// transposed). The rest of the decoder is one tensor per weight, named alike in every family
// (hf-decoder-naming.ts). hf-weights.ts follows these recipes; checked-tensor-reader.ts reads the
// tensors. Browser-safe.
import { checkDecoderTensors, decoderTensorOf, isDecoderWeight } from './hf-decoder-naming.js';
import { HfWeightsError, type TensorReader } from './tensor-reader.js';

/** How one IR weight is made from a family's tensors. */
export type Recipe =
  /** The tensor as it is. */
  | { kind: 'tensor'; name: string }
  /** One tensor per expert, stacked on a new leading dim. */
  | { kind: 'stack'; name: (expert: number) => string; pattern: string }
  /**
   * gpt-oss gate_up_proj [E, H, 2I] (x @ W, gate/up interleaved on the last dim) -> gate or up
   * [E, I, H]; or MXFP4 gate_up_proj_blocks [E, 2I, H/32, 16] + _scales (gate rows 2i, up 2i + 1).
   */
  | { kind: 'deinterleave-transpose'; name: string; half: 0 | 1 }
  /** gpt-oss gate_up_proj_bias [E, 2I] -> gate or up bias [E, I]. */
  | { kind: 'deinterleave'; name: string; half: 0 | 1 }
  /** gpt-oss down_proj [E, I, H] (x @ W) -> [E, H, I]; or MXFP4 down_proj_blocks [E, H, I/32, 16] + _scales, as is. */
  | { kind: 'transpose'; name: string };

/** A family's recipes for the weights of layer `layer`'s MoE block, by IR name suffix (after `layers.L.moe.`). */
type FamilyRecipes = (layer: number) => Record<string, Recipe>;

const tensor = (name: string): Recipe => ({ kind: 'tensor', name });
const stack = (prefix: string, suffix: string): Recipe =>
  ({ kind: 'stack', name: (e) => `${prefix}.${e}.${suffix}`, pattern: `${prefix}.{e}.${suffix}` });

/** Mixtral and PhiMoE: block_sparse_moe with w1 (gate), w3 (up), w2 (down). */
const blockSparseMoe: FamilyRecipes = (layer) => {
  const p = `model.layers.${layer}.block_sparse_moe`;
  return {
    'router.weight': tensor(`${p}.gate.weight`),
    'experts.gate': stack(`${p}.experts`, 'w1.weight'),
    'experts.up': stack(`${p}.experts`, 'w3.weight'),
    'experts.down': stack(`${p}.experts`, 'w2.weight'),
  };
};

/** Qwen, OLMoE, DeepSeek: mlp.gate router and mlp.experts.{e}.{gate,up,down}_proj. */
function projMoe(layer: number, shared?: 'shared_expert' | 'shared_experts'): Record<string, Recipe> {
  const p = `model.layers.${layer}.mlp`;
  const recipes: Record<string, Recipe> = {
    'router.weight': tensor(`${p}.gate.weight`),
    'experts.gate': stack(`${p}.experts`, 'gate_proj.weight'),
    'experts.up': stack(`${p}.experts`, 'up_proj.weight'),
    'experts.down': stack(`${p}.experts`, 'down_proj.weight'),
  };
  if (shared) {
    for (const proj of ['gate', 'up', 'down']) recipes[`shared.${proj}`] = tensor(`${p}.${shared}.${proj}_proj.weight`);
  }
  return recipes;
}

const gptOss: FamilyRecipes = (layer) => {
  const p = `model.layers.${layer}.mlp`;
  return {
    'router.weight': tensor(`${p}.router.weight`),
    'router.bias': tensor(`${p}.router.bias`),
    'experts.gate': { kind: 'deinterleave-transpose', name: `${p}.experts.gate_up_proj`, half: 0 },
    'experts.up': { kind: 'deinterleave-transpose', name: `${p}.experts.gate_up_proj`, half: 1 },
    'experts.gate_bias': { kind: 'deinterleave', name: `${p}.experts.gate_up_proj_bias`, half: 0 },
    'experts.up_bias': { kind: 'deinterleave', name: `${p}.experts.gate_up_proj_bias`, half: 1 },
    'experts.down': { kind: 'transpose', name: `${p}.experts.down_proj` },
    'experts.down_bias': tensor(`${p}.experts.down_proj_bias`),
  };
};

const families: Record<string, FamilyRecipes> = {
  mixtral: blockSparseMoe,
  phimoe: blockSparseMoe,
  qwen2_moe: (layer) => ({
    ...projMoe(layer, 'shared_expert'),
    'shared_gate.weight': tensor(`model.layers.${layer}.mlp.shared_expert_gate.weight`),
  }),
  qwen3_moe: (layer) => projMoe(layer),
  olmoe: (layer) => projMoe(layer),
  deepseek_v2: (layer) => projMoe(layer, 'shared_experts'),
  deepseek_v3: (layer) => ({
    ...projMoe(layer, 'shared_experts'),
    'router.correction_bias': tensor(`model.layers.${layer}.mlp.gate.e_score_correction_bias`),
  }),
  gpt_oss: gptOss,
};

/** The Hugging Face `model_type`s whose MoE tensors moec can load. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(families);

/** Throws a HfWeightsError naming the supported model types unless `modelType` is one. */
export function requireSupportedModelType(modelType: string): void {
  recipesOf(modelType, 0);
}

function recipesOf(modelType: string, layer: number): Record<string, Recipe> {
  const family = Object.hasOwn(families, modelType) ? families[modelType] : undefined;
  if (!family) {
    throw new HfWeightsError(
      `model_type ${JSON.stringify(modelType)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`,
    );
  }
  return family(layer);
}

/** Splits `layers.L.moe.<suffix>` into L and the suffix. */
function parseIrName(irName: string): { layer: number; suffix: string } {
  const m = /^layers\.(\d+)\.moe\.(.+)$/.exec(irName);
  if (!m) throw new HfWeightsError(`${irName}: not the name of a decoder weight (embed.*, layers.L.{attn_norm,attn,mlp_norm,mlp,moe}.*, final_norm.*, lm_head.*)`);
  return { layer: Number(m[1]), suffix: m[2]! };
}

/** The recipe for IR weight `irName` in a `modelType` checkpoint, or undefined when the family has none. */
export function recipeOf(modelType: string, irName: string): Recipe | undefined {
  if (isDecoderWeight(irName)) {
    requireSupportedModelType(modelType);
    const name = decoderTensorOf(irName);
    return name === undefined ? undefined : tensor(name);
  }
  const { layer, suffix } = parseIrName(irName);
  return recipesOf(modelType, layer)[suffix];
}

/** How the IR weight `irName` is stored in a `modelType` checkpoint, in words (for manifests), or undefined. */
export function describeHfNaming(modelType: string, irName: string): string | undefined {
  const recipe = recipeOf(modelType, irName);
  if (!recipe) return undefined;
  switch (recipe.kind) {
    case 'tensor': return recipe.name;
    case 'stack': return `${recipe.pattern} stacked over experts e`;
    case 'deinterleave-transpose':
      return `${recipe.name} [E, H, 2I]: ${recipe.half ? 'up = [..., 1::2]' : 'gate = [..., ::2]'}, transposed to [E, I, H]; ` +
        `or MXFP4 ${recipe.name}_blocks [E, 2I, H/32, 16] + ${recipe.name}_scales [E, 2I, H/32]: ${recipe.half ? 'up = rows 1::2' : 'gate = rows ::2'}`;
    case 'deinterleave': return `${recipe.name} [E, 2I]: ${recipe.half ? 'up = [..., 1::2]' : 'gate = [..., ::2]'}`;
    case 'transpose':
      return `${recipe.name} [E, I, H] transposed to [E, H, I]; or MXFP4 ${recipe.name}_blocks [E, H, I/32, 16] + ${recipe.name}_scales [E, H, I/32]`;
  }
}

/** The IR weights of the MoE blocks among `irNames`, by layer: `layers.L.moe.<suffix>` -> L -> suffixes. */
function suffixesByLayer(irNames: readonly string[]): Map<number, Set<string>> {
  const byLayer = new Map<number, Set<string>>();
  for (const name of irNames) {
    if (isDecoderWeight(name)) continue;
    const { layer, suffix } = parseIrName(name);
    if (!byLayer.has(layer)) byLayer.set(layer, new Set());
    byLayer.get(layer)!.add(suffix);
  }
  return byLayer;
}

/**
 * The model types whose checkpoints hold exactly these MoE weights: every one of them, and no
 * other MoE tensor the spec would silently ignore (a shared expert, a router bias, ...). Weights
 * outside the MoE blocks are named alike in every family and do not narrow the answer.
 */
export function modelTypesMatching(irNames: readonly string[]): string[] {
  const byLayer = suffixesByLayer(irNames);
  return SUPPORTED_MODEL_TYPES.filter((t) => [...byLayer].every(([layer, suffixes]) => {
    const offered = Object.keys(recipesOf(t, layer));
    return offered.length === suffixes.size && offered.every((k) => suffixes.has(k));
  }));
}

/** The HF tensors a recipe may read (expert 0 only, for stacked ones; both forms of gpt-oss's fused experts). */
function tensorsOf(recipe: Recipe): string[] {
  if (recipe.kind === 'stack') return [recipe.name(0)];
  if (recipe.kind === 'deinterleave-transpose' || recipe.kind === 'transpose') return [recipe.name, `${recipe.name}_blocks`, `${recipe.name}_scales`];
  return [recipe.name];
}

/**
 * Checks, before any tensor is read, that a `modelType` checkpoint and IR weights (MoE blocks, or
 * any part of the decoder) describe the same model: the family has every weight, and the
 * checkpoint holds no tensor of those parts the weights would ignore (e.g. a shared expert or a
 * q_proj bias the spec lacks). Throws a one-line HfWeightsError.
 */
export function checkSpecTensors(modelType: string, irNames: readonly string[], reader: TensorReader): void {
  const location = reader.location ?? 'checkpoint';
  requireSupportedModelType(modelType);
  const unnamed = irNames.filter((n) => isDecoderWeight(n) && decoderTensorOf(n) === undefined);
  if (unnamed.length) {
    throw new HfWeightsError(`${location}: a ${modelType} checkpoint has no tensors for ${unnamed.join(', ')}; the spec does not describe this checkpoint`);
  }
  checkDecoderTensors(irNames, reader);
  for (const [layer, suffixes] of suffixesByLayer(irNames)) {
    const recipes = recipesOf(modelType, layer);
    const lacking = [...suffixes].filter((k) => !recipes[k]).map((k) => `layers.${layer}.moe.${k}`);
    if (lacking.length) {
      const types = modelTypesMatching(irNames);
      throw new HfWeightsError(`${location}: a ${modelType} checkpoint has no tensors for ${lacking.join(', ')}; ` +
        `the spec does not describe this checkpoint (checkpoints that match it: ${types.join(', ') || 'none supported'})`);
    }
    for (const [suffix, recipe] of Object.entries(recipes)) {
      const present = suffixes.has(suffix) ? undefined : tensorsOf(recipe).find((t) => reader.has(t));
      if (present) {
        throw new HfWeightsError(`${reader.fileOf?.(present) ?? location}: tensor "${present}" is part of layer ${layer}'s MoE block, but the spec has ` +
          `no weight for it (layers.${layer}.moe.${suffix}); the spec does not describe this checkpoint`);
      }
    }
  }
}
