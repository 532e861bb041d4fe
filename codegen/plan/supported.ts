// What the WebGPU backend runs, for the target description the passes see (legalize-webgpu):
// the lowered opcodes with a kernel (or a weight view) in codegen/plan/kernel-table.ts. The weight
// formats are the registry's (runtime/quant/builtin-formats.ts plus a plugin's, each with a load
// in codegen/kernels/weights/ or the plugin). Kept light: `moec ir` loads it.
export const WEBGPU_OPCODES = [
  'moe.route', 'moe.align', 'moe.grouped_gemm', 'moe.expert_gemv', 'moe.combine', 'moe.round_decide', 'moe.round_apply', 'moe.decode_gate_up', 'moe.decode_down_combine',
  'gemm', 'gemv', 'slice_rows', 'permute_rows', 'dequantize',
  'embed', 'norm', 'add', 'add_norm', 'attention.prepare', 'mla.prepare', 'mla.absorb_q', 'mla.unabsorb', 'attention.attend', 'attention.decode_partials', 'attention.decode_merge',
  'moe.trace_routes',
] as const;
