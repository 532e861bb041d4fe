// Hugging Face checkpoints -> the IR's weights: a WeightSource that makes each IR weight (a MoE
// block's layers.L.moe.*, or any other weight of the decoder) by its family's recipe
// (hf-naming.ts) from the tensors a TensorReader offers, read and checked by
// checked-tensor-reader.ts; and readHfWeights, a whole decoder's weights at once. A read of some
// experts (rows of the leading dim) reads only those experts' tensors or bytes. Browser-safe.
import { CheckedTensorReader } from './checked-tensor-reader.js';
import { deinterleave, deinterleaveTranspose, transposeInner } from './gpt-oss-layout.js';
import { fp8BlockSizeOf } from './hf-fp8.js';
import { checkSpecTensors, recipeOf, requireSupportedModelType, type Recipe } from './hf-naming.js';
import { checkRowRange, type RowRange, type WeightSource } from './plan.js';
import { pairedReads } from './paired-reads.js';
import { HfWeightsError, type TensorReader } from './tensor-reader.js';
import { formatShape } from './safetensors.js';


export interface HfWeightSource extends WeightSource {
  readonly modelType: string;
  /**
   * Checks, before any tensor is read, that the checkpoint and IR weights (a MoE block's, or any
   * part of the decoder) describe the same model: the family has every weight, and the checkpoint
   * holds no tensor of those parts the weights would ignore (e.g. a shared expert or a q_proj bias
   * the spec lacks). Throws a one-line HfWeightsError.
   */
  checkBlock(irNames: readonly string[]): void;
  /**
   * checkBlock, and that each weight stored as one tensor or one tensor per expert is there with
   * its shape: a checkpoint that cannot give all of `weights` fails before any is read.
   */
  checkWeights(weights: readonly { name: string; shape: readonly number[] }[]): void;
}

/** An IR weight to read: a graph param's name and shape (spelled out in checkWeights, as model.d.ts copies HfWeightSource alone). */
export interface IrWeight {
  name: string;
  shape: readonly number[];
}

export interface HfWeightSourceOptions {
  /**
   * The checkpoint's config.json. Its quantization_config.weight_block_size gives the block size
   * of FP8 weights; without one they are read in DeepSeek-V3's 128 x 128 blocks.
   */
  config?: Record<string, unknown>;
}

/**
 * A WeightSource reading a `modelType` checkpoint (its config.json's model_type) through `reader`.
 * Every failure is one line naming the file and the tensor.
 */
export function hfWeightSource(modelType: string, reader: TensorReader, options: HfWeightSourceOptions = {}): HfWeightSource {
  requireSupportedModelType(modelType); // fail early on an unknown model type
  let configBlock: readonly [number, number] | undefined;
  try {
    configBlock = fp8BlockSizeOf(options.config);
  } catch (e) {
    throw new HfWeightsError((e as Error).message);
  }
  const tensors = new CheckedTensorReader(reader, modelType, configBlock);
  // Recipes that take one half of a fused tensor read it through here: the other half's read follows.
  const fusedTensors = new CheckedTensorReader(pairedReads(reader), modelType, configBlock);
  const checkBlock = (irNames: readonly string[]) => checkSpecTensors(modelType, irNames, reader);
  return {
    modelType,
    checkBlock,
    checkWeights(weights) {
      checkBlock(weights.map((w) => w.name));
      for (const { name, shape } of weights) {
        const recipe = recipeOf(modelType, name);
        if (recipe?.kind === 'tensor') tensors.requireTensor(recipe.name, shape, name);
        if (recipe?.kind === 'stack') for (let e = 0; e < shape[0]!; e++) tensors.requireTensor(recipe.name(e), shape.slice(1), name);
      }
    },
    sharesStorage(a, b) {
      const [ra, rb] = [recipeOf(modelType, a), recipeOf(modelType, b)];
      return !!ra && !!rb && 'half' in ra && 'half' in rb && ra.name === rb.name;
    },
    async readF32(irName: string, shape: number[], rows?: RowRange): Promise<Float32Array> {
      const recipe = recipeOf(modelType, irName);
      if (!recipe) {
        throw new HfWeightsError(`${tensors.location}: a ${modelType} checkpoint has no tensor for ${irName}; ` +
          `the spec does not match this checkpoint's model_type`);
      }
      const range = rows ?? { begin: 0, end: shape[0] ?? 1 };
      try {
        checkRowRange(range, shape[0] ?? 1, `${irName} ${formatShape(shape)}`);
      } catch (e) {
        throw new HfWeightsError((e as Error).message);
      }
      return followRecipe('half' in recipe ? fusedTensors : tensors, recipe, irName, shape, range, rows);
    },
  };
}

