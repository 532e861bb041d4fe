// MoE block graph -> MoeBlockPlan: picks and renders the kernels of both paths (decoding each
// weight's storage format), shards the expert weights to fit a storage binding at their packed
// size, sizes every buffer as a function of the token count and lists the dispatch steps.
//
//   prefill: router -> route-align -> grouped gate/up (per shard, indirect) -> grouped down
//            (per shard, indirect) [-> shared gate/up -> shared down] -> combine
//   decode:  router -> expert gate/up GEMV (per shard) -> expert down GEMV (per shard)
//            [-> shared gate/up GEMV -> shared down GEMV] -> combine
import type { Graph, Value } from '../../ir/graph.js';
import type { ModelConfig } from '../../ir/model-config.js';
import { DEFAULT_LIMITS } from '../../runtime/device.js';
import type { MoeBlockPlan, PlanBinding, PlanBuffer, PlanDType, PlanGrid, PlanKernel, PlanStep, PlanWeight, TokenExpr } from '../../runtime/plan.js';
import { dtypeBytes, tokenExpr } from '../../runtime/plan.js';
import { packedBytes, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { COMBINE_GRID_WIDTH, renderCombineKernel } from '../kernels/combine/combine.js';
import { GEMV_MAX_ROWS, GEMV_ROWS, renderGemvKernel } from '../kernels/expert-gemv/expert-gemv.js';
import { DEFAULT_GEMM_TILE, gemmThreads, renderGemmKernel, type GemmTile } from '../kernels/grouped-gemm/grouped-gemm.js';
import type { RenderedKernel } from '../kernels/kernel.js';
import { renderRouteAlignKernel } from '../kernels/route-align/route-align.js';
import { renderRouterKernel, routerTokensPerWorkgroup } from '../kernels/router/router.js';
import { readMoeBlock, type MlpParams, type MoeBlockParts } from './read-moe-block.js';
import { planWeightOf, weightFormatOf } from './weight-formats.js';

const MAX_WORKGROUPS_PER_DIMENSION = 65535;
/** Token counts up to this run the decode path (its GEMVs serve at most GEMV_MAX_ROWS tokens). */
export const DECODE_MAX_TOKENS = 8;

export interface CompileMoeBlockOptions {
  /** Largest storage binding the plan may use (default: WebGPU's 128 MiB). Expert weights are sharded to fit. */
  maxStorageBufferBindingSize?: number;
  gemmTile?: GemmTile;
}

const T = tokenExpr(1);
const constant = (n: number): TokenExpr => tokenExpr(0, n);
const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

/** First expert of each shard: as many experts per shard as fit one binding. */
export function shardExperts(experts: number, bytesPerExpert: number, maxBinding: number, what: string): number[] {
  const perShard = Math.floor(maxBinding / bytesPerExpert);
  if (perShard < 1) {
    throw new Error(
      `${what}: one expert's matrix is ${bytesPerExpert} bytes, more than the ${maxBinding}-byte storage binding limit; ` +
        'splitting a single expert across bindings is not supported yet',
    );
  }
  return Array.from({ length: ceilDiv(experts, perShard) }, (_, s) => s * perShard);
}

class PlanBuilder {
  readonly buffers: PlanBuffer[] = [];
  readonly weights: PlanWeight[] = [];
  readonly kernels = new Map<string, PlanKernel>();

  buffer(name: string, role: PlanBuffer['role'], dtype: PlanDType, elements: TokenExpr): string {
    this.buffers.push({ name, role, dtype, elements });
    return name;
  }

  /**
   * A buffer holding rows [rowBegin, rowEnd) of an IR param (all rows by default): packed in the
   * param's format for kernels that decode it, or dequantized f32 for those that read f32.
   */
  weight(param: Value, storage: PlanWeight['storage'], rowBegin?: number, rowEnd?: number): string {
    const planWeight = planWeightOf(param, storage);
    const existing = this.weights.find((w) => w.name === param.name);
    if (existing && existing.storage !== planWeight.storage) throw new Error(`internal: ${param.name} is read both packed and dequantized`);
    if (!existing) this.weights.push(planWeight);
    const { shape, format } = planWeight;
    const begin = rowBegin ?? 0;
    const end = rowEnd ?? shape[0]!;
    const whole = begin === 0 && end === shape[0];
    const name = whole ? param.name : `${param.name}[${begin}:${end}]`;
    const packed = planWeight.storage === 'packed' && format.format !== 'f32';
    // Packed words come per matrix (the last two dims), so only stacked matrices are sliced.
    if (packed && !whole && shape.length < 3) throw new Error(`internal: ${param.name} is packed as one matrix and cannot be sliced`);
    if (!this.buffers.some((b) => b.name === name)) {
      const slice = [end - begin, ...shape.slice(1)];
      const elements = packed ? packedBytes(format, slice) / 4 : slice.reduce((n, d) => n * d, 1);
      this.buffers.push({ name, role: 'weight', dtype: packed ? 'u32' : 'f32', elements: constant(elements), weight: { param: param.name, rowBegin: begin, rowEnd: end } });
    }
    return name;
  }

  step(label: string, kernel: RenderedKernel, buffers: Record<string, string>, grid: PlanGrid, words: TokenExpr[] = [T, constant(0), constant(0), constant(0)]): PlanStep {
    const { wgsl, entryPoint, workgroupSize, name } = kernel;
    const existing = this.kernels.get(name);
    if (existing && existing.wgsl !== wgsl) throw new Error(`internal: two different kernels named ${name}`);
    this.kernels.set(name, { name, wgsl, entryPoint, workgroupSize });
    const bindings: PlanBinding[] = kernel.bindings.map((b) => {
      const buffer = buffers[b.name];
      if (!buffer) throw new Error(`internal: step ${label} leaves binding ${b.name} of ${name} unbound`);
      return { binding: b.binding, buffer, access: b.access };
    });
    const extra = Object.keys(buffers).filter((n) => !kernel.bindings.some((b) => b.name === n));
    if (extra.length) throw new Error(`internal: step ${label} binds ${extra.join(', ')}, which ${name} does not declare`);
    return { label, kernel: name, bindings, uniform: { binding: kernel.uniformBinding, words }, grid };
  }
}

interface ExpertShard {
  index: number;
  begin: number;
  end: number;
  gate: string;
  up: string;
  down: string;
  bias?: { gate: string; up: string; down: string };
}

function fixedGrid(x: TokenExpr, y: TokenExpr = constant(1), z: TokenExpr = constant(1)): PlanGrid {
  return { kind: 'fixed', x, y, z };
}

function shardWords(shard: ExpertShard): TokenExpr[] {
  return [T, constant(shard.begin), constant(shard.end), constant(shard.index)];
}

function mlpBuffers(b: PlanBuilder, mlp: MlpParams): { gate: string; up: string; down: string; bias?: { gate: string; up: string; down: string } } {
  const buffers = { gate: b.weight(mlp.gate, 'packed'), up: b.weight(mlp.up, 'packed'), down: b.weight(mlp.down, 'packed') };
  return mlp.bias ? { ...buffers, bias: { gate: b.weight(mlp.bias.gate, 'packed'), up: b.weight(mlp.bias.up, 'packed'), down: b.weight(mlp.bias.down, 'packed') } } : buffers;
}

/** The one storage format of an MLP's matrices (gate and up share a kernel's binding type). */
export function mlpFormat(mlp: MlpParams): WeightFormat {
  const formats = [mlp.gate, mlp.up, mlp.down].map(weightFormatOf);
  if (new Set(formats.map((f) => JSON.stringify(f))).size > 1) throw new Error(`internal: ${mlp.gate.name}, ${mlp.up.name} and ${mlp.down.name} differ in format`);
  return formats[0]!;
}

export function compileMoeBlockPlan(graph: Graph, config: ModelConfig, options: CompileMoeBlockOptions = {}): MoeBlockPlan {
  const parts = readMoeBlock(graph, config);
  const maxBinding = options.maxStorageBufferBindingSize ?? DEFAULT_LIMITS.maxStorageBufferBindingSize;
  if (DECODE_MAX_TOKENS > GEMV_MAX_ROWS) {
    throw new Error(`internal: the decode path takes up to ${DECODE_MAX_TOKENS} tokens, but its GEMV computes at most ${GEMV_MAX_ROWS} rows (GEMV_MAX_ROWS)`);
  }
  const tile = options.gemmTile ?? DEFAULT_GEMM_TILE;
  const { hidden: H, experts: E, topK: K } = parts;
  const I = parts.routed.intermediate;
  const BM = tile.bm;
  const b = new PlanBuilder();

  // Weights. Expert matrices are sharded along E (at their packed size); everything else must fit one binding.
  const expertFormat = mlpFormat(parts.routed);
  const expertBytes = Math.max(packedBytes(expertFormat, [1, I, H]), packedBytes(expertFormat, [1, H, I]));
  const shardBegins = shardExperts(E, expertBytes, maxBinding, `${parts.routed.gate.name} [${E}, ${I}, ${H}] ${expertFormat.format}`);
  const shards: ExpertShard[] = shardBegins.map((begin, index) => {
    const end = shardBegins[index + 1] ?? E;
    const r = parts.routed;
    const slice = (v: Value) => b.weight(v, 'packed', begin, end);
    const shard: ExpertShard = { index, begin, end, gate: slice(r.gate), up: slice(r.up), down: slice(r.down) };
    if (r.bias) shard.bias = { gate: slice(r.bias.gate), up: slice(r.bias.up), down: slice(r.bias.down) };
    return shard;
  });
  // The router and shared-expert gate kernels read f32: a quantized one is uploaded dequantized.
  const routerWeight = b.weight(parts.routerWeight, 'dequantized');
  const routerBias = parts.routerBias && b.weight(parts.routerBias, 'packed');
  const correctionBias = parts.correctionBias && b.weight(parts.correctionBias, 'packed');
  const shared = parts.shared && mlpBuffers(b, parts.shared);
  const sharedGate = parts.sharedGate && b.weight(parts.sharedGate, 'dequantized');
  for (const w of b.buffers.filter((w) => w.role === 'weight')) {
    if (w.elements.constant * 4 > maxBinding) throw new Error(`${w.name} is ${w.elements.constant * 4} bytes, more than the ${maxBinding}-byte storage binding limit; only routed experts are sharded`);
  }

  // Activations and bookkeeping, sized for T tokens. Padded expert rows: at most T K + E (BM - 1).
  const S = shards.length;
  const paddedRows = tokenExpr(K, E * (BM - 1));
  const act = parts.act; // activations between kernels: f32, or f16 (the bookkeeping and routing weights stay 32-bit)
  const input = b.buffer('hidden_states', 'input', act, tokenExpr(H));
  const output = b.buffer('block_out', 'output', act, tokenExpr(H));
  const routeIds = b.buffer('route_ids', 'scratch', 'i32', tokenExpr(K));
  const routingWeights = b.buffer('routing_weights', 'scratch', 'f32', tokenExpr(K));
  const sortedSlots = b.buffer('sorted_slots', 'scratch', 'i32', paddedRows);
  const routeMeta = b.buffer('route_meta', 'scratch', 'u32', tokenExpr(K, E * (BM - 1) + S * BM, BM));
  const dispatchArgs = b.buffer('dispatch_args', 'indirect', 'u32', constant(6 * S));
  const expertInter = b.buffer('expert_inter', 'scratch', act, tokenExpr(K * I, E * (BM - 1) * I));
  const slotOut = b.buffer('slot_out', 'scratch', act, tokenExpr(K * H));
  const Is = parts.shared?.intermediate ?? 0;
  const sharedInter = parts.shared && b.buffer('shared_inter', 'scratch', act, tokenExpr(Is));
  const sharedOut = parts.shared && b.buffer('shared_out', 'scratch', act, tokenExpr(H));

  // Router and combine: the same on both paths.
  const routerKernel = renderRouterKernel({ act, hidden: H, experts: E, topK: K, router: parts.router, bias: !!routerBias, correctionBias: !!correctionBias });
  const routerBuffers: Record<string, string> = { x: input, router_weight: routerWeight, route_ids: routeIds, route_weights: routingWeights };
  if (routerBias) routerBuffers['router_bias'] = routerBias;
  if (correctionBias) routerBuffers['correction_bias'] = correctionBias;
  const routerStep = b.step('router', routerKernel, routerBuffers, fixedGrid(tokenExpr(1, 0, routerTokensPerWorkgroup(E))));
  const combineKernel = renderCombineKernel({ act, hidden: H, topK: K, shared: !!shared, sharedGate: !!sharedGate });
  const combineBuffers: Record<string, string> = { route_ids: routeIds, slot_out: slotOut, out: output };
  if (sharedOut) combineBuffers['shared_out'] = sharedOut;
  if (sharedGate) Object.assign(combineBuffers, { x: input, shared_gate_weight: sharedGate });
  const combineStep = b.step('combine', combineKernel, combineBuffers, fixedGrid(tokenExpr(1, 0, 1, COMBINE_GRID_WIDTH), tokenExpr(1, 0, COMBINE_GRID_WIDTH)));

  const prefill = [routerStep, ...prefillExpertSteps(b, parts, tile, shards, { input, routeIds, routingWeights, sortedSlots, routeMeta, dispatchArgs, expertInter, slotOut })];
  const decode = [routerStep, ...decodeExpertSteps(b, parts, shards, { input, routeIds, routingWeights, expertInter, slotOut })];
  if (parts.shared && shared && sharedInter && sharedOut) {
    prefill.push(...sharedGemmSteps(b, parts, parts.shared, tile, shared, { input, sharedInter, sharedOut }));
    decode.push(...sharedGemvSteps(b, parts, parts.shared, shared, { input, sharedInter, sharedOut }));
  }
  prefill.push(combineStep);
  decode.push(combineStep);
  const tokensPerRun = maxTokens(b.buffers, maxBinding, { K, E, BM, routerTile: routerTokensPerWorkgroup(E) });
  if (tokensPerRun < 1) {
    throw new Error(`${parts.name}: under the ${maxBinding}-byte storage binding limit one run cannot hold a single token ` +
      `(the per-expert activation buffers take most of a binding); compile for an adapter with a larger maxStorageBufferBindingSize`);
  }

  return {
    format: 'moec.moe-block-plan',
    version: 1,
    name: parts.name,
    hidden: H,
    experts: E,
    topK: K,
    input,
    output,
    weights: b.weights,
    buffers: b.buffers,
    kernels: [...b.kernels.values()],
    prefill,
    decode,
    decodeMaxTokens: DECODE_MAX_TOKENS,
    maxTokens: tokensPerRun,
    requires: {
      maxStorageBufferBindingSize: maxBinding,
      maxStorageBuffersPerShaderStage: Math.max(...[...b.kernels.values()].map((k) => storageCount(k, prefill, decode))),
      maxComputeWorkgroupStorageSize: 16384,
      maxComputeInvocationsPerWorkgroup: Math.max(...[...b.kernels.values()].map((k) => k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2]), gemmThreads(tile)),
    },
    ...(act === 'f16' ? { features: ['shader-f16'] } : {}),
  };
}

