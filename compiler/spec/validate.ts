// AST -> ModelConfig: every block and field checked against the schema, kinds resolved
// through the registry, then the checks that span blocks (cross-checks.ts).
import type { CompileConfig, KindRef, ModelConfig, MoeConfig, ParamValue, QuantTarget } from '../../ir/model-config.js';
import type { Block, Field, SpecFile } from './ast.js';
import { checkModelConsistency, checkMoeFields } from './cross-checks.js';
import { diagnostic, spanAt, type Diagnostic } from './diagnostics.js';
import { closestName, didYouMean } from './did-you-mean.js';
import { evalValue, type EvalContext } from './evaluate.js';
import type { KindCategory, KindContext, KindRegistry } from './kinds/registry.js';
import { compileBlock, denseBlock, modelBlock, moeBlock, topLevelBlocks, type BlockSchema } from './schema.js';

type Values = Map<string, ParamValue | KindRef>;

/** The evaluated fields of one block, plus where each came from (for later cross-checks). */
export interface BlockValues {
  values: Values;
  fields: Map<string, Field>;
  qualified: Map<string, { value: KindRef; field: Field }>;
  blocks: Map<string, Block>;
}

export interface ValidationResult {
  config?: ModelConfig;
  diagnostics: Diagnostic[];
}

export function validateSpec(ast: SpecFile, registry: KindRegistry): ValidationResult {
  const diagnostics: Diagnostic[] = [];
  const ctx: EvalContext = { file: ast.file, registry, diagnostics, kindContext: {} };
  const top = collectBlocks(ast.blocks, topLevelBlocks, ctx, undefined);
  const model = top.get('model');
  if (!model) {
    diagnostics.push(diagnostic(ast.file, spanAt(ast.source, 0, 0), 'the spec has no model block', 'start with `model "name" { hidden = ... vocab = ... layers = ... }`'));
    return { diagnostics };
  }
  const modelValues = readBlock(model, modelBlock, ctx, (v) => ({ hidden: v.get('hidden') as number | undefined }));
  const moeAst = modelValues.blocks.get('moe');
  const moeValues = moeAst ? readBlock(moeAst, moeBlock, ctx, (v) => ({ experts: v.get('experts') as number, topK: v.get('top_k') as number, hidden: modelValues.values.get('hidden') as number })) : undefined;
  const denseAst = modelValues.blocks.get('dense');
  const denseValues = denseAst ? readBlock(denseAst, denseBlock, ctx, () => ({})) : undefined;
  const compileAst = top.get('compile');
  const compileValues = compileAst ? readBlock(compileAst, compileBlock, ctx, () => ({})) : undefined;
  if (moeValues) checkMoeFields(moeValues, modelValues.values.get('layers') as number | undefined, ast.file, diagnostics);
  if (diagnostics.length > 0) return { diagnostics };

  const config = toModelConfig(model.label ?? 'model', modelValues, moeValues, denseValues, compileValues);
  checkModelConsistency(config, { file: ast.file, model, moe: moeValues, compile: compileValues, diagnostics });
  return diagnostics.length > 0 ? { diagnostics } : { config, diagnostics };
}

/** Top-level or nested blocks: each known once, unknown ones reported with a suggestion. */
function collectBlocks(blocks: readonly Block[], schemas: readonly BlockSchema[], ctx: EvalContext, parent: string | undefined): Map<string, Block> {
  const found = new Map<string, Block>();
  for (const block of blocks) {
    const schema = schemas.find((s) => s.name === block.type);
    if (!schema) {
      const where = parent ? `inside \`${parent}\`` : 'at the top level';
      ctx.diagnostics.push(diagnostic(ctx.file, block.typeSpan, `unknown block \`${block.type}\` ${where}`, didYouMean(block.type, schemas.map((s) => s.name))));
      continue;
    }
    const first = found.get(block.type);
    if (first) {
      ctx.diagnostics.push(diagnostic(ctx.file, block.typeSpan, `duplicate \`${block.type}\` block`, `the first one is at line ${first.typeSpan.line}; a file describes one model`));
      continue;
    }
    if (schema.label === 'required' && block.label === undefined) {
      ctx.diagnostics.push(diagnostic(ctx.file, block.typeSpan, `the \`${block.type}\` block needs a name`, `write \`${block.type} "my-model" { ... }\``));
    } else if (schema.label === 'none' && block.labelSpan) {
      ctx.diagnostics.push(diagnostic(ctx.file, block.labelSpan, `the \`${block.type}\` block takes no name`, `write \`${block.type} { ... }\``));
    }
    found.set(block.type, block);
  }
  return found;
}

