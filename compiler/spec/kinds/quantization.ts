// Weight formats a tensor group can be stored in, with their storage cost.
import type { ParamValue } from '../../../ir/model-config.js';
import type { WeightStorage } from '../../../passes/pass.js';
import type { KindDefinition } from './registry.js';

const group = (fallback: number) => ({ name: 'group', doc: 'Weights sharing one scale, along the reduced (input) dimension; must divide it.', value: { type: 'int', min: 1 }, default: fallback } as const);

/** `bits`-bit values with one `scaleBits`-bit scale per `group` param of them. */
const scaled = (bits: number, scaleBits: number) => (params: Record<string, ParamValue>): WeightStorage => ({ bits, scaleBits, group: params['group'] as number });

export const quantKinds: KindDefinition[] = [
  { name: 'f32', category: 'quant', doc: '32-bit float, unquantized.', params: [], storage: () => ({ float: 'f32' }) },
  { name: 'f16', category: 'quant', doc: '16-bit IEEE float.', params: [], storage: () => ({ float: 'f16' }) },
  { name: 'bf16', category: 'quant', doc: 'bfloat16 (stored; computed in f32).', params: [], storage: () => ({ float: 'bf16' }) },
  { name: 'int8', category: 'quant', doc: 'Symmetric int8 with one f32 scale per group.', params: [group(128)], storage: scaled(8, 32) },
  { name: 'int4', category: 'quant', doc: 'Symmetric int4 with one f16 scale per group (MLC q4f16_1: scale = max|w| / 7, 8 nibbles per u32).', params: [group(32)], storage: scaled(4, 16) },
  { name: 'mxfp4', category: 'quant', doc: 'OCP microscaling FP4 (E2M1) with one E8M0 scale per 32 values (gpt-oss checkpoints).', params: [group(32)], storage: scaled(4, 8) },
];
