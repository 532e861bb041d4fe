// The lowered decoder (projections as GEMM/GEMV, prepare, MLA absorb/unabsorb, attend or
// flash-decoding partials + merge, the LM head as a matrix op) computes what the model-level
// graph does, call after call with the KV caches kept: a 12-token prefill, decode steps and a
// 3-token chunk, for every family's tiny example. Not bit-identical: MLA runs absorbed and decode
// attention splits the softmax over context chunks.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileModelModule } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph } from '../../ir/build-model.js';
import type { Value } from '../../ir/graph.js';
import { relativeError } from '../../ir/interpret/relative-error.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { ropeSpecOf } from '../../passes/lower-attention.js';
import { buildRopeTable } from '../../runtime/rope-table.js';
import { randomDecoderWeights } from '../support/decoder-weights.js';
import { seededRandom } from '../support/seeded-random.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');
const seed = Number(process.env.MOEC_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`lower-attention-semantics: seed ${seed} (rerun with MOEC_TEST_SEED=${seed})`);

const FAMILIES = ['tiny-mixtral', 'tiny-phimoe', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-olmoe', 'tiny-deepseek-v2', 'tiny-deepseek-v3', 'tiny-gpt-oss'];

describe.each(FAMILIES)('%s: lowered decoder', (name) => {
  it('matches the model-level graph over prefill, decode steps and a chunk', () => {
    // context 300 with 128-key chunks: decode attention spans several chunks, one partly filled.
    const source = readFileSync(join(examples, `${name}.moe`), 'utf8').replace('compile {', 'compile {\n  context = 300');
    const { config, diagnostics } = checkSpec(source, `${name}.moe`);
    expect(diagnostics).toEqual([]);
    const graph = buildModelGraph(config!);
    const weights = randomDecoderWeights(graph, seededRandom(seed));
    const table = buildRopeTable(ropeSpecOf(config!), 300);
    const weight = (p: Value) => (p.role === 'rope' ? table : weights.get(p.name)!);
    const lowered = compileModelModule(config!, { verifyEach: true, target: undefined });
    expect(lowered.functions.map((f) => f.name)).toEqual(['prefill', 'decode']);
    for (const f of lowered.functions) expect(f.ops.some((op) => op.opcode === 'attention' || op.opcode === 'linear')).toBe(false);
    const reference = new ReferenceSession(graph, weight);
    const session = new ReferenceSession(lowered, weight);
    const ids = Array.from({ length: 160 }, (_, i) => (i * 37 + 11) % 256);
    let at = 0;
    for (const n of [140, 1, 1, 3, 1]) {
      const want = reference.forward(ids.slice(at, at + n)).data;
      const got = session.forward(ids.slice(at, at + n)).data;
      expect(relativeError(got, want), `call of ${n} tokens at ${at}`).toBeLessThan(1e-5);
      at += n;
    }
  });
});
