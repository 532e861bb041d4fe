// Completion by context: block snippets at the top level, a block's missing fields and nested
// blocks inside it, kind names (from the registry given, so plugin kinds appear) after a kind
// field's `=`, parameter names inside a kind's parentheses, enum values and booleans.
import { CompletionItemKind, InsertTextFormat, MarkupKind, type CompletionItem, type Position } from 'vscode-languageserver';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import { categoryWords, type FieldSchema, type KindDefinition, type KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { findField, type BlockSchema } from '../../compiler/spec/schema.js';
import { cursorContextAt, type CursorContext, type OpenBlock, type OpenCall, type ValueOwner } from './cursor-context.js';
import { blockSchemaAt, fieldSummary, kindMarkdown, kindOf } from './schema-docs.js';
import { LineMap } from './text-positions.js';

/** Opens the suggest widget again after inserting `field = `, so kind names come up at once. */
const suggestAgain = { title: 'Suggest', command: 'editor.action.triggerSuggest' };

export function completionsAt(text: string, position: Position, registry: KindRegistry = defaultRegistry): CompletionItem[] {
  const lines = new LineMap(text);
  const context = cursorContextAt(text, lines.offsetAt(position));
  const range = lines.range(context.word.start, context.word.end);
  return itemsFor(context, registry).map(({ insertText, ...item }, i) => ({ sortText: String(i).padStart(4, '0'), ...item, textEdit: { range, newText: insertText ?? item.label } }));
}

function itemsFor({ slot, nextChar }: CursorContext, registry: KindRegistry): CompletionItem[] {
  switch (slot.kind) {
    case 'item': return blockItems(slot.block);
    case 'qualifier': return qualifierItems(slot.block, slot.field);
    case 'value': return valueItems(ownerSchema(slot.owner, registry), registry, nextChar === '(');
    case 'param-name': return paramNameItems(slot.call, registry);
    case 'none': return [];
  }
}

/** The schema of the field or kind parameter a value belongs to. */
function ownerSchema(owner: ValueOwner, registry: KindRegistry): FieldSchema | undefined {
  if (owner.kind === 'field') {
    const block = blockSchemaAt(owner.block.path);
    return block && findField(block, owner.field);
  }
  return callKind(owner.call, registry)?.params.find((p) => p.name === owner.param);
}

function callKind(call: OpenCall, registry: KindRegistry): KindDefinition | undefined {
  return kindOf(ownerSchema(call.owner, registry), call.callee, registry);
}

function blockItems(open: OpenBlock): CompletionItem[] {
  const schema = blockSchemaAt(open.path);
  if (!schema) return [];
  const owner = schema.name ? `\`${schema.name}\` field` : '';
  const fields = schema.fields.flatMap((field) => {
    if (!field.qualifiers) return open.fields.has(field.name) ? [] : [fieldItem(field, field.name, owner)];
    return field.qualifiers.filter((q) => !open.fields.has(`${field.name} ${q}`)).map((q) => fieldItem(field, `${field.name} ${q}`, owner));
  });
  const blocks = schema.blocks.filter((b) => !open.blocks.has(b.name)).map(blockItem);
  return [...fields, ...blocks];
}

function fieldItem(field: FieldSchema, label: string, owner: string): CompletionItem {
  const item: CompletionItem = {
    label,
    kind: CompletionItemKind.Property,
    detail: [owner, fieldSummary(field)].filter(Boolean).join(' · '),
    documentation: { kind: MarkupKind.Markdown, value: field.doc },
    insertText: `${label} = ${valueSnippet(field)}`,
    insertTextFormat: InsertTextFormat.Snippet,
  };
  if (field.value.type === 'kind') item.command = suggestAgain;
  return item;
}

function valueSnippet(field: FieldSchema): string {
  switch (field.value.type) {
    case 'enum': return `\${1|${field.value.values.join(',')}|}`;
    case 'bool': return '${1|true,false|}';
    case 'int-list':
    case 'number-list':
    case 'kind-list': return '[$1]';
    case 'string-list': return '["$1"]';
    case 'string': return '"$1"';
    default: return '$0';
  }
}

function blockItem(block: BlockSchema): CompletionItem {
  const head = block.label === 'required' ? `${block.name} "\${1:name}"` : block.name;
  return {
    label: block.name,
    kind: CompletionItemKind.Module,
    detail: `${block.name} { ... } block`,
    documentation: { kind: MarkupKind.Markdown, value: block.doc },
    insertText: `${head} {\n\t$0\n}`,
    insertTextFormat: InsertTextFormat.Snippet,
  };
}

function qualifierItems(open: OpenBlock, fieldName: string): CompletionItem[] {
  const schema = blockSchemaAt(open.path);
  const field = schema && findField(schema, fieldName);
  if (!field?.qualifiers) return [];
  return field.qualifiers.filter((q) => !open.fields.has(`${field.name} ${q}`)).map((q) => ({
    label: q,
    kind: CompletionItemKind.EnumMember,
    detail: `${field.name} target: the ${q} weights`,
  }));
}

function valueItems(field: FieldSchema | undefined, registry: KindRegistry, argumentsFollow: boolean): CompletionItem[] {
  if (!field) return [];
  const type = field.value;
  switch (type.type) {
    case 'kind':
      return registry.list(type.category).map((kind) => kindItem(kind, argumentsFollow));
    case 'enum':
      return type.values.map((v) => ({ label: v, kind: CompletionItemKind.EnumMember, detail: `${field.name}: ${type.values.join(' | ')}` }));
    case 'bool':
      return ['true', 'false'].map((v) => ({ label: v, kind: CompletionItemKind.Keyword, detail: `${field.name}: true | false` }));
    default:
      return [];
  }
}

/** A kind name; with its required parameters filled in as a snippet unless arguments follow already. */
function kindItem(kind: KindDefinition, argumentsFollow: boolean): CompletionItem {
  const required = kind.params.filter((p) => p.required);
  const item: CompletionItem = {
    label: kind.name,
    kind: CompletionItemKind.Function,
    detail: `${categoryWords[kind.category]} kind`,
    documentation: { kind: MarkupKind.Markdown, value: kindMarkdown(kind) },
  };
  if (required.length > 0 && !argumentsFollow) {
    item.insertText = `${kind.name}(${required.map((p, i) => `${p.name} = \${${i + 1}}`).join(', ')})$0`;
    item.insertTextFormat = InsertTextFormat.Snippet;
  }
  return item;
}

function paramNameItems(call: OpenCall, registry: KindRegistry): CompletionItem[] {
  const kind = callKind(call, registry);
  if (!kind) return [];
  return kind.params.filter((p) => !call.args.has(p.name)).map((p) => ({
    label: p.name,
    kind: CompletionItemKind.Property,
    detail: `${kind.name} parameter · ${fieldSummary(p)}`,
    documentation: { kind: MarkupKind.Markdown, value: p.doc },
    insertText: `${p.name} = ${valueSnippet(p)}`,
    insertTextFormat: InsertTextFormat.Snippet,
  }));
}
