// The storage formats moec ships: layout and codec of each (weight-format.ts describes the
// layout). A plugin's formats are added to a copy of this table (withFormats), never to it.
import { bf16Codec, f16Codec } from './half-codecs.js';
import { int2Codec, int4Codec, int8Codec } from './int-codecs.js';
import type { MatrixCodec } from './matrix-codec.js';
import { mxfp4Codec } from './mxfp4-codec.js';
import type { FormatDefinition } from './weight-format.js';

const f32Codec: MatrixCodec = {
  encode(values, words, at) {
    words.set(new Uint32Array(values.buffer, values.byteOffset, values.length), at);
  },
  decode(words, at, values) {
    values.set(new Float32Array(words.buffer, words.byteOffset + at * 4, values.length));
  },
};

export type BuiltinFormatName = 'f32' | 'f16' | 'bf16' | 'int8' | 'int4' | 'int2' | 'mxfp4';

/** int8: f32 scales; int4, int2: f16 scales (2 per word); mxfp4: E8M0 bytes (4 per word). */
export const builtinFormats: Readonly<Record<BuiltinFormatName, FormatDefinition>> = {
  f32: { name: 'f32', perWord: 1, scalesPerWord: 0, codec: f32Codec },
  f16: { name: 'f16', perWord: 2, scalesPerWord: 0, codec: f16Codec },
  bf16: { name: 'bf16', perWord: 2, scalesPerWord: 0, codec: bf16Codec },
  int8: { name: 'int8', perWord: 4, scalesPerWord: 1, codec: int8Codec },
  int4: { name: 'int4', perWord: 8, scalesPerWord: 2, codec: int4Codec },
  int2: { name: 'int2', perWord: 16, scalesPerWord: 2, codec: int2Codec },
  mxfp4: { name: 'mxfp4', perWord: 8, scalesPerWord: 4, codec: mxfp4Codec },
};