function storageCount(kernel: PlanKernel, ...paths: PlanStep[][]): number {
  const step = paths.flat().find((s) => s.kernel === kernel.name);
  return step ? step.bindings.length : 0;
}

function prefillExpertSteps(
  b: PlanBuilder,
  parts: MoeBlockParts,
  tile: GemmTile,
  shards: ExpertShard[],
  buf: { input: string; routeIds: string; routingWeights: string; sortedSlots: string; routeMeta: string; dispatchArgs: string; expertInter: string; slotOut: string },
): PlanStep[] {
  const { hidden: H, experts: E, topK: K, routed, act } = parts;
  const I = routed.intermediate;
  const bias = !!routed.bias;
  const align = renderRouteAlignKernel({ experts: E, topK: K, blockRows: tile.bm, shardBegins: shards.map((s) => s.begin), gateUpTiles: ceilDiv(I, tile.bn), downTiles: ceilDiv(H, tile.bn) });
  const weights = mlpFormat(routed);
  const gateUp = renderGemmKernel({ act, gateup: true, grouped: true, bias, weighted: false, kdim: H, ndim: I, topK: K, shards: shards.length, activation: routed.activation, tile, weights });
  const down = renderGemmKernel({ act, gateup: false, grouped: true, bias, weighted: true, kdim: I, ndim: H, topK: K, shards: shards.length, tile, weights });
  const steps = [
    b.step('route-align', align, { route_ids: buf.routeIds, sorted_slots: buf.sortedSlots, route_meta: buf.routeMeta, dispatch_args: buf.dispatchArgs }, fixedGrid(constant(1))),
  ];
  for (const shard of shards) {
    const buffers: Record<string, string> = { a: buf.input, sorted_slots: buf.sortedSlots, route_meta: buf.routeMeta, w0: shard.gate, w1: shard.up, out: buf.expertInter };
    if (shard.bias) Object.assign(buffers, { b0: shard.bias.gate, b1: shard.bias.up });
    steps.push(b.step(`experts gate/up [${shard.begin}, ${shard.end})`, gateUp, buffers, { kind: 'indirect', buffer: buf.dispatchArgs, offset: 24 * shard.index }, shardWords(shard)));
  }
  for (const shard of shards) {
    const buffers: Record<string, string> = { a: buf.expertInter, sorted_slots: buf.sortedSlots, route_meta: buf.routeMeta, w0: shard.down, routing_weights: buf.routingWeights, out: buf.slotOut };
    if (shard.bias) buffers['b0'] = shard.bias.down;
    steps.push(b.step(`experts down [${shard.begin}, ${shard.end})`, down, buffers, { kind: 'indirect', buffer: buf.dispatchArgs, offset: 24 * shard.index + 12 }, shardWords(shard)));
  }
  return steps;
}

