// Weight formats a tensor group can be stored in, with their storage cost.
import type { KindRef, ParamValue } from '../../../ir/model-config.js';
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
  { name: 'int2', category: 'quant', doc: 'Symmetric 2-bit with one f16 scale per group (levels ±0.5 and ±1.5 times scale = max|w| / 1.5, 16 per u32); for cold experts under `mixed(...)`.', params: [group(32)], storage: scaled(2, 16) },
  {
    name: 'mixed',
    category: 'quant',
    doc: 'A format per routed expert (MC-MoE): an integer program (HiGHS) gives each expert one of `choices`, ' +
      'minimising the quantization error weighted by how often the routing trace picks the expert, within an average of `bits` bits per weight ' +
      '(code bits; scales not counted). `moec compile --weights DIR` measures each choice\'s error on the weights. Only for `quantize experts`.',
    params: [
      { name: 'bits', doc: 'The average code bits per expert weight, at most (e.g. 3.5 between int2 and int4).', value: { type: 'number', min: 0, exclusiveMin: true }, required: true },
      { name: 'choices', doc: 'The formats an expert may get, e.g. `[int2, int4, int8]`.', value: { type: 'kind-list', category: 'quant' },
        default: [{ kind: 'int2', params: { group: 32 } }, { kind: 'int4', params: { group: 32 } }, { kind: 'int8', params: { group: 32 } }] },
      { name: 'trace', doc: 'A routing trace from `moec trace` (path relative to the spec): how often each expert is chosen.', value: { type: 'string' }, required: true },
    ],
    resolve(params) {
      const choices = params['choices'] as KindRef[];
      if (choices.length === 0) return [{ param: 'choices', message: 'needs at least one format' }];
      const nested = choices.find((c) => c.kind === 'mixed');
      return nested ? [{ param: 'choices', message: 'a choice cannot itself be `mixed`', hint: 'list plain formats: [int2, int4, int8]' }] : [];
    },
  },
  { name: 'mxfp4', category: 'quant', doc: 'OCP microscaling FP4 (E2M1) with one E8M0 scale per 32 values (gpt-oss checkpoints).', params: [group(32)], storage: scaled(4, 8) },
];
