import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckpointDir, CheckpointError } from '../../runtime/node/checkpoint-dir.js';
import { SafetensorsError } from '../../runtime/safetensors.js';
import { encodeSafetensors } from '../../runtime/safetensors-encode.js';
import { float32ToBfloat16Bits } from '../../runtime/float16.js';

const GATE = 'model.layers.0.mlp.gate.weight';
const EMBED = 'model.embed_tokens.weight';
const HEAD = 'lm_head.weight';

const randomF32 = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A checkpoint directory with config.json and the given files. */
function makeCheckpoint(files: Record<string, Uint8Array | object>): string {
  const dir = mkdtempSync(join(tmpdir(), 'moec-ckpt-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'mixtral', num_local_experts: 8 }));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), content instanceof Uint8Array ? content : JSON.stringify(content));
  }
  return dir;
}

function thrown(action: () => unknown): Error {
  try {
    action();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('CheckpointDir', () => {
  it('loads a single model.safetensors', () => {
    const gate = randomF32(8 * 4);
    const head = Float32Array.from([1, -2, 0.5, 3, 0.25, -8]); // exact in bf16
    const dir = makeCheckpoint({
      'model.safetensors': encodeSafetensors({
        [GATE]: { dtype: 'F32', shape: [8, 4], data: gate },
        [HEAD]: { dtype: 'BF16', shape: [2, 3], data: float32ToBfloat16Bits(head) },
      }),
    });
    const checkpoint = CheckpointDir.open(dir);
    expect(checkpoint.config.num_local_experts).toBe(8);
    expect(checkpoint.names().sort()).toEqual([HEAD, GATE].sort());
    expect(checkpoint.has(GATE)).toBe(true);
    expect(checkpoint.has(EMBED)).toBe(false);
    expect(checkpoint.shape(GATE)).toEqual([8, 4]);
    expect(checkpoint.readF32(GATE)).toEqual(gate);
    expect(checkpoint.require(HEAD, [2, 3])).toEqual(head);
    expect(checkpoint.pathOf(HEAD)).toBe(join(dir, 'model.safetensors'));
  });

  it('reads rows of a tensor from their bytes only, and U8 tensors raw', () => {
    const gate = randomF32(8 * 4);
    const blocks = Uint8Array.from({ length: 8 * 16 }, (_, i) => (i * 29) & 0xff);
    const dir = makeCheckpoint({
      'model.safetensors': encodeSafetensors({
        [GATE]: { dtype: 'F32', shape: [8, 4], data: gate },
        [`${GATE}_blocks`]: { dtype: 'U8', shape: [8, 1, 16], data: blocks },
      }),
    });
    const checkpoint = CheckpointDir.open(dir);
    expect(checkpoint.readF32(GATE, { begin: 2, end: 5 })).toEqual(gate.subarray(8, 20));
    expect(checkpoint.readU8(`${GATE}_blocks`, { begin: 7, end: 8 })).toEqual(blocks.subarray(112));
    expect(checkpoint.readU8(`${GATE}_blocks`)).toEqual(blocks);
    expect(thrown(() => checkpoint.readU8(GATE)).message).toBe(`${join(dir, 'model.safetensors')}: tensor "${GATE}": dtype F32, expected U8 (raw bytes)`);
    // Cut the file inside the gate's last rows after the header was read: earlier rows still read.
    const path = join(dir, 'model.safetensors');
    const info = checkpoint.info(GATE);
    truncateSync(path, info.fileOffset + 6 * 16);
    expect(checkpoint.readF32(GATE, { begin: 0, end: 6 })).toEqual(gate.subarray(0, 24));
    expect(thrown(() => checkpoint.readF32(GATE, { begin: 5, end: 7 })).message)
      .toBe(`${path}: file ended after ${info.fileOffset + 96} bytes while reading tensor "${GATE}"`);
  });

  it('loads a sharded checkpoint through model.safetensors.index.json', () => {
    const gate = randomF32(8 * 4);
    const embed = randomF32(10 * 4);
    const dir = makeCheckpoint({
      'model-00001-of-00002.safetensors': encodeSafetensors({ [EMBED]: { dtype: 'F32', shape: [10, 4], data: embed } }),
      'model-00002-of-00002.safetensors': encodeSafetensors({ [GATE]: { dtype: 'F32', shape: [8, 4], data: gate } }),
      'model.safetensors.index.json': {
        metadata: { total_size: 288 },
        weight_map: { [EMBED]: 'model-00001-of-00002.safetensors', [GATE]: 'model-00002-of-00002.safetensors' },
      },
    });
    const checkpoint = CheckpointDir.open(dir);
    expect(checkpoint.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(checkpoint.readF32(EMBED)).toEqual(embed);
    expect(checkpoint.require(GATE, [8, 4])).toEqual(gate);
    expect(checkpoint.pathOf(GATE)).toBe(join(dir, 'model-00002-of-00002.safetensors'));
  });

  it('scans every *.safetensors when there is no index and no model.safetensors', () => {
    const gate = randomF32(4);
    const dir = makeCheckpoint({
      'a.safetensors': encodeSafetensors({ [GATE]: { dtype: 'F32', shape: [4], data: gate } }),
      'b.safetensors': encodeSafetensors({ [HEAD]: { dtype: 'F32', shape: [1], data: randomF32(1) } }),
    });
    const checkpoint = CheckpointDir.open(dir);
    expect(checkpoint.readF32(GATE)).toEqual(gate);
    expect(checkpoint.has(HEAD)).toBe(true);
  });

  it('names the tensor and the files searched when a tensor is missing', () => {
    const dir = makeCheckpoint({
      's1.safetensors': encodeSafetensors({ [EMBED]: { dtype: 'F32', shape: [1], data: randomF32(1) } }),
      's2.safetensors': encodeSafetensors({ [GATE]: { dtype: 'F32', shape: [1], data: randomF32(1) } }),
      'model.safetensors.index.json': { weight_map: { [EMBED]: 's1.safetensors', [GATE]: 's2.safetensors' } },
    });
    const error = thrown(() => CheckpointDir.open(dir).readF32(HEAD));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toBe(`${dir}: tensor "${HEAD}" not found (searched s1.safetensors, s2.safetensors)`);
  });

  it('reports a shape mismatch naming file and tensor', () => {
    const dir = makeCheckpoint({
      'model.safetensors': encodeSafetensors({ [GATE]: { dtype: 'F32', shape: [2, 3], data: randomF32(6) } }),
    });
    const error = thrown(() => CheckpointDir.open(dir).require(GATE, [3, 2]));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toBe(`${join(dir, 'model.safetensors')}: tensor "${GATE}" has shape [2, 3], expected [3, 2]`);
    expect(thrown(() => CheckpointDir.open(dir).require(GATE, [6])).message).toMatch(/has shape \[2, 3\], expected \[6\]$/);
  });

  it('reports an index naming a missing file, naming both', () => {
    const dir = makeCheckpoint({
      's1.safetensors': encodeSafetensors({ [EMBED]: { dtype: 'F32', shape: [1], data: randomF32(1) } }),
      'model.safetensors.index.json': { weight_map: { [EMBED]: 's1.safetensors', [GATE]: 's9.safetensors' } },
    });
    const error = thrown(() => CheckpointDir.open(dir));
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.message).toContain(join(dir, 'model.safetensors.index.json'));
    expect(error.message).toContain('"s9.safetensors"');
    expect(error.message).toContain(`"${GATE}"`);
  });

  it('reports an index entry whose file lacks the tensor', () => {
    const dir = makeCheckpoint({
      's1.safetensors': encodeSafetensors({ [EMBED]: { dtype: 'F32', shape: [1], data: randomF32(1) } }),
      'model.safetensors.index.json': { weight_map: { [EMBED]: 's1.safetensors', [GATE]: 's1.safetensors' } },
    });
    expect(thrown(() => CheckpointDir.open(dir).shape(GATE)).message).toBe(
      `${join(dir, 's1.safetensors')}: tensor "${GATE}" is listed in model.safetensors.index.json but not in this file`,
    );
  });

  it('passes corrupt shards up as SafetensorsError with the path', () => {
    const good = encodeSafetensors({ [GATE]: { dtype: 'F32', shape: [4], data: randomF32(4) } });
    const dir = makeCheckpoint({ 'model.safetensors': good.subarray(0, good.length - 4) });
    const error = thrown(() => CheckpointDir.open(dir));
    expect(error).toBeInstanceOf(SafetensorsError);
    expect(error.message).toContain(`${join(dir, 'model.safetensors')}: tensor "${GATE}"`);
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    const dir2 = makeCheckpoint({ 'model.safetensors': huge });
    expect(thrown(() => CheckpointDir.open(dir2)).message).toMatch(/runs past the end of the file/);
  });

  it('requires config.json and some weights', () => {
    const dir = makeCheckpoint({});
    expect(thrown(() => CheckpointDir.open(dir)).message).toMatch(/no model.safetensors, model.safetensors.index.json or other \*.safetensors/);
    rmSync(join(dir, 'config.json'));
    expect(thrown(() => CheckpointDir.open(dir)).message).toMatch(/config.json: cannot read \(ENOENT\)/);
  });
});
