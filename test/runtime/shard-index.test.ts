// runtime/shard-index.ts: which shard holds a tensor, and the messages of the index checks that the
// Node directory, in-memory and HTTP readers share.
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { parseSafetensors, type SafetensorsHeader } from '../../runtime/safetensors.js';
import { requireShardFiles, ShardIndex, shardFilesOf, weightMapOf, type ShardNaming } from '../../runtime/shard-index.js';

class TestError extends Error {}

const header = (file: string, ...names: string[]): SafetensorsHeader =>
  parseSafetensors(encodeSafetensors(Object.fromEntries(names.map((n) => [n, { dtype: 'F32', shape: [1], data: new Float32Array(1) }]))), file);

const naming = (searched?: string): ShardNaming<string> =>
  ({ nameOf: (file) => `/ckpt/${file}`, location: '/ckpt', searched, error: TestError });

describe('ShardIndex from shard headers', () => {
  const a = header('a.safetensors', 'x', 'y');
  const b = header('b.safetensors', 'z');
  const headers = new Map([['a.safetensors', a], ['b.safetensors', b]]);
  const index = ShardIndex.fromShards([...headers].map(([file, h]) => [file, h.tensors.keys()] as const), naming('a.safetensors, b.safetensors'));

  it('finds each tensor in its shard', () => {
    expect(index.names()).toEqual(['x', 'y', 'z']);
    expect(index.has('z')).toBe(true);
    expect(index.shardOf('y')).toBe('a.safetensors');
    expect(index.shardOf('w')).toBeUndefined();
    expect(index.locate('z', (file) => headers.get(file)!)).toEqual({ shard: 'b.safetensors', tensor: b.tensors.get('z') });
  });

  it('names the location and what was searched for a tensor in no shard', () => {
    expect(() => index.locate('w', (file) => headers.get(file)!)).toThrow(new TestError('/ckpt: tensor "w" not found (searched a.safetensors, b.safetensors)'));
    const plain = ShardIndex.fromShards([['a.safetensors', ['x']]], naming());
    expect(() => plain.locate('w', () => a)).toThrow(new TestError('/ckpt: tensor "w" not found'));
  });

  it('refuses a tensor in two shards, naming both', () => {
    expect(() => ShardIndex.fromShards([['a.safetensors', ['x', 'y']], ['b.safetensors', ['y']]], naming()))
      .toThrow(new TestError('/ckpt/b.safetensors: tensor "y" is also in /ckpt/a.safetensors; which one to load is ambiguous'));
  });
});

describe('ShardIndex from an index weight_map', () => {
  const weightMap = { x: 's2.safetensors', y: 's1.safetensors', z: 's2.safetensors' };

  it('lists the shard files once each, in the order the index first names them', () => {
    expect(shardFilesOf(weightMap)).toEqual(['s2.safetensors', 's1.safetensors']);
  });

  it('reads a shard header only for a tensor it lists, and reports a shard that lacks it', () => {
    const index = ShardIndex.fromWeightMap(weightMap, 'model.safetensors.index.json', naming());
    const asked: string[] = [];
    const headerOf = (file: string, name: string) => (asked.push(`${file} ${name}`), header(file, 'x'));
    expect(index.locate('x', headerOf).shard).toBe('s2.safetensors');
    expect(() => index.locate('z', headerOf))
      .toThrow(new TestError('/ckpt/s2.safetensors: tensor "z" is listed in model.safetensors.index.json but not in this file'));
    expect(asked).toEqual(['s2.safetensors x', 's2.safetensors z']);
  });

  it('checks the weight_map is tensor name -> file name', () => {
    expect(weightMapOf({ weight_map: weightMap }, 'i.json', TestError)).toBe(weightMap);
    for (const bad of [undefined, [], { weight_map: ['a'] }, { weight_map: { x: 1 } }, { metadata: {} }]) {
      expect(() => weightMapOf(bad, 'i.json', TestError)).toThrow(new TestError('i.json: "weight_map" is not an object of tensor name -> file name'));
    }
  });

  it('names the index, the file and a tensor for a shard file that does not exist', () => {
    expect(() => requireShardFiles(weightMap, '/ckpt/i.json', (file) => file !== 's1.safetensors', '/ckpt', TestError))
      .toThrow(new TestError('/ckpt/i.json: weight_map names file "s1.safetensors" (for tensor "y"), which does not exist in /ckpt'));
    expect(() => requireShardFiles(weightMap, '/ckpt/i.json', () => true, '/ckpt', TestError)).not.toThrow();
  });
});
