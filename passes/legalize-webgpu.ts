// The last pass before codegen: names what the target cannot run, with what to change. Every op
// must be one the target has a kernel for (or a weight view), every weight a kernel reads must be
// in a format its loads decode, and the compile options must be ones the lowering implements.
import type { Graph, Op } from '../ir/graph.js';
import { VIEW_OPCODES } from '../ir/ops-lowered.js';
import { weightFormatOf } from '../ir/storage-format.js';
import { isMixed } from '../ir/types.js';
import type { TargetDescription } from '../ir/target.js';
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
  run(module, { target }) {
    for (const f of module.functions) legalizeFunction(f, target);
    return module;
  },
};

/** The grouped gate/up GEMM with expert biases and token rounding's extra slots binds 9 storage buffers. */
function checkRoundingBindings(f: Graph, op: Op, target: TargetDescription): void {
  const needed = 9;
  if (op.opcode !== 'moe.grouped_gemm' || !op.attrs['extras'] || op.attrs['bias'] !== true || op.attrs['epilogue'] !== 'activation') return;
  if (target.limits.maxStorageBuffersPerShaderStage >= needed) return;
  throw new Error(`${f.name}: token_rounding = sonic with expert biases needs ${needed} storage buffers in the gate/up GEMM, the target allows ` +
    `${target.limits.maxStorageBuffersPerShaderStage}; use \`token_rounding = exact\` or compile for an adapter with maxStorageBuffersPerShaderStage >= ${needed}`);
}

function legalizeFunction(f: Graph, target: TargetDescription): void {
  for (const op of f.ops) {
    checkRoundingBindings(f, op, target);
    if (!target.opcodes.includes(op.opcode)) {
      const pass = LOWERED_BY[op.opcode];
      throw new Error(`${f.name}: the WebGPU target has no kernel for ${op.opcode}` + (pass ? ` (the ${pass} pass lowers it; was it disabled?)` : ` (it runs ${target.opcodes.join(', ')})`));
    }
  }
  for (const p of f.params) {
    // Throws for a format the target has no load for; a mixed weight's experts each have theirs.
    const dtype = p.type.dtype;
    if (isMixed(dtype)) dtype.experts.forEach((d) => weightFormatOf({ ...p, type: { ...p.type, dtype: d } }, target.weightFormats));
    else weightFormatOf(p, target.weightFormats);
  }
  // A kernel decodes one format: a weight of several reaches kernels only as one-format slices (shard-experts).
  for (const op of f.ops) {
    const mixed = !VIEW_OPCODES.has(op.opcode) && op.inputs.find((v) => isMixed(v.type.dtype));
    if (mixed) throw new Error(`internal: ${f.name}: ${op.opcode} reads ${mixed.name}, whose experts have several formats (group-experts-by-format and shard-experts slice it)`);
  }
}
