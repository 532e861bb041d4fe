// NF4 (QLoRA 4-bit NormalFloat, Dettmers et al. 2023) as a moec plugin: the quantization kind
// `nf4(group = 64)` and its weight format. Codes are indices into 16 levels spaced for normally
// distributed weights, times one f32 absmax per group (nf4-codec.js holds the layout and codec;
// model.js bundles it). The kernels decode with the WGSL load below: the level table, one multiply.
import { definePlugin, f32Literal } from 'moec/plugin';
import nf4Format, { NF4_LEVELS_F32 } from './nf4-codec.js';

/** @type {import('moec/plugin').KindDefinition} */
const nf4Kind = {
  name: 'nf4',
  category: 'quant',
  doc: 'NF4 (QLoRA 4-bit NormalFloat): the nearest of 16 normal-quantile levels to w / absmax, one f32 absmax per group (8 codes per u32).',
  params: [{ name: 'group', doc: 'Weights sharing one absmax, along the reduced (input) dimension; must divide it (bitsandbytes uses 64).', value: { type: 'int', min: 1 }, default: 64 }],
  storage: (params) => ({ bits: 4, scaleBits: 32, group: /** @type {number} */ (params['group']) }),
};

// The levels as WGSL f32 literals: each is the shortest decimal of an f32, so the GPU holds exactly NF4_LEVELS_F32.
const levels = Array.from(NF4_LEVELS_F32, (level) => f32Literal(level)).join(', ');

// fn {{name}}_at / _at4 over binding {{name}} (see codegen/kernels/weights/load-int4.wgsl.hbs for the fields).
const wgsl = `// {{name}}: NF4 (plugin nf4), group {{group}}. Matrix m: {{valueWords}} words of 8 codes from word m * {{matrixWords}}
// (element i at bits 4 (i % 8)), then one f32 absmax per group; w = level[code] * absmax.
const {{name}}_levels = array<f32, 16>(${levels});

fn {{name}}_scale(base: u32, i: u32) -> f32 {
  return bitcast<f32>({{name}}[base + {{valueWords}}u + i / {{group}}u]);
}

fn {{name}}_at(m: u32, i: u32) -> f32 {
  let base = m * {{matrixWords}}u;
  let code = ({{name}}[base + i / 8u] >> (4u * (i % 8u))) & 0xfu;
  return {{name}}_levels[code] * {{name}}_scale(base, i);
}
{{#if vec4}}

// Elements i .. i + 3 (i % 4 == 0: half a word{{#if sharedScale}} and one absmax{{/if}}).
fn {{name}}_at4(m: u32, i: u32) -> vec4<f32> {
  let base = m * {{matrixWords}}u;
  let word = {{name}}[base + i / 8u] >> (4u * (i % 8u));
  let v = vec4<f32>({{name}}_levels[word & 0xfu], {{name}}_levels[(word >> 4u) & 0xfu], {{name}}_levels[(word >> 8u) & 0xfu], {{name}}_levels[(word >> 12u) & 0xfu]);
{{#if sharedScale}}
  return v * {{name}}_scale(base, i);
{{else}}
  return v * vec4<f32>({{name}}_scale(base, i), {{name}}_scale(base, i + 1u), {{name}}_scale(base, i + 2u), {{name}}_scale(base, i + 3u));
{{/if}}
}
{{/if}}
`;

export default definePlugin({
  name: 'nf4',
  kinds: [nf4Kind],
  formats: {
    nf4: { runtime: new URL('./nf4-codec.js', import.meta.url), definition: nf4Format, wgsl },
  },
});
