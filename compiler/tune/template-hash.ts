// Which template sources each tuned family renders, and the hash that keys its cache entries:
// the templates' text plus the fixed parameters, so editing a template invalidates its entries.
import { createHash } from 'node:crypto';
import { templateSource } from '../../codegen/kernels/template.js';

export type TunedFamily = 'grouped_gemm.gate_up' | 'grouped_gemm.down' | 'decode.rows' | 'decode_max_tokens';

const GEMM = ['grouped-gemm/grouped-gemm.wgsl.hbs', 'grouped-gemm/gemm-tile.wgsl.hbs', 'grouped-gemm/gemm-tile-kvec.wgsl.hbs', 'grouped-gemm/gemm-epilogue.wgsl.hbs', 'common/header.wgsl.hbs'];
/** The fused decode kernels' templates (moe.decode_gate_up, moe.decode_down_combine). */
const DECODE = [
  'decode-gate-up/decode-gate-up.wgsl.hbs',
  'decode-gate-up/gate-up-rows.wgsl.hbs',
  'decode-down-combine/decode-down-combine.wgsl.hbs',
  'decode-down-combine/down-dot.wgsl.hbs',
];

/** Templates under codegen/kernels/ whose text decides each family's kernels. */
export const FAMILY_TEMPLATES: Readonly<Record<TunedFamily, readonly string[]>> = {
  'grouped_gemm.gate_up': GEMM,
  'grouped_gemm.down': GEMM,
  'decode.rows': [...DECODE, 'common/header.wgsl.hbs'],
  // The crossover weighs the whole decode path against the whole prefill path.
  decode_max_tokens: [
    ...GEMM,
    'route-align/route-align.wgsl.hbs',
    'combine/combine.wgsl.hbs',
    'expert-gemv/expert-gemv.wgsl.hbs',
    ...DECODE,
  ],
};

export type TemplateReader = (path: string) => string;

export const readKernelTemplate: TemplateReader = templateSource;

/** 16 hex digits of sha256 over the family, its templates' text and the fixed parameters `shape`. */
export function templateHash(family: TunedFamily, shape: string, read: TemplateReader = readKernelTemplate): string {
  const hash = createHash('sha256').update(`${family}\0${shape}\0`);
  for (const path of FAMILY_TEMPLATES[family]) hash.update(`${path}\0${read(path)}\0`);
  return hash.digest('hex').slice(0, 16);
}
