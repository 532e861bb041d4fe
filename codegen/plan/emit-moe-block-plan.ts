// A lowered MoE block module (compiler/pipeline.ts compileMoeBlockModule) -> the MoeBlockPlan the
// runtime executes: each op of each path through the kernel table, in order; buffers from the
// value types. Nothing here chooses a path, tile, shard or format: the passes did.
import { functionOf, isKindRef, type Graph, type Module, type Op, type Value } from '../../ir/graph.js';
import type { TargetDescription } from '../../ir/target.js';
import type { MoeBlockPlan, PlanBinding, PlanBufferRole, PlanKernel, PlanStep } from '../../runtime/plan.js';
import { dtypeBytes, tokenExpr } from '../../runtime/plan.js';
import { COMBINE_GRID_WIDTH } from '../kernels/combine/combine.js';
import { GEMV_MAX_ROWS } from '../kernels/expert-gemv/expert-gemv.js';
import { gemmThreads } from '../kernels/grouped-gemm/grouped-gemm.js';
import { routerTokensPerWorkgroup } from '../kernels/router/router.js';
import { tileOf, VIEW_OPCODES, type GemmTile } from '../../ir/ops-lowered.js';
import { asTokenDim } from '../../ir/types.js';
import { builtinKernels, type KernelRegistry } from './kernel-registry.js';
import type { KernelEntry } from './kernel-table.js';
import { PlanBuffers } from './plan-buffers.js';

const MAX_WORKGROUPS_PER_DIMENSION = 65535;
const VIEWS = VIEW_OPCODES;

function entryOf(f: Graph, op: Op, kernels: KernelRegistry): KernelEntry {
  const entry = kernels.ops[op.opcode];
  if (!entry) throw new Error(`${f.name}: no WebGPU kernel for ${op.opcode} (legalize-webgpu should have refused it)`);
  return entry;
}

/** `kernels`: what each lowered opcode and router kind renders to (a plugin's registry adds its own). */
export function emitMoeBlockPlan(module: Module, target: TargetDescription, kernels: KernelRegistry = builtinKernels): MoeBlockPlan {
  const prefill = functionOf(module, 'prefill') ?? functionOf(module, 'main');
  if (!prefill) throw new Error(`${module.name}: no prefill function`);
  const decode = functionOf(module, 'decode');
  const decodeMaxTokens = (decode?.attrs?.['max_tokens'] as number | undefined) ?? 0;
  if (decodeMaxTokens > GEMV_MAX_ROWS) throw new Error(`${module.name}: the decode path takes up to ${decodeMaxTokens} tokens, but its GEMV computes at most ${GEMV_MAX_ROWS} rows`);
  const route = prefill.ops.find((op) => op.opcode === 'moe.route');
  if (!route) throw new Error(`${module.name}: an MoE block needs a moe.route op`);
  const layer = /^(layers\.\d+\.moe)\./.exec(route.outputs[0]!.name)?.[1] ?? '';
  const buffers = new PlanBuffers(layer, target.weightFormats);
  const rendered = new Map<string, PlanKernel>();
  const paths = [prefill, ...(decode ? [decode] : [])].map((f) => emitSteps(f, buffers, rendered, kernels));
  const planBuffers = buffers.buffers;
  const tiled = prefill.ops.find((op) => isKindRef(op.attrs['tile'] ?? 0));
  const tile = tiled ? tileOf(tiled.attrs) : target.gemmTile;
  const x = prefill.inputs[0]!;
  const experts = route.attrs['experts'] as number;
  const topK = route.attrs['top_k'] as number;
  const maxBinding = target.limits.maxStorageBufferBindingSize;
  for (const w of planBuffers.filter((b) => b.role === 'weight')) {
    if (w.elements.constant * 4 > maxBinding) throw new Error(`${w.name} is ${w.elements.constant * 4} bytes, more than the ${maxBinding}-byte storage binding limit; only routed experts are sharded`);
  }
  // Grouped GEMM blocks: the sorted rows (perToken T + constant, moe.align's type) / BM per grid row.
  const align = prefill.ops.find((op) => op.opcode === 'moe.align');
  const sortedRows = align ? asTokenDim(align.outputs[0]!.type.shape[0]!) : { perToken: topK, constant: experts * (tile.bm - 1) };
  const tokensPerRun = maxTokens(planBuffers, maxBinding, { sortedRows, BM: tile.bm, routerTile: routerTokensPerWorkgroup(experts) });
  if (tokensPerRun < 1) throw new Error(`${module.name}: ${noTokenFits(planBuffers, maxBinding)}`);
  const steps = paths.flat();
  return {
    format: 'moec.moe-block-plan',
    version: 1,
    name: module.name,
    hidden: x.type.shape[1] as number,
    experts,
    topK,
    input: 'hidden_states',
    output: 'block_out',
    weights: buffers.weights,
    buffers: planBuffers,
    kernels: [...rendered.values()],
    prefill: paths[0]!,
    decode: paths[1] ?? paths[0]!,
    decodeMaxTokens,
    maxTokens: tokensPerRun,
    requires: planRequires(steps, rendered, maxBinding, tile),
    ...(x.type.dtype === 'f16' ? { features: ['shader-f16'] } : {}),
  };
}

