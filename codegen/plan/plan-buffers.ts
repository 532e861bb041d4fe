// The buffers of a plan, read off the lowered IR: one per value a kernel writes (named after the
// value, its block prefix dropped; a shard's result shares its `init`'s buffer), sized by the
// value's type, plus one per weight (a param, one expert shard of it via slice_rows, or its f32
// values via dequantize). Paths share a buffer when they name the same value.
import type { Graph, Op, Value } from '../../ir/graph.js';
import { asTokenDim, isMixed, type Dim, type DType } from '../../ir/types.js';
import { inputsByName, opDefinitions } from '../../ir/ops.js';
import { weightFormatOf } from '../../ir/storage-format.js';
import type { PlanBuffer, PlanBufferRole, PlanBufferWeight, PlanDType, PlanWeight, TokenExpr } from '../../runtime/plan.js';
import { tokenExpr } from '../../runtime/plan.js';
import { builtinFormats } from '../../runtime/quant/builtin-formats.js';
import { packedBytes, type FormatLayouts } from '../../runtime/quant/weight-format.js';

/** Elements of a value of `shape`: at most one dim grows with T; a rounded-up division only in a 1-D shape. */
export function elementsOf(shape: readonly Dim[], what: string): TokenExpr {
  let fixed = 1;
  let symbolic: ReturnType<typeof asTokenDim> | undefined;
  for (const d of shape) {
    if (typeof d === 'number') fixed *= d;
    else if (symbolic) throw new Error(`internal: ${what} has two token-dependent dims`);
    else symbolic = asTokenDim(d);
  }
  if (!symbolic) return tokenExpr(0, fixed);
  if ((symbolic.divisor ?? 1) !== 1 && fixed !== 1) throw new Error(`internal: ${what}: a divided dim must be the only one`);
  return tokenExpr(symbolic.perToken * fixed, symbolic.constant * fixed, symbolic.divisor ?? 1);
}

function planDtype(dtype: DType, what: string): PlanDType {
  if (dtype === 'f32' || dtype === 'f16' || dtype === 'i32' || dtype === 'u32') return dtype;
  throw new Error(`internal: ${what} is ${JSON.stringify(dtype)}, not an activation or index type`);
}

/** a dominates b: at least as many elements at every token count. */
const dominates = (a: TokenExpr, b: TokenExpr) => a.perToken >= b.perToken && a.constant >= b.constant && (a.divisor ?? 1) <= (b.divisor ?? 1);

/** What a plan calls its inputs and outputs: an MoE block's hidden_states / block_out, a model's by value name. */
export interface IoNames {
  input(v: Value): string;
  output(v: Value): string;
}

export const moeBlockIo: IoNames = { input: () => 'hidden_states', output: () => 'block_out' };

export class PlanBuffers {
  readonly buffers: PlanBuffer[] = [];
  readonly weights: PlanWeight[] = [];

  /** `formats`: the target's weight formats, which size the packed weight buffers. */
  constructor(private readonly prefix: string, private readonly formats: FormatLayouts = builtinFormats, private readonly io: IoNames = moeBlockIo) {}

  /** The buffer of every value a function reads or writes, by value id. */
  bind(f: Graph, roles: (op: Op, output: number) => PlanBufferRole): Map<number, string> {
    const names = new Map<number, string>();
    // Each weight view (a param, rows of it, its rows reordered by format, its f32 values) by value id; `rows`: the param row of each view row.
    const sliceOf = new Map<number, WeightView>();
    for (const p of f.params) sliceOf.set(p.id, { param: p, value: p, begin: 0, end: p.type.shape[0] as number, storage: 'packed' });
    for (const v of f.inputs) names.set(v.id, this.activation(this.io.input(v), 'input', v));
    for (const s of f.state ?? []) names.set(s.id, this.activation(s.name, 'state', s));
    // A chain of shard results is one buffer, named after its last value.
    const last = new Map<number, Value>();
    for (const op of [...f.ops].reverse()) {
      const init = op.opcode !== 'slice_rows' && op.inputs.at(-1);
      if (init && op.attrs['init'] === true) last.set(init.id, last.get(op.outputs[0]!.id) ?? op.outputs[0]!);
    }
    for (const op of f.ops) {
      if (op.opcode === 'slice_rows' || op.opcode === 'dequantize' || op.opcode === 'permute_rows') {
        sliceOf.set(op.outputs[0]!.id, viewThrough(op, sliceOf.get(op.inputs[0]!.id)!));
        continue;
      }
      for (const input of op.inputs) {
        const w = sliceOf.get(input.id);
        if (w && !names.has(input.id)) names.set(input.id, this.weight(w));
      }
      const inPlace = opDefinitions[op.opcode]?.inPlace ?? {};
      // Only builtin ops write in place; a plugin's op has no entry in opDefinitions.
      const inputs = Object.keys(inPlace).length > 0 ? inputsByName(op) : {};
      op.outputs.forEach((v, i) => {
        const over = inPlace[i];
        if (over !== undefined) return names.set(v.id, names.get(inputs[over]!.id)!);
        const isOutput = f.outputs.some((o) => o.id === v.id);
        const named = last.get(v.id) ?? v;
        names.set(v.id, isOutput ? this.activation(this.io.output(v), 'output', v) : this.activation(this.shortName(named), roles(op, i), named));
      });
    }
    return names;
  }

