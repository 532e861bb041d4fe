// How per-expert token counts meet the GEMM tile (../shared/moe-reference.md).
import type { KindDefinition } from './registry.js';

export const roundingKinds: KindDefinition[] = [
  { name: 'exact', category: 'rounding', doc: 'Route exactly as the model says; pad each expert\'s rows to the tile with masked sentinel rows (vLLM moe_align_block_size).', params: [] },
  {
    name: 'sonic',
    category: 'rounding',
    doc: 'SonicMoE token rounding (approximate): move each expert\'s token count to a multiple of the tile, dropping its lowest-weight routed tokens or adding the most probable unrouted ones, so no tile is padded.',
    params: [
      { name: 'mode', doc: 'Which multiple of the tile to move each count to.', value: { type: 'enum', values: ['nearest', 'up', 'down'] }, default: 'nearest' },
      { name: 'tile', doc: 'Tile rows the counts are rounded to.', value: { type: 'int', min: 1 }, default: 16 },
    ],
  },
];
