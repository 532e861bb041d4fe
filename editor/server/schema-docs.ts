// Reading the schema and the kind registry for the editor: which block a path names, and the
// markdown that completion and hover show for fields, kinds and parameters.
import { paramText } from '../../ir/param-text.js';
import { categoryWords, type FieldSchema, type KindCategory, type KindDefinition, type KindRegistry, type ValueType } from '../../compiler/spec/kinds/registry.js';
import { topLevelBlocks, type BlockSchema } from '../../compiler/spec/schema.js';

/** The file itself, as a block whose children are the top-level blocks. */
export const fileSchema: BlockSchema = { name: '', doc: 'A .moe file', label: 'none', fields: [], blocks: topLevelBlocks };

/** ['model', 'moe'] -> moeBlock; undefined for a path through an unknown block. */
export function blockSchemaAt(path: readonly string[]): BlockSchema | undefined {
  let schema: BlockSchema | undefined = fileSchema;
  for (const name of path) schema = schema?.blocks.find((b) => b.name === name);
  return schema;
}

export function kindCategoryOf(field: FieldSchema | undefined): KindCategory | undefined {
  return field?.value.type === 'kind' ? field.value.category : undefined;
}

/** The kind a field or parameter value names, when that value is a kind. */
export function kindOf(field: FieldSchema | undefined, name: string, registry: KindRegistry): KindDefinition | undefined {
  const category = kindCategoryOf(field);
  return category ? registry.get(category, name) : undefined;
}

export function describeType(type: ValueType): string {
  switch (type.type) {
    case 'int':
    case 'number': {
      const word = type.type === 'int' ? 'int' : 'number';
      if (type.min !== undefined && type.max !== undefined) return `${word} ${type.min}..${type.max}`;
      if (type.min !== undefined) return `${word} ${type.type === 'number' && type.exclusiveMin ? '>' : '≥'} ${type.min}`;
      return type.max !== undefined ? `${word} ≤ ${type.max}` : word;
    }
    case 'bool': return 'true | false';
    case 'string': return 'string';
    case 'enum': return type.values.join(' | ');
    case 'kind': return `${categoryWords[type.category]} kind`;
    case 'int-list': return type.min !== undefined ? `list of ints ≥ ${type.min}` : 'list of ints';
    case 'number-list': return type.min !== undefined ? `list of numbers ${type.exclusiveMin ? '>' : '≥'} ${type.min}` : 'list of numbers';
    case 'string-list': return 'list of strings';
    case 'kind-list': return `list of ${categoryWords[type.category]} kinds`;
  }
}

/** `int ≥ 1 · required` or `true | false · default false`. */
export function fieldSummary(field: FieldSchema): string {
  const parts = [describeType(field.value)];
  if (field.qualifiers) parts.unshift(`${field.name} <${field.qualifiers.join(' | ')}> = ...`);
  if (field.required) parts.push('required');
  else if (field.default !== undefined && !derivedDefault(field)) parts.push(`default ${paramText(field.default)}`);
  return parts.join(' · ');
}

/** A 0 default that stands for a value computed from others (kv_heads: "Defaults to heads"). */
function derivedDefault(field: FieldSchema): boolean {
  return field.default === 0 && /defaults to/i.test(field.doc);
}

export function fieldMarkdown(field: FieldSchema, owner: string): string {
  return `**${field.name}** — ${owner}\n\n\`${fieldSummary(field)}\`\n\n${field.doc}`;
}

/** A kind's doc and a table of its parameters. */
export function kindMarkdown(kind: KindDefinition): string {
  const head = `**${kind.name}** — ${categoryWords[kind.category]} kind\n\n${kind.doc}`;
  if (kind.params.length === 0) return `${head}\n\nNo parameters.`;
  const rows = kind.params.map((p) => `| \`${p.name}\` | ${escapeCell(fieldSummary(p))} | ${escapeCell(p.doc)} |`);
  return [head, '', '| parameter | type | |', '|---|---|---|', ...rows].join('\n');
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}
