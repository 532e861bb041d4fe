import { describe, expect, it } from 'vitest';
import { headerPrefixLength, MAX_HEADER_BYTES, parseSafetensors, SafetensorsError, type SafetensorsDtype } from '../../runtime/safetensors.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { readTensorF32, readTensorU8, tensorRowBytes } from '../../runtime/safetensors-read.js';
import { float32ToBfloat16Bits, float32ToFloat16Bit, float32ToFloat16Bits } from '../../runtime/float16.js';

const FILE = 'weights/model-00001.safetensors';
const GATE = 'model.layers.0.mlp.gate.weight';

/** binary16 decoded in float64 from its fields: an independent reference for the converters. */
function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return exponent === 0 ? sign * mantissa * 2 ** -24 : sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
}

const randomF32 = (n: number, scale = 4): Float32Array => Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * scale);

/** Values exactly representable in f16 (random bit patterns, finite). */
function randomHalfBits(n: number): Uint16Array {
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    do bits[i] = Math.floor(Math.random() * 65536);
    while (((bits[i]! >> 10) & 0x1f) === 31);
  }
  return bits;
}

function sampleFile(): Uint8Array {
  return encodeSafetensors(
    {
      [GATE]: { dtype: 'F32', shape: [8, 4], data: randomF32(32) },
      'model.embed_tokens.weight': { dtype: 'F16', shape: [3, 5], data: randomHalfBits(15) },
      'lm_head.weight': { dtype: 'BF16', shape: [2, 2], data: float32ToBfloat16Bits([1, -2, 0.5, 3]) },
    },
    { format: 'pt' },
  );
}

/** Rewrites the JSON header of an encoded file, keeping its data area: how corrupt files are made here. */
function rewriteHeader(bytes: Uint8Array, edit: (header: Record<string, any>) => unknown): Uint8Array {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  const edited = edit(header) ?? header;
  const text = new TextEncoder().encode(typeof edited === 'string' ? edited : JSON.stringify(edited));
  const out = new Uint8Array(8 + text.length + bytes.length - 8 - length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(bytes.subarray(8 + length), 8 + text.length);
  return out;
}

function parseError(bytes: Uint8Array): SafetensorsError {
  try {
    parseSafetensors(bytes, FILE);
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError);
    const message = (error as SafetensorsError).message;
    expect(message.startsWith(`${FILE}:`)).toBe(true);
    expect(message).not.toContain('\n');
    return error as SafetensorsError;
  }
  throw new Error('expected a SafetensorsError');
}

describe('float16 conversions', () => {
  it('rounds f32 to the nearest f16, ties to even', () => {
    const values = [...randomF32(2000, 70000), ...randomF32(2000, 1e-4), ...randomF32(2000, 1)];
    for (const value of values) {
      const bits = float32ToFloat16Bit(value);
      const magnitude = bits & 0x7fff;
      const x = Math.abs(Math.fround(value));
      const distance = (b: number) => Math.abs(halfToNumber(b) - x);
      if (magnitude === 0x7c00) {
        expect(x, `${value}`).toBeGreaterThanOrEqual(65520); // 65520 is the tie between 65504 and 2^16
        continue;
      }
      expect(distance(magnitude), `${value}`).toBeLessThanOrEqual(distance(magnitude + 1));
      if (magnitude > 0) expect(distance(magnitude), `${value}`).toBeLessThanOrEqual(distance(magnitude - 1));
      if (magnitude > 0 && distance(magnitude) === distance(magnitude - 1)) expect(magnitude % 2).toBe(0);
      if (distance(magnitude) === distance(magnitude + 1)) expect(magnitude % 2).toBe(0);
      expect(bits >> 15, `${value}`).toBe(value < 0 ? 1 : 0);
    }
  });

  it('handles the edges', () => {
    expect([...float32ToFloat16Bits([1, -2, 65504, 65519, 65520, 2 ** -24, 2 ** -26, Infinity, -0])]).toEqual([
      0x3c00, 0xc000, 0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x7c00, 0x8000,
    ]);
    // Ties round to even, for normals and for subnormals.
    expect([...float32ToFloat16Bits([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -25])]).toEqual([
      0x3c00, 0x3c02, 0x0000, 0x0002, 0x0400,
    ]);
    expect(float32ToFloat16Bit(NaN) & 0x7e00).toBe(0x7e00);
    expect([...float32ToBfloat16Bits([1, -2, 1 + 2 ** -8, 1 + 3 * 2 ** -8, Infinity])]).toEqual([
      0x3f80, 0xc000, 0x3f80, 0x3f82, 0x7f80,
    ]);
  });
});