/** Reads a block's fields: plain values first, then kinds, whose checks may need those values. */
function readBlock(block: Block, schema: BlockSchema, ctx: EvalContext, kindContext: (values: Values) => KindContext): BlockValues {
  const out: BlockValues = { values: new Map(), fields: new Map(), qualified: new Map(), blocks: collectBlocks(block.items.filter((i): i is Block => i.kind === 'block'), schema.blocks, ctx, block.type) };
  const fields = block.items.filter((i): i is Field => i.kind === 'field');
  const accepted: { field: Field; key: string }[] = [];
  const misspelt = new Set<string>(); // fields named by a did-you-mean are not reported missing as well
  for (const field of fields) {
    const fieldSchema = schema.fields.find((f) => f.name === field.name);
    if (!fieldSchema) {
      const candidates = [...schema.fields.map((f) => f.name), ...schema.blocks.map((b) => b.name)];
      ctx.diagnostics.push(diagnostic(ctx.file, field.nameSpan, `unknown field \`${field.name}\` in \`${block.type}\``, didYouMean(field.name, candidates)));
      misspelt.add(closestName(field.name, candidates) ?? '');
      continue;
    }
    if (fieldSchema.qualifiers) {
      if (!field.qualifier || !field.qualifierSpan) {
        ctx.diagnostics.push(diagnostic(ctx.file, field.nameSpan, `\`${field.name}\` needs to say what it applies to`, `write \`${field.name} <${fieldSchema.qualifiers.join(' | ')}> = ...\``));
        continue;
      }
      if (!fieldSchema.qualifiers.includes(field.qualifier)) {
        ctx.diagnostics.push(diagnostic(ctx.file, field.qualifierSpan, `\`${field.name}\` cannot apply to \`${field.qualifier}\``, didYouMean(field.qualifier, fieldSchema.qualifiers)));
        continue;
      }
    } else if (field.qualifierSpan) {
      ctx.diagnostics.push(diagnostic(ctx.file, field.qualifierSpan, `\`${field.name}\` takes no qualifier`, `write \`${field.name} = ...\``));
      continue;
    }
    const key = field.qualifier ? `${field.name} ${field.qualifier}` : field.name;
    const first = out.fields.get(key);
    if (first) {
      ctx.diagnostics.push(diagnostic(ctx.file, field.nameSpan, `duplicate field \`${key}\``, `first set at line ${first.nameSpan.line}`));
      continue;
    }
    out.fields.set(key, field);
    accepted.push({ field, key });
  }
  const isKind = (name: string) => schema.fields.find((f) => f.name === name)?.value.type === 'kind';
  for (const pass of [false, true]) {
    if (pass) ctx.kindContext = kindContext(out.values);
    for (const { field, key } of accepted) {
      if (isKind(field.name) !== pass) continue;
      const fieldSchema = schema.fields.find((f) => f.name === field.name)!;
      const value = evalValue(field.value, fieldSchema.value, ctx, field.name);
      if (value === undefined) continue;
      if (field.qualifier) out.qualified.set(field.qualifier, { value: value as KindRef, field });
      else out.values.set(key, value);
    }
  }
  for (const f of schema.fields) {
    if (out.values.has(f.name) || out.fields.has(f.name) || f.qualifiers) continue;
    if (f.required && !misspelt.has(f.name)) {
      ctx.diagnostics.push(diagnostic(ctx.file, block.typeSpan, `\`${block.type}\` is missing the field \`${f.name}\``, f.doc));
    } else if (f.default !== undefined) {
      out.values.set(f.name, f.value.type === 'kind' ? defaultKind(f.default as string, f.value.category, ctx) : structuredClone(f.default));
    }
  }
  return out;
}

function defaultKind(name: string, category: KindCategory, ctx: EvalContext): KindRef {
  const definition = ctx.registry.get(category, name)!;
  const params: Record<string, ParamValue> = {};
  for (const p of definition.params) if (p.default !== undefined) params[p.name] = structuredClone(p.default);
  return { kind: name, params };
}

function toModelConfig(name: string, model: BlockValues, moe: BlockValues | undefined, dense: BlockValues | undefined, compile: BlockValues | undefined): ModelConfig {
  const m = model.values;
  const config: ModelConfig = {
    name,
    hidden: m.get('hidden') as number,
    vocab: m.get('vocab') as number,
    layers: m.get('layers') as number,
    tieEmbeddings: m.get('tie_embeddings') as boolean,
    lmHeadBias: m.get('lm_head_bias') as boolean,
    norm: m.get('norm') as KindRef,
    attention: m.get('attention') as KindRef,
    rope: m.get('rope') as KindRef,
    compile: toCompileConfig(compile),
  };
  if (dense) config.dense = { mlp: dense.values.get('mlp') as KindRef };
  if (moe) config.moe = toMoeConfig(moe.values);
  return config;
}

function toMoeConfig(v: Values): MoeConfig {
  const moe: MoeConfig = {
    experts: v.get('experts') as number,
    topK: v.get('top_k') as number,
    router: v.get('router') as KindRef,
    expert: v.get('expert') as KindRef,
    sharedGate: v.get('shared_gate') as 'none' | 'sigmoid',
    firstLayer: v.get('first_layer') as number,
    every: v.get('every') as number,
    offset: v.get('offset') as number,
    denseLayers: v.get('dense_layers') as number[],
  };
  const shared = v.get('shared') as KindRef | undefined;
  if (shared) moe.shared = shared;
  return moe;
}

function toCompileConfig(compile: BlockValues | undefined): CompileConfig {
  const quantize: Partial<Record<QuantTarget, KindRef>> = {};
  for (const [target, { value }] of compile?.qualified ?? []) quantize[target as QuantTarget] = value;
  const v = compile?.values;
  return {
    target: 'webgpu',
    dtype: (v?.get('dtype') as 'f32' | 'f16' | undefined) ?? 'f32',
    quantize,
    tokenRounding: (v?.get('token_rounding') as KindRef | undefined) ?? { kind: 'exact', params: {} },
    context: (v?.get('context') as number | undefined) ?? 4096,
    kvCache: (v?.get('kv_cache') as 'f32' | 'f16' | undefined) ?? 'f32',
    plugins: (v?.get('plugins') as string[] | undefined) ?? [],
  };
}