/** The device limits a plan's steps and kernels need (checked by the executors). */
export function planRequires(steps: PlanStep[], rendered: Map<string, PlanKernel>, maxBinding: number, tile: GemmTile): MoeBlockPlan['requires'] {
  return {
    maxStorageBufferBindingSize: maxBinding,
    maxStorageBuffersPerShaderStage: Math.max(...steps.map((s) => s.bindings.length)),
    maxComputeWorkgroupStorageSize: 16384,
    maxComputeInvocationsPerWorkgroup: Math.max(...[...rendered.values()].map((k) => k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2]), gemmThreads(tile)),
  };
}

/** Each op of `f` through the kernel table, in order (views skipped); kernels rendered once by name into `rendered`. */
export function emitSteps(f: Graph, buffers: PlanBuffers, rendered: Map<string, PlanKernel>, kernels: KernelRegistry): PlanStep[] {
  const producers = new Map<number, Op>();
  for (const op of f.ops) for (const v of op.outputs) producers.set(v.id, op);
  const roles = (op: Op, output: number): PlanBufferRole => (op.opcode === 'moe.align' && output === 2 ? 'indirect' : 'scratch');
  const names = buffers.bind(f, roles);
  const buffer = (v: Value) => {
    const name = names.get(v.id);
    if (!name) throw new Error(`internal: %${v.name} has no buffer`);
    return name;
  };
  const context = { producer: (v: Value) => producers.get(v.id), routers: kernels.routers, weightLoads: kernels.weightLoads, activations: kernels.activations };
  return f.ops.filter((op) => !VIEWS.has(op.opcode)).map((op) => {
    const entry = entryOf(f, op, kernels);
    const kernel = entry.render(op, context);
    const existing = rendered.get(kernel.name);
    if (existing && existing.wgsl !== kernel.wgsl) throw new Error(`internal: two different kernels named ${kernel.name}`);
    rendered.set(kernel.name, { name: kernel.name, wgsl: kernel.wgsl, entryPoint: kernel.entryPoint, workgroupSize: kernel.workgroupSize });
    const values = entry.bindings(op);
    const bindings: PlanBinding[] = kernel.bindings.map((b) => {
      const v = values[b.name];
      if (!v) throw new Error(`internal: ${op.opcode} leaves binding ${b.name} of ${kernel.name} unbound`);
      return { binding: b.binding, buffer: buffer(v), access: b.access };
    });
    const extra = Object.keys(values).filter((n) => !kernel.bindings.some((b) => b.name === n));
    if (extra.length) throw new Error(`internal: ${op.opcode} binds ${extra.join(', ')}, which ${kernel.name} does not declare`);
    const words = entry.words?.(op) ?? [tokenExpr(1), tokenExpr(0), tokenExpr(0), tokenExpr(0)];
    return { label: entry.label(op), kernel: kernel.name, bindings, uniform: { binding: kernel.uniformBinding, words }, grid: entry.grid(op, buffer) };
  });
}

/** Tokens a buffer's elements leave room for in one binding (negative when its fixed part alone is too large). */
const tokensInBinding = (buffer: MoeBlockPlan['buffers'][number], maxBinding: number): number =>
  Math.floor(((maxBinding / dtypeBytes(buffer.dtype)) * (buffer.elements.divisor ?? 1) - buffer.elements.constant) / buffer.elements.perToken);

/**
 * Why maxTokens came out 0, for a compile error: the activation buffer that leaves room for the
 * fewest tokens under `maxBinding`, and the bytes it needs for one.
 */
export function noTokenFits(buffers: MoeBlockPlan['buffers'], maxBinding: number): string {
  const limit = `under the ${maxBinding}-byte storage binding limit (maxStorageBufferBindingSize, --max-binding) one run cannot hold a single token`;
  const tightest = buffers.filter((b) => b.elements.perToken > 0).sort((a, b) => tokensInBinding(a, maxBinding) - tokensInBinding(b, maxBinding))[0];
  if (!tightest || tokensInBinding(tightest, maxBinding) >= 1) return `${limit}: a kernel's grid would exceed ${MAX_WORKGROUPS_PER_DIMENSION} workgroups`;
  const e = tightest.elements;
  const bytes = (elements: number) => Math.ceil(elements / (e.divisor ?? 1)) * dtypeBytes(tightest.dtype);
  const parts = e.constant > 0 ? ` (${bytes(e.constant)} at any token count plus ${bytes(e.perToken)} per token)` : '';
  return `${limit}: the activation buffer ${tightest.name} (${tightest.dtype}) needs ${bytes(e.constant + e.perToken)} bytes for one token${parts}; ` +
    'compile for a larger limit (an adapter with a larger maxStorageBufferBindingSize)';
}

/** The largest token count whose buffers fit one binding and whose grids fit 65535 workgroups. */
export function maxTokens(buffers: MoeBlockPlan['buffers'], maxBinding: number, g: { sortedRows: { perToken: number; constant: number }; BM: number; routerTile: number }): number {
  const caps = [MAX_WORKGROUPS_PER_DIMENSION * g.routerTile, MAX_WORKGROUPS_PER_DIMENSION * g.BM, COMBINE_GRID_WIDTH * MAX_WORKGROUPS_PER_DIMENSION];
  caps.push(Math.floor((MAX_WORKGROUPS_PER_DIMENSION * g.BM - g.sortedRows.constant) / g.sortedRows.perToken));
  for (const buffer of buffers) if (buffer.elements.perToken > 0) caps.push(tokensInBinding(buffer, maxBinding));
  return Math.max(0, Math.min(...caps));
}
