// A TensorReader for reads that come in pairs: gpt-oss stores experts.gate and experts.up in one
// fused tensor, and the loader reads each piece of its rows for gate and right after for up
// (WeightSource.sharesStorage). This reader keeps a read until the same read is asked for again,
// hands it over and forgets it, so the pair costs one read of the stored bytes. At most `entries`
// reads are kept (oldest dropped), so a read never paired holds no memory for long — though a
// whole-tensor read (no rows, as `moec run --check` makes) can be large while it waits. The arrays
// it returns may be handed out twice: callers must not modify them. Browser-safe.
import type { RowRange } from './plan.js';
import type { TensorReader } from './tensor-reader.js';

export function pairedReads(reader: TensorReader, entries = 4): TensorReader {
  const kept = new Map<string, unknown>();
  const once = <T>(kind: string, name: string, rows: RowRange | undefined, read: () => T): T => {
    const key = `${kind}\0${name}\0${rows ? `${rows.begin}:${rows.end}` : 'all'}`;
    if (kept.has(key)) {
      const value = kept.get(key) as T;
      kept.delete(key);
      return value;
    }
    const value = read();
    kept.set(key, value);
    // A failed read is not kept: a retry reads again.
    if (value instanceof Promise) value.catch(() => kept.get(key) === value && kept.delete(key));
    if (kept.size > entries) kept.delete(kept.keys().next().value!);
    return value;
  };
  const { readU8, readBytes, dtype, fileOf } = reader;
  return {
    has: (name) => reader.has(name),
    shape: (name) => reader.shape(name),
    readF32: (name, rows) => once('f32', name, rows, () => reader.readF32(name, rows)),
    readU8: readU8 && ((name, rows) => once('u8', name, rows, () => readU8.call(reader, name, rows))),
    readBytes: readBytes && ((name, rows) => once('bytes', name, rows, () => readBytes.call(reader, name, rows))),
    dtype: dtype && ((name) => dtype.call(reader, name)),
    fileOf: fileOf && ((name) => fileOf.call(reader, name)),
    location: reader.location,
  };
}
