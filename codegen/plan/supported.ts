// What the WebGPU backend runs, for the target description the passes see (legalize-webgpu):
// the lowered opcodes with a kernel (or a weight view) in codegen/plan/kernel-table.ts, and the
// weight formats with a load template in codegen/kernels/weights/. Kept light: `moec ir` loads it.
export const WEBGPU_OPCODES = ['moe.route', 'moe.align', 'moe.grouped_gemm', 'moe.expert_gemv', 'moe.combine', 'moe.decode_gate_up', 'moe.decode_down_combine', 'gemm', 'gemv', 'slice_rows', 'dequantize'] as const;

export const WEBGPU_WEIGHT_FORMATS = ['f32', 'f16', 'bf16', 'int8', 'int4', 'mxfp4'] as const;
