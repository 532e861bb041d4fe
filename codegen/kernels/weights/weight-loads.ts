// How a kernel reads a weight binding in any storage format (runtime/quant/weight-format.ts):
// `fn <name>_at(m, i) -> f32` (element i of matrix m, i = row * cols + col) and, on the vec4
// paths, `fn <name>_at4(m, i) -> vec4<f32>` (elements i .. i + 3, i % 4 == 0), decoded on load.
// One template per format: the builtin ones are load-<format>.wgsl.hbs here, a plugin's comes with
// it (registry kernels.weightLoads); the kernels call only these two functions.
import { builtinFormats } from '../../../runtime/quant/builtin-formats.js';
import { formatEntry, groupOf, matrixLayout, type FormatLayout, type WeightFormat } from '../../../runtime/quant/weight-format.js';
import { f32Array, u32Array, vec4Array } from '../kernel.js';
import { renderTemplate } from '../template.js';

export interface WeightBinding {
  /** The WGSL variable, e.g. `w0`. */
  name: string;
  format: WeightFormat;
  /** One matrix: rows (output features) x cols (the reduced dim). */
  rows: number;
  cols: number;
}

/** What a load template is rendered with (see load-int4.wgsl.hbs). */
export interface WeightLoadContext {
  name: string;
  vec4: boolean;
  matrixElements: number;
  matrixWords: number;
  valueWords: number;
  /** Elements per scale; 0 for a format without scales. */
  group: number;
  /** Four consecutive elements share a scale (the group is a multiple of 4). */
  sharedScale: boolean;
}

/** One format's decode: its word layout and the WGSL defining `<name>_at` (and `<name>_at4`). */
export interface WeightLoad {
  layout: FormatLayout;
  render(context: WeightLoadContext): string;
}

export type WeightLoads = Readonly<Record<string, WeightLoad>>;

export const builtinWeightLoads: WeightLoads = Object.fromEntries(Object.values(builtinFormats).map((definition) => [definition.name, {
  layout: definition,
  render: (context: WeightLoadContext) => renderTemplate(`weights/load-${definition.name}.wgsl.hbs`, context),
}]));

/** The WGSL type of the binding: f32 arrays as before, every packed format as u32 words. */
export function weightArrayType(format: WeightFormat, vec4: boolean): string {
  if (format.format !== 'f32') return u32Array;
  return vec4 ? vec4Array : f32Array;
}

/** `loads`: each format's decode (default the builtin ones; a plugin's registry adds its own). */
export function renderWeightLoads(binding: WeightBinding, vec4: boolean, loads: WeightLoads = builtinWeightLoads): string {
  const load = formatEntry(loads, binding.format.format);
  const layout = matrixLayout(binding.format, binding.rows, binding.cols, { [binding.format.format]: load.layout });
  const group = groupOf(binding.format);
  return load.render({
    name: binding.name,
    vec4,
    matrixElements: binding.rows * binding.cols,
    matrixWords: layout.matrixWords,
    valueWords: layout.valueWords,
    group: group ?? 0,
    // Four consecutive elements share a scale when the group is a multiple of 4.
    sharedScale: group !== undefined && group % 4 === 0,
  });
}

/** A short tag for kernel names: '' for f32, e.g. `_int4g32`, `_bf16`. */
export function formatTag(format: WeightFormat): string {
  if (format.format === 'f32') return '';
  const group = groupOf(format);
  return `_${format.format}${group === undefined ? '' : `g${group}`}`;
}
