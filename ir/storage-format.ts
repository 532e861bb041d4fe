// IR param dtype (set by passes/quantize-weights.ts) -> the runtime's storage format of the
// weight (runtime/quant/weight-format.ts), which sizes expert shards and picks the kernels' loads.
import { quantTargetOfRole, type Value } from './graph.js';
import { dtypeName, type DType } from './types.js';
import { checkFormatFits, type WeightFormat } from '../runtime/quant/weight-format.js';

/** The `quantize <target>` a param's format comes from, for messages. */
export function quantTargetOf(param: Value): string {
  return quantTargetOfRole(param.role) ?? param.role ?? 'weights';
}

function formatOfDtype(dtype: DType): WeightFormat | undefined {
  if (dtype === 'f32' || dtype === 'f16' || dtype === 'bf16') return { format: dtype };
  if (typeof dtype === 'string') return undefined;
  const { format, group } = dtype;
  if (format === 'int8' || format === 'int4' || format === 'mxfp4') return { format, group };
  return undefined;
}

/** The storage format of an IR weight; throws for a dtype no kernel can read or a group that does not divide the reduced dim. */
export function weightFormatOf(param: Value): WeightFormat {
  const format = formatOfDtype(param.type.dtype);
  if (!format) {
    throw new Error(`${param.name} is stored as ${dtypeName(param.type.dtype)}, which the WebGPU kernels cannot read; ` +
      `use f32, f16, bf16, int8, int4 or mxfp4 in \`quantize ${quantTargetOf(param)} = ...\``);
  }
  const shape = param.type.shape;
  const cols = shape[shape.length - 1];
  if (typeof cols === 'number') checkFormatFits(format, cols, `${param.name} (\`quantize ${quantTargetOf(param)} = ...\`)`);
  return format;
}
