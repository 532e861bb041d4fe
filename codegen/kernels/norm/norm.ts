// `norm`: RMSNorm or LayerNorm (optional bias) of each [width] row, one workgroup per row with
// the sums reduced in workgroup memory; `add_norm` first writes the row's residual sum a + b and
// normalises that. Grid (min(T, 65535), 1, 1); Params { tokens, 0, 0, 0 }.
import type { KindRef } from '../../../ir/model-config.js';
import { activationArray, declareBindings, f32Array, type ActivationDtype, type StorageDecl } from '../kernel.js';
import { f32Literal, renderTemplate } from '../template.js';
import { checkPositive, decoderKernel, MAX_GRID_ROWS, reductionThreads, tokenRowsExpr, TOKENS_WORDS, type DecoderKernel } from '../elementwise/decoder-kernel.js';

export type NormKind = 'rmsnorm' | 'layernorm';

export interface NormShape {
  width: number;
  norm: NormKind;
  eps: number;
  /** LayerNorm only: a `bias` [width] f32 binding added after the scale. */
  bias: boolean;
  /** Storage of x and y. */
  act: ActivationDtype;
  /** add_norm: the row is a + b (two bindings), written to `sum` before it is normalised. */
  add?: boolean;
}

/** The shape of a `norm` op from its `norm` kind attr (rmsnorm(eps) or layernorm(eps, bias)). */
export function normShapeOf(norm: KindRef, width: number, act: ActivationDtype): NormShape {
  if (norm.kind !== 'rmsnorm' && norm.kind !== 'layernorm') throw new Error(`the WebGPU backend has no kernel for norm ${norm.kind} (known: rmsnorm, layernorm)`);
  const eps = norm.params['eps'];
  if (typeof eps !== 'number') throw new Error(`norm ${norm.kind}: eps must be a number`);
  return { width, norm: norm.kind, eps, bias: norm.kind === 'layernorm' && norm.params['bias'] === true, act };
}

/**
 * Bindings: x [T, width] (act), or with `add` a and b [T, width] (act); weight [width] f32; bias
 * [width] f32 (layernorm with bias); with `add` sum [T, width] (act); y [T, width] (act).
 */
export function renderNormKernel(shape: NormShape): DecoderKernel {
  checkPositive('norm', { width: shape.width });
  if (shape.bias && shape.norm !== 'layernorm') throw new Error('norm: only layernorm has a bias');
  const { act } = shape;
  const storage: StorageDecl[] = [
    ...(shape.add
      ? [{ name: 'a', access: 'read', type: activationArray(act) }, { name: 'b', access: 'read', type: activationArray(act) }] as const
      : [{ name: 'x', access: 'read', type: activationArray(act) }] as const),
    { name: 'weight', access: 'read', type: f32Array },
    ...(shape.bias ? [{ name: 'bias', access: 'read', type: f32Array } as const] : []),
    ...(shape.add ? [{ name: 'sum', access: 'read_write', type: activationArray(act) } as const] : []),
    { name: 'y', access: 'read_write', type: activationArray(act) },
  ];
  const { header, bindings, uniformBinding } = declareBindings(storage, act);
  const threads = reductionThreads(shape.width);
  const wgsl = renderTemplate('norm/norm.wgsl.hbs', {
    header,
    width: shape.width,
    eps: f32Literal(shape.eps),
    layernorm: shape.norm === 'layernorm',
    bias: shape.bias,
    add: !!shape.add,
    threads,
    workgroupSum: renderTemplate('norm/workgroup-sum.wgsl.hbs', {}),
    gridRows: MAX_GRID_ROWS,
  });
  const name = `${shape.add ? 'add_' : ''}${shape.norm}_${shape.width}${shape.bias ? '_bias' : ''}${act === 'f16' ? '_f16act' : ''}`;
  return decoderKernel({ name, wgsl, entryPoint: 'main', workgroupSize: [threads, 1, 1], bindings, uniformBinding }, TOKENS_WORDS, tokenRowsExpr);
}
