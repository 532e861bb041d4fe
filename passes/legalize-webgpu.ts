// The last pass before codegen: names what the target cannot run, with what to change. Every op
// must be one the target has a kernel for (or a weight view), every weight a kernel reads must be
// in a format its loads decode, and the compile options must be ones the lowering implements.
import type { Graph } from '../ir/graph.js';
import { weightFormatOf } from '../ir/storage-format.js';
import type { TargetDescription } from '../ir/target.js';
import { dtypeName } from '../ir/types.js';
import type { Pass } from './pass.js';

/** Ops a later pass would have removed, and which one. */
const LOWERED_BY: Record<string, string> = {
  'moe.experts': 'lower-routed-experts',
  mlp: 'lower-dense-mlp',
  add: 'fold-shared-expert',
  sigmoid_gate: 'fold-shared-expert',
};

export const legalizeWebgpu: Pass = {
  name: 'legalize-webgpu',
  description: 'Refuse, with what to change, anything the WebGPU target has no kernel or format for.',
  run(module, { config, target }) {
    const rounding = config.compile.tokenRounding.kind;
    if (rounding !== 'exact') {
      throw new Error(`token_rounding = ${rounding} is not supported by the WebGPU MoE kernels yet; set \`token_rounding = exact\` in the compile block`);
    }
    for (const f of module.functions) legalizeFunction(f, target);
    return module;
  },
};

function legalizeFunction(f: Graph, target: TargetDescription): void {
  for (const op of f.ops) {
    if (!target.opcodes.includes(op.opcode)) {
      const pass = LOWERED_BY[op.opcode];
      throw new Error(`${f.name}: the WebGPU target has no kernel for ${op.opcode}` + (pass ? ` (the ${pass} pass lowers it; was it disabled?)` : ` (it runs ${target.opcodes.join(', ')})`));
    }
  }
  for (const p of f.params) {
    const format = weightFormatOf(p);
    if (!target.weightFormats.includes(format.format)) throw new Error(`${p.name} is stored as ${dtypeName(p.type.dtype)}, which the WebGPU kernels cannot decode`);
  }
}
