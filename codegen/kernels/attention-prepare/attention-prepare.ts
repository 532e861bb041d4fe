// `attention.prepare` (GQA): q/k RMSNorm (per head or over the whole projection), clamp, rotary
// embedding from the rope table, k and v written into the caches at rows past .. past + T - 1
// (in place), the rotated q to q_roped (or over q). Grid (heads + kvHeads, min(T, 65535)), or
// (2, min(T, 65535)) with projection norms; Params { tokens, past, 0, 0 }. The CPU reference is
// runPrepare (ir/interpret/attention-lowered.ts).
import { activationArray, f32Array, type ActivationDtype, type StorageDecl } from '../kernel.js';
import { f32Literal, renderTemplate } from '../template.js';
import { checkPositive, constantExpr, decoderKernel, MAX_GRID_ROWS, reductionThreads, tokenRowsExpr, TOKENS_PAST_WORDS, type DecoderKernel } from '../elementwise/decoder-kernel.js';
import { activationInput, checkRope, checkWorkgroupMemory, preparedCacheArray, preparePreamble, type KvCacheDtype } from './prepare-common.js';

export type QkNorm = 'none' | 'head' | 'projection';

export interface AttentionPrepareShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Rows of each cache and of each rope-table variant. */
  context: number;
  /** RMSNorm of q and k: none, each head (weights [headDim]), or each whole projection (weights [heads headDim], [kvHeads headDim]). */
  qkNorm: QkNorm;
  eps: number;
  /** Clamp q, k and v (after the norms) to [-clip, clip]; 0: no clamp. */
  clip: number;
  /** The rope table has a second variant, read once past + T > ropeSwitch; 0: one variant. */
  ropeSwitch: number;
  cacheDtype: KvCacheDtype;
  /** Storage of q, k, v and q_roped. */
  act: ActivationDtype;
  /**
   * Write the rotated queries over q (bound read_write) instead of a q_roped binding: with q/k
   * norms that keeps the kernel at 8 storage buffers, WebGPU's default per stage (9 otherwise).
   */
  qInPlace?: boolean;
}

/**
 * Bindings: q [T, heads headDim] (act; read_write with qInPlace), k and v [T, kvHeads headDim]
 * (act), cache_k and cache_v ([context, kvHeads headDim]: array<f32>, or f16 pairs as
 * array<atomic<u32>>; read_write), rope_table [variants, context, headDim] f32, q_norm and k_norm
 * f32 (unless qkNorm is none), q_roped [T, heads headDim] (act; absent with qInPlace).
 */
export function renderAttentionPrepareKernel(shape: AttentionPrepareShape): DecoderKernel {
  const { heads, kvHeads, headDim, context, qkNorm, act } = shape;
  const qInPlace = shape.qInPlace === true;
  checkPositive('attention.prepare', { heads, kvHeads, headDim, context });
  checkRope('attention.prepare', headDim, shape.ropeSwitch);
  if (!(shape.clip >= 0)) throw new Error(`attention.prepare: clip ${shape.clip} must be 0 (none) or positive`);
  const threads = reductionThreads(headDim, 32, 128);
  checkWorkgroupMemory('attention.prepare', headDim + threads);
  const storage: StorageDecl[] = [
    qInPlace ? { name: 'q', access: 'read_write', type: activationArray(act) } : activationInput('q', act),
    activationInput('k', act),
    activationInput('v', act),
    { name: 'cache_k', access: 'read_write', type: preparedCacheArray(shape.cacheDtype) },
    { name: 'cache_v', access: 'read_write', type: preparedCacheArray(shape.cacheDtype) },
    { name: 'rope_table', access: 'read', type: f32Array },
    ...(qkNorm === 'none' ? [] : (['q_norm', 'k_norm'] as const).map((name): StorageDecl => ({ name, access: 'read', type: f32Array }))),
    ...(qInPlace ? [] : [{ name: 'q_roped', access: 'read_write', type: activationArray(act) } as const]),
  ];
  const { preamble, bindings, uniformBinding } = preparePreamble(storage, act, ['cache_k', 'cache_v'].map((name) => ({ name, dtype: shape.cacheDtype })));
  const wgsl = renderTemplate('attention-prepare/attention-prepare.wgsl.hbs', {
    preamble,
    heads,
    kvHeads,
    headDim,
    context,
    ropeSwitch: shape.ropeSwitch,
    threads,
    gridRows: MAX_GRID_ROWS,
    qkNorm: qkNorm === 'none' ? '' : qkNorm,
    projection: qkNorm === 'projection',
    eps: f32Literal(shape.eps),
    clip: shape.clip > 0 ? f32Literal(shape.clip) : '',
    f16Cache: shape.cacheDtype === 'f16',
    qInPlace,
    qOut: qInPlace ? 'q' : 'q_roped',
  });
  const tag = `h${heads}kv${kvHeads}_d${headDim}${qkNorm === 'none' ? '' : `_${qkNorm}norm`}${shape.clip > 0 ? '_clip' : ''}${shape.ropeSwitch > 0 ? '_2rope' : ''}${shape.cacheDtype === 'f16' ? '_f16kv' : ''}${act === 'f16' ? '_f16act' : ''}${qInPlace ? '_qinplace' : ''}`;
  // Units of heads that share a norm: each head, or (projection) all query heads and all kv heads.
  const units = qkNorm === 'projection' ? 2 : heads + kvHeads;
  return decoderKernel({ name: `attention_prepare_${tag}`, wgsl, entryPoint: 'main', workgroupSize: [threads, 1, 1], bindings, uniformBinding }, TOKENS_PAST_WORDS, constantExpr(units), tokenRowsExpr);
}