  private shortName(v: Value): string {
    return v.name.startsWith(`${this.prefix}.`) ? v.name.slice(this.prefix.length + 1) : v.name;
  }

  private activation(name: string, role: PlanBufferRole, v: Value): string {
    const buffer: PlanBuffer = { name, role, dtype: planDtype(v.type.dtype, v.name), elements: elementsOf(v.type.shape, v.name) };
    const existing = this.buffers.find((b) => b.name === name);
    if (!existing) this.buffers.push(buffer);
    else if (existing.dtype !== buffer.dtype || existing.role !== role) throw new Error(`internal: buffer ${name} is both ${existing.dtype} ${existing.role} and ${buffer.dtype} ${role}`);
    else if (dominates(buffer.elements, existing.elements)) existing.elements = buffer.elements;
    else if (!dominates(existing.elements, buffer.elements)) throw new Error(`internal: the paths size buffer ${name} in ways neither of which holds the other`);
    return name;
  }

  /** A buffer holding rows of a param (a view of it): packed in their format, or their dequantized f32 values. */
  private weight(view: WeightView): string {
    const { param, begin, end, rows } = view;
    // A view's own format: one run of a mixed weight's experts has one (a kernel never reads more).
    const format = weightFormatOf(view.value, this.formats);
    const shape = param.type.shape as number[];
    const dtype = param.type.dtype;
    const expertFormats = isMixed(dtype) ? dtype.experts.map((d) => weightFormatOf({ ...param, type: { ...param.type, dtype: d } }, this.formats)) : undefined;
    const paramFormat = expertFormats?.[0] ?? format;
    const planWeight: PlanWeight = { name: param.name, shape, format: paramFormat, ...(expertFormats ? { expertFormats } : {}), storage: format.format === 'f32' ? 'packed' : view.storage };
    const existing = this.weights.find((w) => w.name === param.name);
    if (existing && existing.storage !== planWeight.storage) throw new Error(`internal: ${param.name} is read both packed and dequantized`);
    if (!existing) this.weights.push(planWeight);
    const whole = !rows && begin === 0 && end === shape[0];
    const inOrder = !rows || rows.every((r, i) => r === rows[0]! + i);
    const first = rows?.[0] ?? begin;
    const name = whole ? param.name : inOrder ? `${param.name}[${first}:${first + end - begin}]` : `${param.name}[${rows!.join(',')}]`;
    const packed = planWeight.storage === 'packed' && format.format !== 'f32';
    // Packed words come per matrix (the last two dims), so only stacked matrices are sliced.
    if (packed && !whole && shape.length < 3) throw new Error(`internal: ${param.name} is packed as one matrix and cannot be sliced`);
    if (!this.buffers.some((b) => b.name === name)) {
      const slice = [end - begin, ...shape.slice(1)];
      const elements = packed ? packedBytes(format, slice, this.formats) / 4 : slice.reduce((n, d) => n * d, 1);
      const weight: PlanBufferWeight = inOrder
        ? { param: param.name, rowBegin: first, rowEnd: first + end - begin }
        : { param: param.name, rowBegin: begin, rowEnd: end, rows };
      if (expertFormats) weight.format = format;
      this.buffers.push({ name, role: 'weight', dtype: packed ? 'u32' : 'f32', elements: tokenExpr(0, elements), weight });
    }
    return name;
  }
}

/** A weight as an op reads it: rows [begin, end) of a view of `param` (`rows`: the param row of each view row, when reordered). */
interface WeightView {
  param: Value;
  /** The view's value: its type has the rows' format. */
  value: Value;
  begin: number;
  end: number;
  rows?: number[];
  storage: PlanWeight['storage'];
}

/** The view an op (slice_rows, permute_rows, dequantize) makes of `source`. */
function viewThrough(op: Op, source: WeightView): WeightView {
  const value = op.outputs[0]!;
  // Its f32 values: the format (the source's) still says what the round trip goes through.
  if (op.opcode === 'dequantize') return { ...source, storage: 'dequantized' };
  const paramRows = source.rows ?? Array.from({ length: source.end - source.begin }, (_, i) => source.begin + i);
  if (op.opcode === 'permute_rows') return { ...source, value, rows: (op.attrs['order'] as number[]).map((i) => paramRows[i]!) };
  const [b, e] = [op.attrs['begin'] as number, op.attrs['end'] as number];
  return source.rows
    ? { ...source, value, begin: source.begin + b, end: source.begin + e, rows: source.rows.slice(b, e) }
    : { ...source, value, begin: source.begin + b, end: source.begin + e };
}