function decodeExpertSteps(
  b: PlanBuilder,
  parts: MoeBlockParts,
  shards: ExpertShard[],
  buf: { input: string; routeIds: string; routingWeights: string; expertInter: string; slotOut: string },
): PlanStep[] {
  const { hidden: H, topK: K, routed, act } = parts;
  const I = routed.intermediate;
  const bias = !!routed.bias;
  const weights = mlpFormat(routed);
  const gateUp = renderGemvKernel({ act, gateup: true, grouped: true, bias, weighted: false, kdim: H, ndim: I, topK: K, activation: routed.activation, maxRows: GEMV_MAX_ROWS, weights });
  const down = renderGemvKernel({ act, gateup: false, grouped: true, bias, weighted: true, kdim: I, ndim: H, topK: K, maxRows: GEMV_MAX_ROWS, weights });
  const steps: PlanStep[] = [];
  for (const shard of shards) {
    const buffers: Record<string, string> = { a: buf.input, route_ids: buf.routeIds, w0: shard.gate, w1: shard.up, out: buf.expertInter };
    if (shard.bias) Object.assign(buffers, { b0: shard.bias.gate, b1: shard.bias.up });
    steps.push(b.step(`experts gate/up GEMV [${shard.begin}, ${shard.end})`, gateUp, buffers, fixedGrid(constant(ceilDiv(I, GEMV_ROWS)), constant(K), T), shardWords(shard)));
  }
  for (const shard of shards) {
    const buffers: Record<string, string> = { a: buf.expertInter, route_ids: buf.routeIds, w0: shard.down, routing_weights: buf.routingWeights, out: buf.slotOut };
    if (shard.bias) buffers['b0'] = shard.bias.down;
    steps.push(b.step(`experts down GEMV [${shard.begin}, ${shard.end})`, down, buffers, fixedGrid(constant(ceilDiv(H, GEMV_ROWS)), constant(K), T), shardWords(shard)));
  }
  return steps;
}

