// A storage binding limit too small for one token is a compile error naming the limit and the
// activation buffer that needs more (`moec compile --max-binding`, and the whole-model plan that
// `moec pack` compiles, whose experts that limit shards), not a plan of maxTokens = 0; and the model
// executor refuses such a plan up front instead of running prompts in pieces of 0 tokens forever.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../compiler/model-plan.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { GpuError, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createModelExecutor } from '../../runtime/model-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { specText } from '../fixtures/make-checkpoint.js';
import { moec, ROOT } from '../bundle/cli.js';

const TINY_MIXTRAL = join(ROOT, 'examples', 'tiny-mixtral.moe');
// The fixture's mixtral with int4 experts: 8 experts of 64 x 32, whose stacks 8 KiB bindings shard.
const tinySpecText = () => specText('mixtral', { hidden: 32, experts: 8, topK: 2, intermediate: 64, layers: 2 })
  .replace('  dtype = f32\n', '  dtype = f32\n  context = 64\n  quantize experts = int4(group = 32)\n');
const tinyConfig = () => {
  const { config, diagnostics } = checkSpec(tinySpecText(), 'tiny.moe');
  expect(diagnostics).toEqual([]);
  return config!;
};
const LIMIT_TEXT = (limit: number) => `under the ${limit}-byte storage binding limit \\(maxStorageBufferBindingSize, --max-binding\\) one run cannot hold a single token`;

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'moec-binding-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a binding limit too small for one token', () => {
  it('is a `moec compile --max-binding` error naming the limit and the buffer, and no bundle is written', async () => {
    // tiny-mixtral's grouped GEMM rows: 8 experts x 15 rows of tile padding x 120 f32 = 57600 bytes, plus 2 x 120 x 4 a token.
    const out = join(work, 'tight');
    const r = await moec(['compile', TINY_MIXTRAL, '-o', out, '--max-binding', '32768']);
    expect(r.status).toBe(1);
    expect(r.stderrLines).toEqual([expect.stringMatching(new RegExp(`^moec compile: ${TINY_MIXTRAL.replace(/[.]/g, '\\.')}: tiny-mixtral\\.moe_block_0: ` +
      `${LIMIT_TEXT(32768)}: the activation buffer expert_inter \\(f32\\) needs 58560 bytes for one token \\(57600 at any token count plus 960 per token\\); ` +
      'compile for a larger limit'))]);
    const fits = await moec(['compile', TINY_MIXTRAL, '-o', join(work, 'fits'), '--max-binding', '65536']);
    expect([fits.status, fits.stderr]).toEqual([0, '']);
    expect(existsSync(out)).toBe(false);
  });

  it('is an error of the whole-model plan too (what `moec pack` compiles), where the limit shards the experts', async () => {
    const message = new RegExp(`tiny-mixtral: ${LIMIT_TEXT(8192)}: ` +
      'the activation buffer layers\\.0\\.moe\\.expert_inter \\(f32\\) needs 31232 bytes for one token \\(30720 at any token count plus 512 per token\\); compile for a larger limit');
    expect(() => compileModel(tinyConfig(), { maxStorageBufferBindingSize: 8192 })).toThrow(message);
    const spec = join(work, 'tiny.moe');
    writeFileSync(spec, tinySpecText());
    const r = await moec(['pack', spec, '--weights', work, '-o', join(work, 'packed'), '--max-binding', '8192']);
    expect(r.status).toBe(1);
    expect(r.stderrLines).toEqual([expect.stringMatching(new RegExp(`^moec pack: ${spec.replace(/[.]/g, '\\.')}: ${message.source}`))]);
    expect(existsSync(join(work, 'packed'))).toBe(false);
  });
});

describe('the model executor', () => {
  let rt: GpuRuntime;
  beforeAll(async () => {
    rt = await openDevice({ gpu: createNodeGpu() });
  });
  afterAll(() => rt?.destroy());

  it('refuses a plan holding 0 tokens per call before reading a weight', async () => {
    const { plan } = compileModel(tinyConfig(), { maxStorageBufferBindingSize: 65536 });
    expect(plan.maxTokens).toBeGreaterThanOrEqual(1);
    const reads: string[] = [];
    const weights = { readF32: (name: string): Float32Array => { reads.push(name); throw new Error(`read ${name}`); } };
    const refused = createModelExecutor(rt, { ...plan, maxTokens: 0 }, weights);
    await expect(refused).rejects.toThrow(GpuError);
    await expect(refused).rejects.toThrow('tiny-mixtral: the plan holds 0 tokens per call (its activation buffers do not fit the storage binding limit of 65536 bytes it was compiled for); it cannot run');
    expect(reads).toEqual([]);
  });
});
