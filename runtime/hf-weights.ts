// Hugging Face checkpoints -> the IR's weights. Each model family names and lays out its MoE
// tensors differently; this table maps every IR weight of a MoE block (layers.L.moe.*) to the
// tensors of one family and converts them to the IR layout (experts stacked on a leading [E] dim,
// gpt-oss's fused, interleaved gate/up split and transposed, or decoded from MXFP4; any family's
// 2-D weight stored as block-scaled FP8 with a `_scale_inv` companion, as DeepSeek-V3 releases
// it, decoded). A read of some experts (rows of the leading dim) reads only those experts'
// tensors or bytes. Browser-safe.
import { DEFAULT_FP8_BLOCK, dequantizeFp8, Fp8ValueError, fp8BlockSizeOf, fp8ScaleName, fp8ScaleRows, fp8ScaleShape } from './hf-fp8.js';
import { decodeMxfp4, MXFP4_BLOCK, mxfp4TensorShapes } from './hf-mxfp4.js';
import { checkRowRange, rowsOf, type RowRange, type WeightSource } from './plan.js';
import type { SafetensorsDtype } from './safetensors.js';

/** What a checkpoint offers: a directory of shards in Node, fetched files in a browser. */
export interface TensorReader {
  has(name: string): boolean;
  shape(name: string): readonly number[];
  /**
   * A tensor as f32; with `rows`, only rows [begin, end) of its leading dim. A reader may ignore
   * `rows` and return the whole tensor (it is sliced then).
   */
  readF32(name: string, rows?: RowRange): Float32Array | Promise<Float32Array>;
  /** A U8 tensor's bytes (MXFP4 blocks and scales), `rows` as for readF32. Without it MXFP4 checkpoints cannot be read. */
  readU8?(name: string, rows?: RowRange): Uint8Array | Promise<Uint8Array>;
  /** A tensor's safetensors dtype. Without it and readBytes, FP8 checkpoints cannot be read. */
  dtype?(name: string): SafetensorsDtype;
  /** Any tensor's raw bytes (FP8 codes), `rows` as for readF32. */
  readBytes?(name: string, rows?: RowRange): Uint8Array | Promise<Uint8Array>;
  /** The file that holds `name`, for error messages. */
  fileOf?(name: string): string;
  /** Where a missing tensor was looked for (a directory, a file list), for error messages. */
  location?: string;
}

export class HfWeightsError extends Error {
  override readonly name = 'HfWeightsError';
}

/** How one IR weight is made from a family's tensors. */
type Recipe =
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
  if (!m) throw new HfWeightsError(`${irName}: not the name of a MoE block weight (layers.L.moe.*)`);
  return { layer: Number(m[1]), suffix: m[2]! };
}

