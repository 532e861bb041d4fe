import { test } from 'vitest';
import { openDevice } from '../../runtime/device.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { compileMoeBlockPlan } from '../../codegen/moe-block/compile-moe-block.js';
import { evalTokenExpr, pathSteps } from '../../runtime/plan.js';
import { uploadF32 } from '../../runtime/buffer-pool.js';
import { compileMoeBlockGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { normals, seededRandom } from './moe-fixtures.js';

const SPEC = `model "b" { hidden = 256
 vocab = 64
 layers = 1
 norm = rmsnorm(eps = 1e-6)
 attention = gqa(heads = 4)
 moe { experts = 8
 top_k = 2
 router = softmax_topk(renormalize = true)
 expert = swiglu(intermediate = 512) } }
compile { target = webgpu
 dtype = f32 }`;

test('profile steps', async () => {
  const rt = await openDevice({ gpu: createNodeGpu() });
  const device = rt.device;
  const config = checkSpec(SPEC, 'b.moe').config!;
  const graph = compileMoeBlockGraph(config, 0);
  const plan = compileMoeBlockPlan(graph, config, process.env.TILE ? { gemmTile: JSON.parse(process.env.TILE) } : {});
  const random = seededRandom(3);
  const w = new Map(graph.params.map((p) => [p.name, normals(random, (p.type.shape as number[]).reduce((a, b) => a * b, 1), 0.06)]));
  const ex = await createMoeBlockExecutor(rt, plan, { readF32: (n) => w.get(n)! });
  const wbufs = new Map(plan.buffers.filter((b) => b.role === 'weight').map((b) => [b.name, uploadF32(device, w.get(b.weight!.param)!, GPUBufferUsage.STORAGE)]));
  for (const T of (process.env.TOKENS ?? '1,8,64,256').split(',').map(Number)) {
    await ex.run(normals(random, T * 256, 1), T);
    const uni = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    for (const step of pathSteps(plan, T)) {
      const k = plan.kernels.find((k) => k.name === step.kernel)!;
      const p = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: k.wgsl }), entryPoint: 'main' } });
      device.queue.writeBuffer(uni, 0, new Uint32Array(step.uniform.words.map((x) => evalTokenExpr(x, T))));
      const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [...step.bindings.map((b) => ({ binding: b.binding, resource: { buffer: wbufs.get(b.buffer) ?? ex.scratchBuffer(b.buffer) } })), { binding: step.uniform.binding, resource: { buffer: uni } }] });
      const once = async (n: number) => {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(p); pass.setBindGroup(0, bg);
        for (let i = 0; i < n; i++) {
          if (step.grid.kind === 'indirect') pass.dispatchWorkgroupsIndirect(ex.scratchBuffer(step.grid.buffer), step.grid.offset);
          else pass.dispatchWorkgroups(evalTokenExpr(step.grid.x, T), evalTokenExpr(step.grid.y, T), evalTokenExpr(step.grid.z, T));
        }
        pass.end();
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
      };
      if (step.label === 'route-align') { continue; }
      await once(1);
      const times: number[] = [];
      for (let r = 0; r < Number(process.env.REPS ?? 7); r++) {
        const c0 = process.cpuUsage();
        await once(1);
        const c = process.cpuUsage(c0);
        times.push((c.user + c.system) / 1000);
      }
      times.sort((a, b) => a - b);
      console.log(`T=${T} ${step.label.padEnd(36)} min ${times[0]!.toFixed(2)} median ${times[times.length >> 1]!.toFixed(2)} cpu-ms`);
    }
  }
}, 600000);
