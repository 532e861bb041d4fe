// `embed`: row ids[t] of the [vocab, hidden] table for each token, the table in any weight
// format (decoded by weights/weight-loads.ts as the matrix kernels do). Grid (ceil(hidden / 256),
// min(T, 65535)); Params { tokens, 0, 0, 0 }.
import { F32, type WeightFormat } from '../../../runtime/quant/weight-format.js';
import { activationArray, declareBindings, i32Array, type ActivationDtype } from '../kernel.js';
import { renderTemplate } from '../template.js';
import { builtinWeightLoads, formatTag, renderWeightLoads, weightArrayType, type WeightLoads } from '../weights/weight-loads.js';
import { checkPositive, constantExpr, decoderKernel, MAX_GRID_ROWS, tokenRowsExpr, TOKENS_WORDS, type DecoderKernel } from '../elementwise/decoder-kernel.js';

export interface EmbedShape {
  vocab: number;
  hidden: number;
  /** Storage of the table (one [vocab, hidden] matrix). Default f32. */
  format?: WeightFormat;
  /** Storage of y. */
  act: ActivationDtype;
}

const THREADS = 256;

/**
 * Bindings: ids [T] i32, table (the packed matrix: array<f32> for f32, else array<u32>), y [T, hidden]
 * (act). An id outside 0 .. vocab - 1 gives a row of zeros and reads nothing (the runtime rejects
 * such ids before upload; this only keeps a bad id from reading out of bounds).
 * `loads`: each weight format's decode (default the builtin ones; the registry's kernels.weightLoads).
 */
export function renderEmbedKernel(shape: EmbedShape, loads: WeightLoads = builtinWeightLoads): DecoderKernel {
  const { vocab, hidden, act } = shape;
  checkPositive('embed', { vocab, hidden });
  const format = shape.format ?? F32;
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'ids', access: 'read', type: i32Array },
    { name: 'table', access: 'read', type: weightArrayType(format, false) },
    { name: 'y', access: 'read_write', type: activationArray(act) },
  ], act);
  const wgsl = renderTemplate('embed/embed.wgsl.hbs', {
    header,
    vocab,
    hidden,
    threads: THREADS,
    gridRows: MAX_GRID_ROWS,
    weightLoads: renderWeightLoads({ name: 'table', format, rows: vocab, cols: hidden }, false, loads),
  });
  const name = `embed_${vocab}x${hidden}${formatTag(format)}${act === 'f16' ? '_f16act' : ''}`;
  return decoderKernel({ name, wgsl, entryPoint: 'main', workgroupSize: [THREADS, 1, 1], bindings, uniformBinding }, TOKENS_WORDS, constantExpr(Math.ceil(hidden / THREADS)), tokenRowsExpr);
}
