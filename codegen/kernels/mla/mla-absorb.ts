// MLA's weight absorption around attention over the latent cache: `mla.absorb_q` turns each
// head's q_nope into a query against the latent rows through kv_b's key half, `mla.unabsorb`
// takes each head's attended latent through kv_b's value half. kv_b [heads (nope + v), kvRank]
// is one matrix in any weight format, decoded by weights/weight-loads.ts. Both tile TOKEN_TILE
// tokens per workgroup so each weight is decoded once per tile. Params { tokens, 0, 0, 0 }.
// CPU references: runAbsorbQ and runUnabsorb (ir/interpret/attention-lowered.ts).
import { F32, type WeightFormat } from '../../../runtime/quant/weight-format.js';
import { tokenExpr } from '../../../runtime/plan.js';
import { activationArray, declareBindings, type ActivationDtype } from '../kernel.js';
import { renderTemplate } from '../template.js';
import { builtinWeightLoads, formatTag, renderWeightLoads, weightArrayType, type WeightLoads } from '../weights/weight-loads.js';
import { checkPositive, constantExpr, decoderKernel, TOKENS_WORDS, type DecoderKernel } from '../elementwise/decoder-kernel.js';

export interface MlaAbsorbShape {
  heads: number;
  nope: number;
  rope: number;
  kvRank: number;
  valueDim: number;
  /** Storage of kv_b. Default f32. */
  format?: WeightFormat;
  /** Storage of the activations read and written. */
  act: ActivationDtype;
}

/** Tokens per workgroup: each kv_b element decoded once serves this many tokens. */
export const MLA_TOKEN_TILE = 8;
/** absorb_q: latent columns per workgroup (one per thread), and q_nope dims staged at a time. */
const ABSORB_THREADS = 64;
const ABSORB_CHUNK = 32;
/** unabsorb: value rows per workgroup, LANES threads sharing each row's dot product over kvRank (as the GEMV). */
const UNABSORB_ROWS = 32;
const UNABSORB_LANES = 4;

const tokenTiles = tokenExpr(1, 0, MLA_TOKEN_TILE);

function check(what: string, shape: MlaAbsorbShape): WeightFormat {
  const { heads, nope, rope, kvRank, valueDim } = shape;
  checkPositive(what, { heads, nope, kvRank, valueDim });
  if (!Number.isInteger(rope) || rope < 0) throw new Error(`${what}: rope ${rope} must be a non-negative integer`);
  return shape.format ?? F32;
}

const tagOf = (shape: MlaAbsorbShape, format: WeightFormat) =>
  `h${shape.heads}_n${shape.nope}r${shape.rope}v${shape.valueDim}_rank${shape.kvRank}${formatTag(format)}${shape.act === 'f16' ? '_f16act' : ''}`;

function kvBLoads(shape: MlaAbsorbShape, format: WeightFormat, loads: WeightLoads): string {
  return renderWeightLoads({ name: 'kv_b', format, rows: shape.heads * (shape.nope + shape.valueDim), cols: shape.kvRank }, false, loads);
}

/**
 * Bindings: q [T, heads (nope + rope)] (act), kv_b (the packed matrix), q_absorbed [T, heads (kvRank + rope)] (act).
 * Grid (ceil(kvRank / 64), heads, ceil(T / 8)).
 */
export function renderMlaAbsorbKernel(shape: MlaAbsorbShape, loads: WeightLoads = builtinWeightLoads): DecoderKernel {
  const format = check('mla.absorb_q', shape);
  const { act } = shape;
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'q', access: 'read', type: activationArray(act) },
    { name: 'kv_b', access: 'read', type: weightArrayType(format, false) },
    { name: 'q_absorbed', access: 'read_write', type: activationArray(act) },
  ], act);
  const wgsl = renderTemplate('mla/absorb-q.wgsl.hbs', {
    header, heads: shape.heads, nope: shape.nope, rope: shape.rope, kvRank: shape.kvRank, valueDim: shape.valueDim,
    threads: ABSORB_THREADS, chunk: ABSORB_CHUNK, tokenTile: MLA_TOKEN_TILE, weightLoads: kvBLoads(shape, format, loads),
  });
  const kernel = { name: `mla_absorb_q_${tagOf(shape, format)}`, wgsl, entryPoint: 'main', workgroupSize: [ABSORB_THREADS, 1, 1] as [number, number, number], bindings, uniformBinding };
  return decoderKernel(kernel, TOKENS_WORDS, constantExpr(Math.ceil(shape.kvRank / ABSORB_THREADS)), constantExpr(shape.heads), tokenTiles);
}

/**
 * Bindings: attended [T, heads kvRank] (act), kv_b (the packed matrix), y [T, heads valueDim] (act).
 * Grid (ceil(valueDim / 32), heads, ceil(T / 8)).
 */
export function renderMlaUnabsorbKernel(shape: MlaAbsorbShape, loads: WeightLoads = builtinWeightLoads): DecoderKernel {
  const format = check('mla.unabsorb', shape);
  const { act } = shape;
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'attended', access: 'read', type: activationArray(act) },
    { name: 'kv_b', access: 'read', type: weightArrayType(format, false) },
    { name: 'y', access: 'read_write', type: activationArray(act) },
  ], act);
  const wgsl = renderTemplate('mla/unabsorb.wgsl.hbs', {
    header, heads: shape.heads, nope: shape.nope, kvRank: shape.kvRank, valueDim: shape.valueDim,
    rows: UNABSORB_ROWS, lanes: UNABSORB_LANES, tokenTile: MLA_TOKEN_TILE, weightLoads: kvBLoads(shape, format, loads),
  });
  const kernel = { name: `mla_unabsorb_${tagOf(shape, format)}`, wgsl, entryPoint: 'main', workgroupSize: [UNABSORB_ROWS * UNABSORB_LANES, 1, 1] as [number, number, number], bindings, uniformBinding };
  return decoderKernel(kernel, TOKENS_WORDS, constantExpr(Math.ceil(shape.valueDim / UNABSORB_ROWS)), constantExpr(shape.heads), tokenTiles);
}