/** How the IR weight `irName` is stored in a `modelType` checkpoint, in words (for manifests), or undefined. */
export function describeHfNaming(modelType: string, irName: string): string | undefined {
  const { layer, suffix } = parseIrName(irName);
  const recipe = recipesOf(modelType, layer)[suffix];
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

/** The IR weights of one MoE block, by layer: `layers.L.moe.<suffix>` -> L -> suffixes. */
function suffixesByLayer(irNames: readonly string[]): Map<number, Set<string>> {
  const byLayer = new Map<number, Set<string>>();
  for (const name of irNames) {
    const { layer, suffix } = parseIrName(name);
    if (!byLayer.has(layer)) byLayer.set(layer, new Set());
    byLayer.get(layer)!.add(suffix);
  }
  return byLayer;
}

/**
 * The model types whose checkpoints hold exactly these MoE weights: every one of them, and no
 * other MoE tensor the spec would silently ignore (a shared expert, a router bias, ...).
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

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

export interface HfWeightSource extends WeightSource {
  readonly modelType: string;
  /**
   * Checks, before any tensor is read, that the checkpoint and a MoE block's IR weights describe
   * the same model: the family has every weight, and the checkpoint holds no MoE tensor the block
   * would ignore (e.g. a shared expert the spec lacks). Throws a one-line HfWeightsError.
   */
  checkBlock(irNames: readonly string[]): void;
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
  recipesOf(modelType, 0); // fail early on an unknown model type
  let configBlock: readonly [number, number] | undefined;
  try {
    configBlock = fp8BlockSizeOf(options.config);
  } catch (e) {
    throw new HfWeightsError((e as Error).message);
  }
  const where = (name: string): string => reader.fileOf?.(name) ?? reader.location ?? 'checkpoint';
  const fail = (name: string, message: string): never => {
    throw new HfWeightsError(`${where(name)}: tensor "${name}" ${message}`);
  };

  const requireShape = (name: string, expected: readonly number[], what: string): void => {
    const actual = reader.shape(name);
    if (!sameShape(actual, expected)) fail(name, `has shape ${formatShape(actual)}, expected ${formatShape(expected)} (${what})`);
  };

  const requireTensor = (name: string, expected: readonly number[], irName: string): void => {
    if (!reader.has(name)) {
      const mxfp4 = reader.has(`${name}_blocks`) ? `${name}_blocks` : undefined;
      if (mxfp4) {
        fail(mxfp4, `is MXFP4-quantized (_blocks/_scales); moec reads ${irName} from "${name}" in bf16/f32 only: ` +
          'load the checkpoint dequantized and save it again');
      }
      throw new HfWeightsError(`${reader.location ?? 'checkpoint'}: tensor "${name}" not found ` +
        `(needed for ${irName} of a ${modelType} checkpoint)`);
    }
    requireShape(name, expected, `for ${irName}`);
  };

  /** Whether gpt-oss's fused `name` is stored as MXFP4 (`name`_blocks + `name`_scales) of `experts` x rows x cols, after checking either form. */
  const fusedIsMxfp4 = (name: string, irName: string, dense: number[], experts: number, rows: number, cols: number): boolean => {
    const blocks = `${name}_blocks`;
    const scales = `${name}_scales`;
    if (reader.has(name) || !reader.has(blocks)) {
      if (!reader.has(name)) {
        throw new HfWeightsError(`${reader.location ?? 'checkpoint'}: tensor "${name}" (or MXFP4 "${blocks}" + "${scales}") not found ` +
          `(needed for ${irName} of a ${modelType} checkpoint)`);
      }
      requireShape(name, dense, `for ${irName}`);
      return false;
    }
    if (cols % MXFP4_BLOCK !== 0) fail(blocks, `is MXFP4 (blocks of ${MXFP4_BLOCK} inputs), but ${irName} has ${cols} inputs per row, not a multiple of ${MXFP4_BLOCK}`);
    const shapes = mxfp4TensorShapes(experts, rows, cols);
    requireShape(blocks, shapes.blocks, `MXFP4 blocks [E, rows, inputs/32, 16] for ${irName}`);
    if (!reader.has(scales)) {
      throw new HfWeightsError(`${reader.location ?? 'checkpoint'}: tensor "${scales}" not found (the MXFP4 scales of "${blocks}", needed for ${irName})`);
    }
    requireShape(scales, shapes.scales, `MXFP4 scales [E, rows, inputs/32] of "${blocks}", for ${irName}`);
    if (!reader.readU8) fail(blocks, 'is MXFP4-quantized, and this TensorReader has no readU8 to read its bytes');
    return true;
  };

  /** Rows `range` of tensor `name` of `shape` (whole when `rows` is undefined), through reader.read. */
  const readRows = async <T extends Float32Array | Uint8Array>(read: (name: string, rows?: RowRange) => T | Promise<T>,
    name: string, shape: readonly number[], range: RowRange, rows: RowRange | undefined): Promise<T> => {
    const rowElements = shape.slice(1).reduce((n, d) => n * d, 1);
    const data = await read(name, rows && range);
    const got = rowsOf(data, rowElements, shape[0] ?? 1, range);
    if (!got) fail(name, `was read as ${data.length} values for rows [${range.begin}, ${range.end}), expected ${(range.end - range.begin) * rowElements}`);
    return got!;
  };
  /**
   * The block size of `name` when it is stored as FP8, after checking it is F8_E4M3 and 2-D with a
   * `_scale_inv` of the matching shape; undefined for a tensor that is not FP8.
   */
  const fp8BlockOf = (name: string, shape: readonly number[]): readonly [number, number] | undefined => {
    const scale = fp8ScaleName(name);
    const scaled = reader.has(scale);
    const dtype = reader.dtype?.(name);
    if (!scaled && dtype !== 'F8_E4M3' && dtype !== 'F8_E5M2') return undefined;
    if (dtype === 'F8_E5M2') fail(name, `is F8_E5M2; moec reads FP8 weights as F8_E4M3 (E4M3FN) codes with "${scale}" block scales only`);
    if (dtype !== undefined && dtype !== 'F8_E4M3') fail(scale, `holds FP8 block scales, but "${name}" is ${dtype}, not F8_E4M3`);
    if (!scaled) fail(name, `is F8_E4M3 without its block scales: tensor "${scale}" not found`);
    if (!reader.dtype || !reader.readBytes) fail(name, `has FP8 block scales "${scale}", and this TensorReader has no dtype and readBytes to read its codes`);
    if (shape.length !== 2) fail(name, `is FP8 with block scales "${scale}", which moec reads for 2-D weights only, not shape ${formatShape(shape)}`);
    const block = configBlock ?? DEFAULT_FP8_BLOCK;
    const [rows, cols] = shape as [number, number];
    requireShape(scale, fp8ScaleShape(rows, cols, block), `block scales of "${name}" ${formatShape(shape)} in ${block[0]} x ${block[1]} blocks, ` +
      (configBlock ? 'config.json\'s weight_block_size' : 'the default: config.json has no fp8 quantization_config'));
    return block;
  };

  /** Rows `range` of FP8 weight `name` [rows, cols], decoded: only those rows' codes and their blocks' scale rows are read. */
  const readFp8Rows = async (name: string, [storedRows, cols]: readonly number[], block: readonly [number, number], range: RowRange,
    rows: RowRange | undefined): Promise<Float32Array> => {
    const scale = fp8ScaleName(name);
    const scaleRange = fp8ScaleRows(range, block[0]);
    const codes = await readRows((n, r) => reader.readBytes!(n, r), name, [storedRows!, cols!], range, rows);
    const scales = await readRows((n, r) => reader.readF32(n, r), scale, fp8ScaleShape(storedRows!, cols!, block), scaleRange, rows && scaleRange);
    try {
      return dequantizeFp8(codes, scales, { rows: range.end - range.begin, cols: cols!, firstRow: range.begin, block });
    } catch (e) {
      if (!(e instanceof Fp8ValueError)) throw e;
      return fail(e.inScales ? scale : name, e.message);
    }
  };

  /** Rows `range` of tensor `name` as f32: read as f32 (from F32, BF16, F16), or decoded from FP8; never NaN or infinite. */
  const readF32Rows = async (name: string, shape: readonly number[], range: RowRange, rows: RowRange | undefined): Promise<Float32Array> => {
    const fp8Block = fp8BlockOf(name, shape);
    const data = fp8Block ? await readFp8Rows(name, shape, fp8Block, range, rows) : await readRows((n, r) => reader.readF32(n, r), name, shape, range, rows);
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      const rowElements = shape.slice(1).reduce((n, d) => n * d, 1);
      fail(name, `holds ${data[bad]} at ${formatShape(elementIndex(shape, range.begin * rowElements + bad))}; moec loads only finite weights`);
    }
    return data;
  };

  /** Rows `range` of experts of an MXFP4 pair, decoded; stored row r * step + offset -> output row r. */
  const readMxfp4 = async (name: string, irName: string, shapes: { experts: number; rows: number; cols: number }, range: RowRange,
    rows: RowRange | undefined, rowStep = 1, rowOffset = 0): Promise<Float32Array> => {
    const { experts, rows: storedRows, cols } = shapes;
    const tensorShapes = mxfp4TensorShapes(experts, storedRows, cols);
    const readU8 = (n: string, r?: RowRange) => reader.readU8!(n, r);
    const blocks = await readRows(readU8, `${name}_blocks`, tensorShapes.blocks, range, rows);
    const scales = await readRows(readU8, `${name}_scales`, tensorShapes.scales, range, rows);
    try {
      return decodeMxfp4(blocks, scales, { experts: range.end - range.begin, firstExpert: range.begin, storedRows, cols, rowStep, rowOffset });
    } catch (e) {
      return fail(`${name}_scales`, `${(e as Error).message} (for ${irName})`);
    }
  };

  return {
    modelType,
    checkBlock(irNames) {
      for (const [layer, suffixes] of suffixesByLayer(irNames)) {
        const recipes = recipesOf(modelType, layer);
        const lacking = [...suffixes].filter((k) => !recipes[k]).map((k) => `layers.${layer}.moe.${k}`);
        if (lacking.length) {
          const types = modelTypesMatching(irNames);
          throw new HfWeightsError(`${reader.location ?? 'checkpoint'}: a ${modelType} checkpoint has no tensors for ${lacking.join(', ')}; ` +
            `the spec does not describe this checkpoint (checkpoints that match it: ${types.join(', ') || 'none supported'})`);
        }
        for (const [suffix, recipe] of Object.entries(recipes)) {
          const present = suffixes.has(suffix) ? undefined : tensorsOf(recipe).find((t) => reader.has(t));
          if (present) {
            throw new HfWeightsError(`${where(present)}: tensor "${present}" is part of layer ${layer}'s MoE block, but the spec has ` +
              `no weight for it (layers.${layer}.moe.${suffix}); the spec does not describe this checkpoint`);
          }
        }
      }
    },
    async readF32(irName: string, shape: number[], rows?: RowRange): Promise<Float32Array> {
      const { layer, suffix } = parseIrName(irName);
      const recipe = recipesOf(modelType, layer)[suffix];
      if (!recipe) {
        throw new HfWeightsError(`${reader.location ?? 'checkpoint'}: a ${modelType} checkpoint has no tensor for ${irName}; ` +
          `the spec does not match this checkpoint's model_type`);
      }
      const range = rows ?? { begin: 0, end: shape[0] ?? 1 };
      try {
        checkRowRange(range, shape[0] ?? 1, `${irName} ${formatShape(shape)}`);
      } catch (e) {
        throw new HfWeightsError((e as Error).message);
      }
      const count = range.end - range.begin;
      switch (recipe.kind) {
        case 'tensor':
          requireTensor(recipe.name, shape, irName);
          return readF32Rows(recipe.name, shape, range, rows);
        case 'stack': {
          const [experts, ...inner] = shape;
          for (let e = 0; e < experts!; e++) requireTensor(recipe.name(e), inner, irName);
          const size = inner.reduce((n, d) => n * d, 1);
          const whole = { begin: 0, end: inner[0] ?? 1 };
          const expert = (e: number) => readF32Rows(recipe.name(e), inner, whole, undefined);
          if (count === 1) return expert(range.begin); // a large model's shard piece: the expert's tensor as read, no copy
          const out = new Float32Array(count * size);
          for (let e = range.begin; e < range.end; e++) out.set(await expert(e), (e - range.begin) * size);
          return out;
        }
        case 'deinterleave-transpose': {
          const [experts, inter, hidden] = shape as [number, number, number];
          if (fusedIsMxfp4(recipe.name, irName, [experts, hidden, 2 * inter], experts, 2 * inter, hidden)) {
            return readMxfp4(recipe.name, irName, { experts, rows: 2 * inter, cols: hidden }, range, rows, 2, recipe.half);
          }
          const source = await readF32Rows(recipe.name, [experts, hidden, 2 * inter], range, rows);
          return deinterleaveTranspose(source, count, hidden, inter, recipe.half);
        }
        case 'deinterleave': {
          const [experts, inter] = shape as [number, number];
          requireTensor(recipe.name, [experts, 2 * inter], irName);
          const source = await readF32Rows(recipe.name, [experts, 2 * inter], range, rows);
          const out = new Float32Array(count * inter);
          for (let i = 0; i < out.length; i++) out[i] = source[2 * i + recipe.half]!;
          return out;
        }
        case 'transpose': {
          const [experts, hidden, inter] = shape as [number, number, number];
          if (fusedIsMxfp4(recipe.name, irName, [experts, inter, hidden], experts, hidden, inter)) {
            return readMxfp4(recipe.name, irName, { experts, rows: hidden, cols: inter }, range, rows);
          }
          return transposeInner(await readF32Rows(recipe.name, [experts, inter, hidden], range, rows), count, inter, hidden);
        }
      }
    },
  };
}

/** The index of the first NaN or infinite value, or -1 (a plain loop: weights run to gigabytes). */
function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) return i;
  }
  return -1;
}

/** The index in `shape` of flat (row-major) element `flat`. */
function elementIndex(shape: readonly number[], flat: number): number[] {
  const index = shape.map(() => 0);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return index;
}

/** [E, H, 2I] with gate/up interleaved on the last dim -> one half as [E, I, H]. */
function deinterleaveTranspose(source: Float32Array, experts: number, hidden: number, inter: number, half: 0 | 1): Float32Array {
  const out = new Float32Array(experts * inter * hidden);
  for (let e = 0; e < experts; e++) {
    const src = e * hidden * 2 * inter;
    const dst = e * inter * hidden;
    for (let h = 0; h < hidden; h++) {
      for (let i = 0; i < inter; i++) out[dst + i * hidden + h] = source[src + h * 2 * inter + 2 * i + half]!;
    }
  }
  return out;
}

/** [E, R, C] -> [E, C, R]. */
function transposeInner(source: Float32Array, experts: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(experts * rows * cols);
  for (let e = 0; e < experts; e++) {
    const base = e * rows * cols;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[base + c * rows + r] = source[base + r * cols + c]!;
    }
  }
  return out;
}
