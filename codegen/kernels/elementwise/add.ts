// `add`: y = a + b of two [T, width] activations (residual connections). Grid (ceil(width / 256),
// min(T, 65535)); Params { tokens, 0, 0, 0 }.
import { activationArray, declareBindings, type ActivationDtype } from '../kernel.js';
import { renderTemplate } from '../template.js';
import { checkPositive, constantExpr, decoderKernel, MAX_GRID_ROWS, tokenRowsExpr, TOKENS_WORDS, type DecoderKernel } from './decoder-kernel.js';

export interface AddShape {
  width: number;
  /** Storage of a, b and y. */
  act: ActivationDtype;
}

const THREADS = 256;

/** Bindings: a, b (read), y (read_write), all [T, width] in `act`. */
export function renderAddKernel(shape: AddShape): DecoderKernel {
  checkPositive('add', { width: shape.width });
  const { act } = shape;
  const { header, bindings, uniformBinding } = declareBindings([
    { name: 'a', access: 'read', type: activationArray(act) },
    { name: 'b', access: 'read', type: activationArray(act) },
    { name: 'y', access: 'read_write', type: activationArray(act) },
  ], act);
  const wgsl = renderTemplate('elementwise/add.wgsl.hbs', { header, width: shape.width, threads: THREADS, gridRows: MAX_GRID_ROWS });
  const kernel = { name: `add_${shape.width}${act === 'f16' ? '_f16act' : ''}`, wgsl, entryPoint: 'main', workgroupSize: [THREADS, 1, 1] as [number, number, number], bindings, uniformBinding };
  return decoderKernel(kernel, TOKENS_WORDS, constantExpr(Math.ceil(shape.width / THREADS)), tokenRowsExpr);
}
