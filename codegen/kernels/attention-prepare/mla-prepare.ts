// `mla.prepare`: RMSNorm of each kv row's latent (kv_a_norm), rotary embedding of its shared key
// part and of each query head's last `rope` dims, the cache row [normed latent, roped key] written
// at row past + t (in place), the query to q_roped. Grid (1 + heads, min(T, 65535)); Params
// { tokens, past, 0, 0 }. The CPU reference is runMlaPrepare (ir/interpret/attention-lowered.ts).
import { activationArray, f32Array, type ActivationDtype } from '../kernel.js';
import { f32Literal, renderTemplate } from '../template.js';
import { checkPositive, constantExpr, decoderKernel, MAX_GRID_ROWS, reductionThreads, tokenRowsExpr, TOKENS_PAST_WORDS, type DecoderKernel } from '../elementwise/decoder-kernel.js';
import { activationInput, checkRope, checkWorkgroupMemory, preparedCacheArray, preparePreamble, type KvCacheDtype } from './prepare-common.js';

export interface MlaPrepareShape {
  heads: number;
  /** Query dims per head without rotary embedding, then `rope` with it. */
  nope: number;
  rope: number;
  kvRank: number;
  /** Rows of the cache and of each rope-table variant. */
  context: number;
  /** kv_a_norm's epsilon. */
  eps: number;
  /** The rope table has a second variant, read once past + T > ropeSwitch; 0: one variant. */
  ropeSwitch: number;
  /** Rotary pairs (2i, 2i + 1) (DeepSeek's rope_interleave) instead of halves (i, i + rope / 2). */
  interleaved: boolean;
  cacheDtype: KvCacheDtype;
  /** Storage of q, kv and q_roped. */
  act: ActivationDtype;
  /** Rotate the queries' rope dims over q (bound read_write) instead of writing a q_roped binding. */
  qInPlace?: boolean;
}

/**
 * Bindings: q [T, heads (nope + rope)] (act; read_write with qInPlace) and kv [T, kvRank + rope] (act),
 * cache_k [context, kvRank + rope] (array<f32>, or f16 pairs as array<atomic<u32>>; read_write),
 * rope_table [variants, context, rope] f32, kv_a_norm [kvRank] f32, q_roped [T, heads (nope + rope)]
 * (act; absent with qInPlace).
 */
export function renderMlaPrepareKernel(shape: MlaPrepareShape): DecoderKernel {
  const { heads, nope, rope, kvRank, context, act } = shape;
  const qInPlace = shape.qInPlace === true;
  checkPositive('mla.prepare', { heads, rope, kvRank, context });
  if (!Number.isInteger(nope) || nope < 0) throw new Error(`mla.prepare: nope ${nope} must be a non-negative integer`);
  checkRope('mla.prepare', rope, shape.ropeSwitch);
  const threads = reductionThreads(kvRank, 32, 128);
  checkWorkgroupMemory('mla.prepare', kvRank + rope + threads);
  const { preamble, bindings, uniformBinding } = preparePreamble([
    qInPlace ? { name: 'q', access: 'read_write', type: activationArray(act) } : activationInput('q', act),
    activationInput('kv', act),
    { name: 'cache_k', access: 'read_write', type: preparedCacheArray(shape.cacheDtype) },
    { name: 'rope_table', access: 'read', type: f32Array },
    { name: 'kv_a_norm', access: 'read', type: f32Array },
    ...(qInPlace ? [] : [{ name: 'q_roped', access: 'read_write', type: activationArray(act) } as const]),
  ], act, [{ name: 'cache_k', dtype: shape.cacheDtype }]);
  const wgsl = renderTemplate('attention-prepare/mla-prepare.wgsl.hbs', {
    preamble,
    heads,
    nope,
    rope,
    kvRank,
    context,
    ropeSwitch: shape.ropeSwitch,
    threads,
    gridRows: MAX_GRID_ROWS,
    eps: f32Literal(shape.eps),
    interleaved: shape.interleaved,
    f16Cache: shape.cacheDtype === 'f16',
    qInPlace,
    qOut: qInPlace ? 'q' : 'q_roped',
  });
  const tag = `h${heads}_n${nope}r${rope}_rank${kvRank}${shape.interleaved ? '_interleaved' : ''}${shape.ropeSwitch > 0 ? '_2rope' : ''}${shape.cacheDtype === 'f16' ? '_f16kv' : ''}${act === 'f16' ? '_f16act' : ''}${qInPlace ? '_qinplace' : ''}`;
  return decoderKernel({ name: `mla_prepare_${tag}`, wgsl, entryPoint: 'main', workgroupSize: [threads, 1, 1], bindings, uniformBinding }, TOKENS_PAST_WORDS, constantExpr(1 + heads), tokenRowsExpr);
}
