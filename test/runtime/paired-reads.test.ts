// runtime/paired-reads.ts: a read is kept until it is asked for once more, then handed over and
// forgotten; at most `entries` reads wait; a failed read is not kept.
import { describe, expect, it } from 'vitest';
import { pairedReads } from '../../runtime/paired-reads.js';
import type { RowRange } from '../../runtime/plan.js';
import type { TensorReader } from '../../runtime/tensor-reader.js';

function countingReader(failFirst = false): { reader: TensorReader; calls: string[] } {
  const calls: string[] = [];
  let fail = failFirst;
  const reader: TensorReader = {
    has: () => true,
    shape: () => [4, 2],
    readF32: async (name: string, rows?: RowRange) => {
      calls.push(`${name} ${rows ? `${rows.begin}:${rows.end}` : 'all'}`);
      if (fail) {
        fail = false;
        throw new Error('network down');
      }
      return new Float32Array([calls.length]);
    },
  };
  return { reader, calls };
}

describe('pairedReads', () => {
  it('hands a read over once to the same read, then reads again', async () => {
    const { reader, calls } = countingReader();
    const paired = pairedReads(reader);
    const first = await paired.readF32('w', { begin: 0, end: 2 });
    expect(await paired.readF32('w', { begin: 0, end: 2 })).toBe(first);
    expect(await paired.readF32('w', { begin: 0, end: 2 })).not.toBe(first);
    await paired.readF32('w', { begin: 2, end: 4 }); // another range is another read
    await paired.readF32('w');
    expect(calls).toEqual(['w 0:2', 'w 0:2', 'w 2:4', 'w all']);
  });

  it('keeps at most `entries` reads, dropping the oldest', async () => {
    const { reader, calls } = countingReader();
    const paired = pairedReads(reader, 2);
    for (const name of ['a', 'b', 'c']) await paired.readF32(name);
    await paired.readF32('a'); // dropped: read again
    await paired.readF32('c'); // kept: handed over
    expect(calls).toEqual(['a all', 'b all', 'c all', 'a all']);
  });

  it('does not keep a failed read: a retry reads again', async () => {
    const { reader, calls } = countingReader(true);
    const paired = pairedReads(reader);
    await expect(paired.readF32('w')).rejects.toThrow('network down');
    expect(await paired.readF32('w')).toEqual(new Float32Array([2]));
    expect(calls).toEqual(['w all', 'w all']);
  });
});