type SharedBuffers = { gate: string; up: string; down: string; bias?: { gate: string; up: string; down: string } };

function sharedGemmSteps(b: PlanBuilder, parts: MoeBlockParts, mlp: MlpParams, tile: GemmTile, w: SharedBuffers, buf: { input: string; sharedInter: string; sharedOut: string }): PlanStep[] {
  const { hidden: H, topK: K, act } = parts;
  const Is = mlp.intermediate;
  const bias = !!mlp.bias;
  const weights = mlpFormat(mlp);
  const gateUp = renderGemmKernel({ act, gateup: true, grouped: false, bias, weighted: false, kdim: H, ndim: Is, topK: K, shards: 1, activation: mlp.activation, tile, weights });
  const down = renderGemmKernel({ act, gateup: false, grouped: false, bias, weighted: false, kdim: Is, ndim: H, topK: K, shards: 1, tile, weights });
  const gateUpBuffers: Record<string, string> = { a: buf.input, w0: w.gate, w1: w.up, out: buf.sharedInter };
  if (w.bias) Object.assign(gateUpBuffers, { b0: w.bias.gate, b1: w.bias.up });
  const downBuffers: Record<string, string> = { a: buf.sharedInter, w0: w.down, out: buf.sharedOut };
  if (w.bias) downBuffers['b0'] = w.bias.down;
  const rows = tokenExpr(1, 0, tile.bm);
  return [
    b.step('shared gate/up', gateUp, gateUpBuffers, fixedGrid(constant(ceilDiv(Is, tile.bn)), rows)),
    b.step('shared down', down, downBuffers, fixedGrid(constant(ceilDiv(H, tile.bn)), rows)),
  ];
}

