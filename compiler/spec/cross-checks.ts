// Checks that span fields and blocks: top_k against experts, layer rules against the layer
// count, quantization groups against the dimensions they reduce over.
import { isMoeLayer, numParam, type KindRef, type ModelConfig, type QuantTarget } from '../../ir/model-config.js';
import type { Block, Expr, Span } from './ast.js';
import { diagnostic, type Diagnostic } from './diagnostics.js';
import type { BlockValues } from './validate.js';

export interface ConsistencyInput {
  file: string;
  model: Block;
  moe: BlockValues | undefined;
  compile: BlockValues | undefined;
  diagnostics: Diagnostic[];
}

export function checkModelConsistency(config: ModelConfig, input: ConsistencyInput): void {
  const report = (span: Span, message: string, hint?: string) => input.diagnostics.push(diagnostic(input.file, span, message, hint));
  const moe = config.moe;
  const moeField = (name: string) => input.moe?.fields.get(name);
  if (moe) {
    if (moe.topK > moe.experts) report(moeField('top_k')!.value.span, `top_k = ${moe.topK} is more than experts = ${moe.experts}`, `allowed range: 1..${moe.experts}`);
    if (moe.firstLayer >= config.layers) report(moeField('first_layer')!.value.span, `first_layer = ${moe.firstLayer} leaves no MoE layer in a ${config.layers}-layer model`, `allowed range: 0..${config.layers - 1}`);
    if (moe.offset >= moe.every) report(moeField('offset')!.value.span, `offset = ${moe.offset} never matches with every = ${moe.every}`, `allowed range: 0..${moe.every - 1}`);
    const bad = moe.denseLayers.find((l) => l >= config.layers);
    if (bad !== undefined) report(moeField('dense_layers')!.value.span, `dense_layers names layer ${bad}, but the model has layers 0..${config.layers - 1}`);
    if (moe.sharedGate === 'sigmoid' && !moe.shared) report(moeField('shared_gate')!.value.span, 'shared_gate needs a shared expert', 'add `shared = swiglu(intermediate = ...)` or remove shared_gate');
  }
  const denseLayer = Array.from({ length: config.layers }, (_, i) => i).find((i) => !isMoeLayer(config, i));
  if (denseLayer !== undefined && !config.dense) {
    report(input.model.typeSpan, `layer ${denseLayer} is not an MoE layer, so the model needs a \`dense { mlp = ... }\` block`, 'add `dense { mlp = swiglu(intermediate = ...) }` inside the model block');
  }
  for (const [target, { value, field }] of input.compile?.qualified ?? []) {
    checkQuantGroup(config, target as QuantTarget, value, groupSpan(field.value), report);
  }
}

/** The span of `group = n` inside a quantization call, or the whole value. */
function groupSpan(expr: Expr): Span {
  if (expr.kind === 'call') return expr.args.find((a) => a.name === 'group')?.span ?? expr.span;
  return expr.span;
}

/** The input widths of the matmuls whose weights a quantization target covers. */
export function reducedDimensions(config: ModelConfig, target: QuantTarget): number[] {
  const width = (ref: KindRef | undefined) => (ref ? [numParam(ref, 'intermediate')] : []);
  const a = config.attention;
  switch (target) {
    case 'experts': return [config.hidden, ...width(config.moe?.expert)];
    case 'shared': return [config.hidden, ...width(config.moe?.shared)];
    case 'dense': return [config.hidden, ...width(config.dense?.mlp)];
    case 'router': case 'embeddings': case 'lm_head': return [config.hidden];
    case 'attention':
      if (a.kind === 'mla') {
        const heads = numParam(a, 'heads');
        return [config.hidden, numParam(a, 'kv_lora_rank'), heads * numParam(a, 'v_head_dim'), ...(numParam(a, 'q_lora_rank') > 0 ? [numParam(a, 'q_lora_rank')] : [])];
      }
      return [config.hidden, numParam(a, 'heads') * numParam(a, 'head_dim')];
  }
}

function checkQuantGroup(config: ModelConfig, target: QuantTarget, quant: KindRef, span: Span, report: (s: Span, m: string, h?: string) => void): void {
  const group = quant.params['group'];
  if (typeof group !== 'number') return;
  const dims = [...new Set(reducedDimensions(config, target))];
  const bad = dims.filter((d) => d % group !== 0);
  if (bad.length === 0) return;
  const divisors = commonDivisors(dims).filter((d) => d >= 8 && d <= 256);
  report(span, `quantization group ${group} does not divide the reduced dimension ${bad.join(' and ')} of the ${target} weights`,
    divisors.length ? `groups that divide ${dims.join(', ')}: ${divisors.join(', ')}` : `no group size of 8..256 divides ${dims.join(', ')}`);
}

function commonDivisors(values: number[]): number[] {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = values.reduce(gcd);
  return Array.from({ length: g }, (_, i) => i + 1).filter((d) => g % d === 0 && (d & (d - 1)) === 0);
}