describe('safetensors round trip', () => {
  it('encodes then parses F32, F16, BF16 and I32 with metadata', () => {
    const f32 = randomF32(32);
    const f16Bits = randomHalfBits(15);
    const bf16Values = Float32Array.from(randomF32(6), (v) => Math.fround(v)); // rounded below
    const bf16Bits = float32ToBfloat16Bits(bf16Values);
    const i32 = Int32Array.from({ length: 7 }, () => Math.floor(Math.random() * 2 ** 31));
    const bytes = encodeSafetensors(
      {
        [GATE]: { dtype: 'F32', shape: [8, 4], data: f32 },
        'embed.f16': { dtype: 'F16', shape: [3, 5], data: f16Bits },
        'head.bf16': { dtype: 'BF16', shape: [2, 3], data: bf16Bits },
        'ids.i32': { dtype: 'I32', shape: [7], data: i32 },
        'empty.f32': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
        'scalar.f16': { dtype: 'F16', shape: [], data: float32ToFloat16Bits([0.5]) },
      },
      { format: 'pt', note: 'round trip' },
    );
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    expect(bytes[8 + headerLength - 1] === 0x20 || bytes[8 + headerLength - 1] === 0x7d).toBe(true);

    const file = parseSafetensors(bytes.buffer as ArrayBuffer, FILE);
    expect(file.metadata).toEqual({ format: 'pt', note: 'round trip' });
    expect([...file.tensors.keys()].sort()).toEqual([GATE, 'embed.f16', 'empty.f32', 'head.bf16', 'ids.i32', 'scalar.f16'].sort());
    expect(file.tensors.get(GATE)).toMatchObject({ dtype: 'F32', shape: [8, 4], byteLength: 128 });
    for (const tensor of file.tensors.values()) {
      expect(tensor.fileOffset % ({ F32: 4, F16: 2, BF16: 2, I32: 4 } as Record<string, number>)[tensor.dtype]!).toBe(0);
    }

    expect(readTensorF32(file, GATE)).toEqual(f32);
    expect([...readTensorF32(file, 'embed.f16')]).toEqual([...f16Bits].map(halfToNumber));
    const bf16Expected = [...bf16Bits].map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
    expect([...readTensorF32(file, 'head.bf16')]).toEqual(bf16Expected);
    for (let i = 0; i < bf16Values.length; i++) {
      expect(Math.abs(bf16Expected[i]! - bf16Values[i]!)).toBeLessThanOrEqual(Math.abs(bf16Values[i]!) * 2 ** -8);
    }
    expect(readTensorF32(file, 'empty.f32')).toEqual(new Float32Array(0));
    expect([...readTensorF32(file, 'scalar.f16')]).toEqual([0.5]);
    expect(() => readTensorF32(file, 'ids.i32')).toThrow(/"ids.i32": dtype I32 cannot be read as f32/);
    expect(() => readTensorF32(file, 'nope')).toThrow(SafetensorsError);
  });

  it('reads tensors at unaligned addresses', () => {
    const values = randomF32(5);
    const encoded = encodeSafetensors({ t: { dtype: 'F32', shape: [5], data: values } });
    const shifted = new Uint8Array(encoded.length + 1);
    shifted.set(encoded, 1); // odd byteOffset: a Float32Array view would throw
    expect(readTensorF32(parseSafetensors(shifted.subarray(1), FILE), 't')).toEqual(values);
  });

  it('refuses to encode data of the wrong size', () => {
    expect(() => encodeSafetensors({ t: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(/"t": data is 8 bytes/);
  });
});

describe('safetensors row ranges', () => {
  it('reads rows [begin, end) of the leading dim from only their bytes, for F32, BF16 and U8', () => {
    const f32 = randomF32(4 * 3 * 2);
    const bf16Values = Float32Array.from({ length: 4 * 6 }, (_, i) => (i % 7) - 3); // exact in bf16
    const u8 = Uint8Array.from({ length: 4 * 5 }, (_, i) => (i * 37) & 0xff);
    const file = parseSafetensors(encodeSafetensors({
      'w.f32': { dtype: 'F32', shape: [4, 3, 2], data: f32 },
      'w.bf16': { dtype: 'BF16', shape: [4, 6], data: float32ToBfloat16Bits(bf16Values) },
      'w.u8': { dtype: 'U8', shape: [4, 5], data: u8 },
    }), FILE);
    const info = file.tensors.get('w.f32')!;
    expect(tensorRowBytes(info, FILE, { begin: 1, end: 3 })).toEqual({ fileOffset: info.fileOffset + 24, byteLength: 48 });
    expect(tensorRowBytes(info, FILE)).toEqual({ fileOffset: info.fileOffset, byteLength: info.byteLength });
    expect(readTensorF32(file, 'w.f32', { begin: 1, end: 3 })).toEqual(f32.subarray(6, 18));
    expect(readTensorF32(file, 'w.bf16', { begin: 3, end: 4 })).toEqual(bf16Values.subarray(18, 24));
    expect(readTensorF32(file, 'w.f32', { begin: 2, end: 2 })).toEqual(new Float32Array(0));
    expect(readTensorU8(file, 'w.u8', { begin: 0, end: 2 })).toEqual(u8.subarray(0, 10));
    expect(readTensorU8(file, 'w.u8')).toEqual(u8);
    const copy = readTensorU8(file, 'w.u8');
    copy[0] = 99; // a copy, not a view of the file
    expect(readTensorU8(file, 'w.u8')[0]).toBe(u8[0]);
  });

  it('refuses ranges outside the tensor and U8 reads of other dtypes, naming the file and the tensor', () => {
    const file = parseSafetensors(encodeSafetensors({
      'w.f32': { dtype: 'F32', shape: [4, 2], data: randomF32(8) },
      scalar: { dtype: 'F32', shape: [], data: randomF32(1) },
    }), FILE);
    expect(() => readTensorF32(file, 'w.f32', { begin: 3, end: 5 })).toThrow(`${FILE}: tensor "w.f32": rows [3, 5) are not a range within shape [4, 2]`);
    expect(() => readTensorF32(file, 'w.f32', { begin: 2, end: 1 })).toThrow(/rows \[2, 1\) are not a range/);
    expect(() => readTensorF32(file, 'scalar', { begin: 0, end: 1 })).toThrow(/"scalar": rows \[0, 1\) are not a range within shape \[\]/);
    expect(() => readTensorU8(file, 'w.f32')).toThrow(`${FILE}: tensor "w.f32": dtype F32, expected U8 (raw bytes)`);
  });
});

describe('safetensors corruption', () => {
  const setDtype = (dtype: string) => (h: Record<string, any>) => void (h[GATE].dtype = dtype as SafetensorsDtype);

  it('rejects a file too short for the header length', () => {
    expect(parseError(sampleFile().subarray(0, 5)).message).toMatch(/5 bytes, too short/);
  });

  it('rejects a header length past the end of the file', () => {
    const bytes = sampleFile().slice();
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(parseError(bytes).message).toMatch(/header length 9223372036854775808 runs past the end of the file/);
    expect(parseError(sampleFile().subarray(0, 40)).message).toMatch(/runs past the end of the file \(40 bytes\)/);
  });

  it('headerPrefixLength asks for the whole header only when its length is plausible', () => {
    const bytes = sampleFile();
    const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(headerPrefixLength(bytes.subarray(0, 8), bytes.length)).toBe(8 + length);
    expect(headerPrefixLength(bytes.subarray(0, 5), 5)).toBe(5); // too short: the parser reports it from these
    expect(headerPrefixLength(bytes.subarray(0, 8), 8 + length - 1)).toBe(8); // past the end
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    expect(headerPrefixLength(huge, 2 * MAX_HEADER_BYTES)).toBe(8); // over the limit
  });

  it('rejects a truncated data area, naming the tensor cut off', () => {
    const bytes = sampleFile();
    const error = parseError(bytes.subarray(0, bytes.length - 3));
    expect(error.tensorName).toBeDefined();
    expect(error.message).toContain(`tensor "${error.tensorName}"`);
    expect(error.message).toMatch(/run past the end of the data area/);
  });

  it('rejects bad JSON and non-object headers', () => {
    expect(parseError(rewriteHeader(sampleFile(), () => '{"a": ')).message).toMatch(/not valid UTF-8 JSON/);
    expect(parseError(rewriteHeader(sampleFile(), () => [1, 2])).message).toMatch(/not a JSON object/);
    const badUtf8 = rewriteHeader(sampleFile(), () => '{"\u00e9": 1}');
    badUtf8[10] = 0xff;
    expect(parseError(badUtf8).message).toMatch(/not valid UTF-8 JSON/);
    expect(parseError(rewriteHeader(sampleFile(), (h) => void (h.__metadata__ = { n: 1 }))).message).toMatch(/__metadata__ entry "n"/);
  });

  it('rejects an unknown dtype', () => {
    const error = parseError(rewriteHeader(sampleFile(), setDtype('F33')));
    expect(error.message).toContain(`${FILE}: tensor "${GATE}": unknown dtype "F33"`);
    expect(error.tensorName).toBe(GATE);
  });

  it('rejects data_offsets that do not match the shape', () => {
    const error = parseError(rewriteHeader(sampleFile(), (h) => void (h[GATE].shape = [8, 5])));
    expect(error.message).toBe(
      `${FILE}: tensor "${GATE}": data_offsets [${error.message.match(/\[(\d+, \d+)\]/)![1]}] do not match shape [8, 5] of F32 (160 bytes)`,
    );
    expect(parseError(rewriteHeader(sampleFile(), setDtype('F16'))).message).toMatch(/do not match shape \[8, 4\] of F16 \(64 bytes\)/);
  });

  it('rejects malformed shapes and offsets', () => {
    const cases: Array<[(h: Record<string, any>) => void, RegExp]> = [
      [(h) => void (h[GATE].shape = [8, -4]), /shape \[8,-4\] is not an array of non-negative integers/],
      [(h) => void (h[GATE].shape = [8, 4.5]), /not an array of non-negative integers/],
      [(h) => void (h[GATE].shape = '8x4'), /not an array of non-negative integers/],
      [(h) => void (h[GATE].data_offsets = [0]), /is not two non-negative integers/],
      [(h) => void (h[GATE].data_offsets = [0, '128']), /is not two non-negative integers/],
      [(h) => void (h[GATE].data_offsets = [128, 0]), /begin after they end/],
      [(h) => void (h[GATE] = 7), /entry is not an object/],
    ];
    for (const [edit, pattern] of cases) {
      const error = parseError(rewriteHeader(sampleFile(), edit));
      expect(error.message).toMatch(pattern);
      expect(error.message).toContain(`tensor "${GATE}"`);
    }
  });

  it('rejects offsets past the end of the data area', () => {
    const error = parseError(
      rewriteHeader(sampleFile(), (h) => void (h[GATE].data_offsets = [1_000_000, 1_000_128])),
    );
    expect(error.message).toMatch(new RegExp(`tensor "${GATE.replace(/\./g, '\\.')}": data_offsets \\[1000000, 1000128\\] run past the end`));
  });

  it('rejects overlapping tensors', () => {
    const error = parseError(
      rewriteHeader(sampleFile(), (h) => {
        const [begin] = h[GATE].data_offsets as number[];
        h['lm_head.weight'].data_offsets = [begin! + 4, begin! + 12];
      }),
    );
    expect(error.message).toMatch(/overlap those of tensor/);
    expect(error.message).toContain(GATE);
    expect(error.message).toContain('lm_head.weight');
  });
});

describe('safetensors read from a Node Buffer', () => {
  it('decodes a tensor from a Buffer that is a view into a larger pool', () => {
    const values = Float32Array.from({ length: 5 }, () => Math.random());
    const encoded = encodeSafetensors({ t: { dtype: 'F32', shape: [5], data: values } });
    // readFileSync returns Buffers that share a pool, like this one with 7 foreign bytes in front.
    const pooled = Buffer.concat([Buffer.alloc(7, 0xff), Buffer.from(encoded)]).subarray(7);
    expect(Array.from(readTensorF32(parseSafetensors(pooled, 'pooled.safetensors'), 't'))).toEqual(Array.from(values));
  });
});