function sharedGemvSteps(b: PlanBuilder, parts: MoeBlockParts, mlp: MlpParams, w: SharedBuffers, buf: { input: string; sharedInter: string; sharedOut: string }): PlanStep[] {
  const { hidden: H, topK: K, act } = parts;
  const Is = mlp.intermediate;
  const bias = !!mlp.bias;
  const weights = mlpFormat(mlp);
  const gateUp = renderGemvKernel({ act, gateup: true, grouped: false, bias, weighted: false, kdim: H, ndim: Is, topK: K, activation: mlp.activation, maxRows: GEMV_MAX_ROWS, weights });
  const down = renderGemvKernel({ act, gateup: false, grouped: false, bias, weighted: false, kdim: Is, ndim: H, topK: K, maxRows: GEMV_MAX_ROWS, weights });
  const gateUpBuffers: Record<string, string> = { a: buf.input, w0: w.gate, w1: w.up, out: buf.sharedInter };
  if (w.bias) Object.assign(gateUpBuffers, { b0: w.bias.gate, b1: w.bias.up });
  const downBuffers: Record<string, string> = { a: buf.sharedInter, w0: w.down, out: buf.sharedOut };
  if (w.bias) downBuffers['b0'] = w.bias.down;
  return [
    b.step('shared gate/up GEMV', gateUp, gateUpBuffers, fixedGrid(constant(ceilDiv(Is, GEMV_ROWS)))),
    b.step('shared down GEMV', down, downBuffers, fixedGrid(constant(ceilDiv(H, GEMV_ROWS)))),
  ];
}

/** The largest token count whose buffers fit one binding and whose grids fit 65535 workgroups. */
function maxTokens(buffers: PlanBuffer[], maxBinding: number, g: { K: number; E: number; BM: number; routerTile: number }): number {
  const caps = [MAX_WORKGROUPS_PER_DIMENSION * g.routerTile, MAX_WORKGROUPS_PER_DIMENSION * g.BM, COMBINE_GRID_WIDTH * MAX_WORKGROUPS_PER_DIMENSION];
  // Grouped GEMM blocks: (T K + E (BM - 1)) / BM per y dimension.
  caps.push(Math.floor((MAX_WORKGROUPS_PER_DIMENSION * g.BM - g.E * (g.BM - 1)) / g.K));
  for (const buffer of buffers) {
    const e = buffer.elements;
    if (e.perToken <= 0) continue;
    caps.push(Math.floor(((maxBinding / dtypeBytes(buffer.dtype)) * (e.divisor ?? 1) - e.constant) / e.perToken));
  }
  return Math.max(0, Math.min(...caps));
}
