// Checks that span fields and blocks: top_k against experts, layer rules against the layer
// count, quantization groups against the dimensions they reduce over.
import { numParam, type KindRef, type ModelConfig, type QuantTarget } from '../../ir/model-config.js';
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

type Report = (span: Span, message: string, hint?: string) => void;

/**
 * The MoE block's rules, run even when other fields have errors so one run shows them all:
 * each rule is checked only when the values it compares are known.
 */
export function checkMoeFields(moe: BlockValues, layers: number | undefined, file: string, diagnostics: Diagnostic[]): void {
  const report: Report = (span, message, hint) => diagnostics.push(diagnostic(file, span, message, hint));
  const value = (name: string) => moe.values.get(name);
  const span = (name: string) => moe.fields.get(name)?.value.span;
  const num = (name: string) => (typeof value(name) === 'number' ? (value(name) as number) : undefined);
  const experts = num('experts');
  const topK = num('top_k');
  if (experts !== undefined && topK !== undefined && topK > experts) {
    report(span('top_k')!, `top_k = ${topK} is more than experts = ${experts}`, `allowed range: 1..${experts}`);
  }
  const firstLayer = num('first_layer');
  const firstLayerSpan = span('first_layer');
  if (layers !== undefined && firstLayer !== undefined && firstLayerSpan && firstLayer >= layers) {
    report(firstLayerSpan, `first_layer = ${firstLayer} leaves no MoE layer in a ${layers}-layer model`, `allowed range: 0..${layers - 1}`);
  }
  const every = num('every');
  const offset = num('offset');
  const offsetSpan = span('offset');
  if (every !== undefined && offset !== undefined && offsetSpan && offset >= every) {
    report(offsetSpan, `offset = ${offset} never matches with every = ${every}`, `allowed range: 0..${every - 1}`);
  }
  const denseLayers = value('dense_layers') as number[] | undefined;
  const bad = layers === undefined ? undefined : denseLayers?.find((l) => l >= layers);
  const denseLayersSpan = span('dense_layers');
  if (layers !== undefined && bad !== undefined && denseLayersSpan) {
    report(denseLayersSpan, `dense_layers names layer ${bad}, but the model has layers 0..${layers - 1}`);
  }
  // `shared` given but invalid is an error of its own, not a missing shared expert.
  const sharedGateSpan = span('shared_gate');
  if (value('shared_gate') === 'sigmoid' && !moe.fields.has('shared') && sharedGateSpan) {
    report(sharedGateSpan, 'shared_gate needs a shared expert', 'add `shared = swiglu(intermediate = ...)` or remove shared_gate');
  }
}

/** Checks that need the whole, valid config: dense layers need a dense MLP; quantization groups. */
export function checkModelConsistency(config: ModelConfig, input: ConsistencyInput): void {
  const report: Report = (span, message, hint) => input.diagnostics.push(diagnostic(input.file, span, message, hint));
  const denseLayer = firstDenseLayer(config);
  if (denseLayer !== undefined && !config.dense) {
    report(input.model.typeSpan, `layer ${denseLayer} is not an MoE layer, so the model needs a \`dense { mlp = ... }\` block`, 'add `dense { mlp = swiglu(intermediate = ...) }` inside the model block');
  }
  for (const [target, { value, field }] of input.compile?.qualified ?? []) {
    if (value.kind === 'mixed') checkMixed(config, target as QuantTarget, value, field.value, report);
    else checkQuantGroup(config, target as QuantTarget, value, groupSpan(field.value), report);
  }
  checkRopeFactors(config, input.model, report);
}

/** Rotary dims: a GQA head's, or MLA's decoupled rope part. */
export function rotaryDim(attention: KindRef): number {
  return attention.kind === 'mla' ? numParam(attention, 'qk_rope_head_dim') : numParam(attention, 'head_dim');
}

/** longrope's per-pair factors: one number per rotary pair. */
function checkRopeFactors(config: ModelConfig, model: Block, report: Report): void {
  if (config.rope.kind !== 'longrope') return;
  const pairs = rotaryDim(config.attention) / 2;
  const field = model.items.find((i) => i.kind === 'field' && i.name === 'rope');
  for (const name of ['short_factor', 'long_factor']) {
    const n = (config.rope.params[name] as number[]).length;
    if (n === pairs) continue;
    const arg = field?.kind === 'field' && field.value.kind === 'call' ? field.value.args.find((a) => a.name === name) : undefined;
    report(arg?.span ?? field?.span ?? model.typeSpan, `longrope: ${name} has ${n} numbers, the rotary dim ${pairs * 2} has ${pairs} pairs`, 'give one factor per rotary pair (head_dim / 2)');
  }
}

/** The first layer that is not an MoE layer, from the rule rather than a walk (`layers` may be huge). */
export function firstDenseLayer(config: ModelConfig): number | undefined {
  const moe = config.moe;
  if (!moe) return 0;
  // Layers before first_layer are dense; from there on, layer i is MoE iff i % every == offset.
  const offPattern = moe.firstLayer > 0 ? 0 : moe.every > 1 ? (moe.offset === 0 ? 1 : 0) : undefined;
  const candidates = [...(offPattern === undefined ? [] : [offPattern]), ...moe.denseLayers].filter((l) => l < config.layers);
  return candidates.length ? candidates.reduce((a, b) => Math.min(a, b)) : undefined;
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

function checkQuantGroup(config: ModelConfig, target: QuantTarget, quant: KindRef, span: Span, report: Report): void {
  const group = quant.params['group'];
  if (typeof group !== 'number') return;
  const dims = [...new Set(reducedDimensions(config, target))];
  const bad = dims.filter((d) => d % group !== 0);
  if (bad.length === 0) return;
  const divisors = commonPowerOfTwoDivisors(dims).filter((d) => d >= 8 && d <= 256);
  report(span, `quantization group ${group} does not divide the reduced dimension ${bad.join(' and ')} of the ${target} weights`,
    divisors.length ? `groups that divide ${dims.join(', ')}: ${divisors.join(', ')}` : `no group size of 8..256 divides ${dims.join(', ')}`);
}

/** `mixed(...)` chooses per routed expert: only `quantize experts` of an MoE model; each choice's group must fit. */
function checkMixed(config: ModelConfig, target: QuantTarget, quant: KindRef, expr: Expr, report: Report): void {
  if (target !== 'experts' || !config.moe) {
    report(expr.span, `mixed(...) chooses a format per routed expert, so it applies to \`quantize experts\` of a model with a moe block, not ${target}`,
      `write e.g. \`quantize ${target} = int4(group = 32)\``);
    return;
  }
  const choicesArg = expr.kind === 'call' ? expr.args.find((a) => a.name === 'choices') : undefined;
  const items = choicesArg?.value.kind === 'list' ? choicesArg.value.items : [];
  (quant.params['choices'] as KindRef[]).forEach((choice, i) => checkQuantGroup(config, target, choice, items[i] ? groupSpan(items[i]) : expr.span, report));
}

/** The powers of two that divide every value. */
function commonPowerOfTwoDivisors(values: number[]): number[] {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = values.reduce(gcd);
  const divisors: number[] = [];
  for (let d = 1; d <= g && g % d === 0; d *= 2) divisors.push(d);
  return divisors;
}