/**
 * Every weight of `weights` (a whole decoder's graph params, or any of them) from a `modelType`
 * checkpoint, as f32 in the IR layout, by name: bf16, FP8 and MXFP4 tensors dequantized. All are
 * checked (checkWeights) before any is read. Holds them all in memory: for the reference
 * interpreter and tests, not for a model that only fits on a GPU.
 */
export async function readHfWeights(modelType: string, reader: TensorReader, weights: readonly IrWeight[],
  options: HfWeightSourceOptions = {}): Promise<Map<string, Float32Array>> {
  const source = hfWeightSource(modelType, reader, options);
  source.checkWeights(weights);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of weights) out.set(name, await source.readF32(name, [...shape]));
  return out;
}

/**
 * Rows `range` of IR weight `irName` of `shape`, made by `recipe`. `rows` is what the caller asked
 * for (undefined: the whole weight, which a reader may then read whole).
 */
async function followRecipe(tensors: CheckedTensorReader, recipe: Recipe, irName: string, shape: number[], range: RowRange,
  rows: RowRange | undefined): Promise<Float32Array> {
  const count = range.end - range.begin;
  switch (recipe.kind) {
    case 'tensor':
      tensors.requireTensor(recipe.name, shape, irName);
      return tensors.readF32(recipe.name, shape, range, rows);
    case 'stack': {
      const [experts, ...inner] = shape;
      for (let e = 0; e < experts!; e++) tensors.requireTensor(recipe.name(e), inner, irName);
      const size = inner.reduce((n, d) => n * d, 1);
      const whole = { begin: 0, end: inner[0] ?? 1 };
      const expert = (e: number) => tensors.readF32(recipe.name(e), inner, whole, undefined);
      if (count === 1) return expert(range.begin); // a large model's shard piece: the expert's tensor as read, no copy
      const out = new Float32Array(count * size);
      for (let e = range.begin; e < range.end; e++) out.set(await expert(e), (e - range.begin) * size);
      return out;
    }
    case 'deinterleave-transpose': {
      const [experts, inter, hidden] = shape as [number, number, number];
      const stored = { experts, rows: 2 * inter, cols: hidden };
      if (tensors.isMxfp4(recipe.name, irName, [experts, hidden, 2 * inter], stored)) {
        return tensors.readMxfp4(recipe.name, irName, stored, range, rows, 2, recipe.half);
      }
      const source = await tensors.readF32(recipe.name, [experts, hidden, 2 * inter], range, rows);
      return deinterleaveTranspose(source, count, hidden, inter, recipe.half);
    }
    case 'deinterleave': {
      const [experts, inter] = shape as [number, number];
      tensors.requireTensor(recipe.name, [experts, 2 * inter], irName);
      return deinterleave(await tensors.readF32(recipe.name, [experts, 2 * inter], range, rows), count, inter, recipe.half);
    }
    case 'transpose': {
      const [experts, hidden, inter] = shape as [number, number, number];
      const stored = { experts, rows: hidden, cols: inter };
      if (tensors.isMxfp4(recipe.name, irName, [experts, inter, hidden], stored)) {
        return tensors.readMxfp4(recipe.name, irName, stored, range, rows);
      }
      return transposeInner(await tensors.readF32(recipe.name, [experts, inter, hidden], range, rows), count, inter, hidden);
    }
  }
}
