// Hover: the docs of the field, kind or parameter under the cursor; on `model` the model's
// derived figures, on `moe` the MoE block's, on `compile` / `quantize` the weight bytes under
// the current quantization. Figures need a spec that checks without errors.
import { MarkupKind, type Hover, type Position } from 'vscode-languageserver';
import type { Block, Expr, Field, Span } from '../../compiler/spec/ast.js';
import { checkSpec, type CheckResult } from '../../compiler/spec/check.js';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import type { FieldSchema, KindDefinition, KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { parseSpec } from '../../compiler/spec/parse.js';
import { findField, type BlockSchema } from '../../compiler/spec/schema.js';
import { quantTargets, type ModelConfig, type QuantTarget } from '../../ir/model-config.js';
import {
  figuresUnavailable, formatBytes, formatCount, formatLayers, modelFigures, moeBlockFigures, placementNote, roleOfTarget,
  type ModelFigures,
} from './figures.js';
import { blockSchemaAt, fieldMarkdown, fieldSummary, kindMarkdown, kindOf } from './schema-docs.js';
import { containsOffset, LineMap } from './text-positions.js';

type HoverTarget =
  | { kind: 'block'; block: Block; schema: BlockSchema; span: Span }
  | { kind: 'field'; field: Field; schema: FieldSchema; owner: BlockSchema; span: Span }
  | { kind: 'qualifier'; field: Field; target: QuantTarget; span: Span }
  | { kind: 'kind'; definition: KindDefinition; span: Span }
  | { kind: 'param'; param: FieldSchema; owner: KindDefinition; span: Span };

export function hoverAt(text: string, position: Position, registry: KindRegistry = defaultRegistry, file = 'untitled.moe'): Hover | undefined {
  const lines = new LineMap(text);
  const offset = lines.offsetAt(position);
  const { ast } = parseSpec(text, file);
  // A cursor just after a word (keyboard hover) still means that word.
  const target = targetIn(ast.blocks, [], offset, registry) ?? (offset > 0 ? targetIn(ast.blocks, [], offset - 1, registry) : undefined);
  if (!target) return undefined;
  let checked: CheckResult | undefined;
  const check = () => (checked ??= checkSpec(text, file, registry));
  return { contents: { kind: MarkupKind.Markdown, value: markdownFor(target, check, registry) }, range: lines.rangeOf(target.span) };
}

function targetIn(blocks: readonly Block[], path: string[], offset: number, registry: KindRegistry): HoverTarget | undefined {
  for (const block of blocks) {
    if (!containsOffset(block.span, offset)) continue;
    const blockPath = [...path, block.type];
    const schema = blockSchemaAt(blockPath);
    if (!schema) return undefined;
    if (containsOffset(block.typeSpan, offset)) return { kind: 'block', block, schema, span: block.typeSpan };
    if (block.labelSpan && containsOffset(block.labelSpan, offset)) return { kind: 'block', block, schema, span: block.labelSpan };
    for (const item of block.items) {
      if (item.kind === 'block') {
        const inner = targetIn([item], blockPath, offset, registry);
        if (inner) return inner;
        continue;
      }
      if (!containsOffset(item.span, offset)) continue;
      const field = findField(schema, item.name);
      if (!field) return undefined;
      if (containsOffset(item.nameSpan, offset)) return { kind: 'field', field: item, schema: field, owner: schema, span: item.nameSpan };
      if (item.qualifierSpan && containsOffset(item.qualifierSpan, offset)) {
        const target = quantTargets.find((t) => t === item.qualifier);
        return target ? { kind: 'qualifier', field: item, target, span: item.qualifierSpan } : undefined;
      }
      return valueTarget(item.value, field, offset, registry);
    }
  }
  return undefined;
}

/** Inside a value: a kind name, a parameter name, or something nested in an argument. */
function valueTarget(expr: Expr, schema: FieldSchema | undefined, offset: number, registry: KindRegistry): HoverTarget | undefined {
  switch (expr.kind) {
    case 'ident': {
      const definition = kindOf(schema, expr.name, registry);
      return definition && containsOffset(expr.span, offset) ? { kind: 'kind', definition, span: expr.span } : undefined;
    }
    case 'call': {
      const definition = kindOf(schema, expr.callee, registry);
      if (!definition) return undefined;
      if (containsOffset(expr.calleeSpan, offset)) return { kind: 'kind', definition, span: expr.calleeSpan };
      for (const arg of expr.args) {
        const param = definition.params.find((p) => p.name === arg.name);
        if (param && arg.nameSpan && containsOffset(arg.nameSpan, offset)) return { kind: 'param', param, owner: definition, span: arg.nameSpan };
        if (containsOffset(arg.value.span, offset)) return valueTarget(arg.value, param, offset, registry);
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

function markdownFor(target: HoverTarget, check: () => CheckResult, registry: KindRegistry): string {
  switch (target.kind) {
    case 'block': {
      const { block, schema } = target;
      const title = block.label === undefined ? `**${block.type}**` : `**${block.type} ${JSON.stringify(block.label)}**`;
      const head = `${title} — ${schema.doc}`;
      if (block.type === 'model') return `${head}\n\n${withConfig(check, (c) => modelFiguresMarkdown(c, registry))}`;
      if (block.type === 'moe') return `${head}\n\n${withConfig(check, (c) => moeFiguresMarkdown(c, registry))}`;
      if (block.type === 'compile') return `${head}\n\n${withConfig(check, (c) => compileFiguresMarkdown(c, registry))}`;
      return head;
    }
    case 'field': {
      const doc = fieldMarkdown(target.schema, `\`${target.owner.name}\` field`);
      const quantTarget = quantTargets.find((t) => t === target.field.qualifier);
      return quantTarget ? `${doc}\n\n${withConfig(check, (c) => quantizeFiguresMarkdown(c, quantTarget, registry))}` : doc;
    }
    case 'qualifier':
      return `**${target.field.name} ${target.target}** — the ${target.target} weights\n\n${withConfig(check, (c) => quantizeFiguresMarkdown(c, target.target, registry))}`;
    case 'kind':
      return kindMarkdown(target.definition);
    case 'param':
      return `**${target.param.name}** — parameter of \`${target.owner.name}\`\n\n\`${fieldSummary(target.param)}\`\n\n${target.param.doc}`;
  }
}

/** Figures from a valid config, or why there are none. */
function withConfig(check: () => CheckResult, figures: (config: ModelConfig) => string): string {
  const { config, diagnostics } = check();
  if (!config) {
    const errors = diagnostics.filter((d) => d.severity === 'error').length;
    return `_Derived figures appear when the spec checks without errors (${errors} error${errors === 1 ? '' : 's'} now)._`;
  }
  const unavailable = figuresUnavailable(config);
  if (unavailable) return `_${unavailable}_`;
  try {
    return figures(config);
  } catch (e) {
    return `_Derived figures failed: ${(e as Error).message}_`;
  }
}

const exact = (n: number) => Math.round(n).toLocaleString('en-US');

function modelFiguresMarkdown(config: ModelConfig, registry: KindRegistry): string {
  const { stats } = modelFigures(config, registry);
  return [
    '| | |', '|---|---:|',
    `| total parameters | ${formatCount(stats.totalParams)} (${exact(stats.totalParams)}) |`,
    `| active parameters / token | ${formatCount(stats.activeParams)} (${exact(stats.activeParams)}) |`,
    `| active, without embedding | ${formatCount(stats.activeParamsNonEmbedding)} (${exact(stats.activeParamsNonEmbedding)}) |`,
    `| FLOPs / token @ ${stats.context} ctx | ${formatCount(stats.flopsPerToken, 'FLOP')} |`,
    `| weight bytes | ${formatBytes(stats.weightBytes)} |`,
    `| weight bytes read / token | ${formatBytes(stats.activeWeightBytes)} |`,
    `| bytes per device | ${formatBytes(stats.weightBytes)} |`,
    '', `_${placementNote}_`,
  ].join('\n');
}

function moeFiguresMarkdown(config: ModelConfig, registry: KindRegistry): string {
  const moe = config.moe!;
  const block = moeBlockFigures(config, registry);
  if (!block) return '_No layer of this model is an MoE layer._';
  const { stats, moeLayers } = block;
  const n = moeLayers.length;
  const rows = [
    `| routed experts | ${moe.experts} × ${formatCount(block.perExpert)} = ${formatCount(block.routedTotal)} | ${moe.topK} × ${formatCount(block.perExpert)} = ${formatCount(block.routedActive)} |`,
    `| router | ${formatCount(block.router)} | ${formatCount(block.router)} |`,
    ...(moe.shared ? [`| shared expert | ${formatCount(block.shared)} | ${formatCount(block.shared)} |`] : []),
    `| **block** | **${formatCount(stats.totalParams)}** | **${formatCount(stats.activeParams)}** |`,
    `| FLOPs / token | | ${formatCount(stats.flopsPerToken, 'FLOP')} |`,
    `| weight bytes | ${formatBytes(stats.weightBytes)} | ${formatBytes(stats.activeWeightBytes)} read |`,
  ];
  return [
    `MoE layers: ${n} of ${config.layers} (${formatLayers(moeLayers)})`, '',
    '| per MoE layer | parameters | active / token |', '|---|---:|---:|', ...rows, '',
    `${n === 1 ? 'The one MoE layer' : `All ${n} MoE layers`}: ${formatCount(stats.totalParams * n)} parameters, ${formatCount(stats.activeParams * n)} active / token, ` +
      `${formatCount(stats.flopsPerToken * n, 'FLOP')} / token, ${formatBytes(stats.weightBytes * n)} of weights.`,
  ].join('\n');
}

function compileFiguresMarkdown(config: ModelConfig, registry: KindRegistry): string {
  const { stats, groups } = modelFigures(config, registry);
  return [
    `Weight bytes under the current quantization (activations in ${config.compile.dtype}):`, '',
    '| weights | format | parameters | bytes |', '|---|---|---:|---:|',
    ...groups.map((g) => `| ${g.label} | ${g.formats.join(', ')} | ${formatCount(g.params)} | ${formatBytes(g.bytes)} |`),
    `| **all** | | **${formatCount(stats.totalParams)}** | **${formatBytes(stats.weightBytes)}** |`, '',
    `Read per token: ${formatBytes(stats.activeWeightBytes)}. Bytes per device: ${formatBytes(stats.weightBytes)} (${placementNote}).`,
  ].join('\n');
}

function quantizeFiguresMarkdown(config: ModelConfig, target: QuantTarget, registry: KindRegistry): string {
  const figures: ModelFigures = modelFigures(config, registry);
  const group = figures.groups.find((g) => g.role === roleOfTarget[target]);
  if (!group) return `_This model has no ${target} weights._`;
  return `The ${target} weights: ${formatCount(group.params)} parameters, ${formatBytes(group.bytes)} as stored (${group.formats.join(', ')}); ` +
    `${formatBytes(group.params * 4)} in f32. All weights: ${formatBytes(figures.stats.weightBytes)} (${placementNote}).`;
}
