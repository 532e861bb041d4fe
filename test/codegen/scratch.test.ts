import { test } from 'vitest';
import { openDevice } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { compileMoeBlockPlan } from '../../codegen/moe-block/compile-moe-block.js';
import { blockGraphOf, families, normals, randomWeights, reference, relativeError, seededRandom, HIDDEN } from './moe-fixtures.js';

test('scratch', async () => {
  const rt = await openDevice({ gpu: createNodeGpu() });
  for (const fam of families) {
    const { config, graph } = blockGraphOf(fam);
    const plan = compileMoeBlockPlan(graph, config);
    const random = seededRandom(1);
    const w = randomWeights(graph, random);
    const ex = await createMoeBlockExecutor(rt, plan, { readF32: (n) => w.get(n)! });
    for (const T of [1, 7, 64, 300]) {
      const x = normals(random, T * HIDDEN, 1);
      ex.poisonScratch(T);
      const t0 = performance.now();
      const out = await ex.run(x, T);
      const t1a = performance.now(); await rt.settle(); const t1 = performance.now(); console.log("settle", (t1 - t1a).toFixed(0));
      const ref = reference(graph, x, T, w);
      const t2 = performance.now();
      console.log(fam.name, T, relativeError(out, ref, HIDDEN).toExponential(2), 'gpu', (t1 - t0).toFixed(0), 'cpu', (t2 - t1).toFixed(0));
    }
    ex.destroy();
  }
}, 600000);
