// The language server driven over JSON-RPC as an editor drives it: open, publishDiagnostics,
// completion, hover, formatting, symbols, folding, definition and rename. Expected values come
// from the compiler functions the CLI uses (checkSpec, formatSpec, computeStats), not from the server.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileModelGraph } from '../../compiler/pipeline.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { formatSpec } from '../../compiler/spec/format.js';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import { computeStats } from '../../compiler/stats.js';
import { fileUri, LspSession, positionAtOffset, positionOf, withCursor } from './lsp-session.js';

const examples = join(import.meta.dirname, '../../examples');
const mixtralPath = join(examples, 'mixtral-8x7b.moe');
const mixtral = readFileSync(mixtralPath, 'utf8');
const mixtralUri = fileUri(mixtralPath);

const mistyped = `model "typo" {
  hidden = 64
  vocab = 100
  layers = 2
  norm = rmsnorm
  attention = gqa(heads = 4)
  tie_embedding = true

  moe {
    experts = 4
    top_k = 6
    router = sofmax_topk(renormalize = true)
    expert = swiglu(intermediate = 128)
  }
}
`;

let session: LspSession;
let capabilities: Record<string, unknown>;
let untitled = 0;

/** Opens `text` under a fresh URI and returns the URI. */
async function open(text: string): Promise<string> {
  const uri = `untitled:spec-${untitled++}.moe`;
  await session.open(uri, text);
  return uri;
}

async function labelsAt(marked: string): Promise<string[]> {
  const { text, position } = withCursor(marked);
  return (await session.completion(await open(text), position)).map((i) => i.label);
}

beforeAll(async () => {
  session = LspSession.inMemory();
  capabilities = await session.initialize();
  await session.open(mixtralUri, mixtral);
});

afterAll(() => session.close());

describe('initialize', () => {
  it('announces every feature', () => {
    expect(capabilities).toMatchObject({
      completionProvider: {}, hoverProvider: true, definitionProvider: true, renameProvider: { prepareProvider: true },
      documentFormattingProvider: true, documentSymbolProvider: true, foldingRangeProvider: true,
    });
  });
});

describe('diagnostics', () => {
  it('publishes what `moec check` reports for every example spec', async () => {
    const files = readdirSync(examples).filter((f) => f.endsWith('.moe'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = readFileSync(join(examples, file), 'utf8');
      const published = await session.open(fileUri(join(examples, `copy-${file}`)), text);
      const expected = checkSpec(text, file).diagnostics.map((d) => d.hint ? `${d.message}\nhint: ${d.hint}` : d.message);
      expect(published.diagnostics.map((d) => d.message), file).toEqual(expected);
    }
  });

  it('shows each error of a mistyped spec at its range, with the compiler\'s hint', async () => {
    const { diagnostics } = await session.open('untitled:mistyped.moe', mistyped);
    const expected = checkSpec(mistyped, 'mistyped.moe').diagnostics;
    expect(diagnostics).toHaveLength(3);
    const at = (needle: string, delta = 0) => ({ start: positionOf(mistyped, needle, delta), end: positionOf(mistyped, needle, needle.length) });

    expect(diagnostics[0]).toMatchObject({ severity: 1, source: 'moec', range: at('tie_embedding') });
    expect(diagnostics[0]!.message).toBe('unknown field `tie_embedding` in `model`\nhint: did you mean `tie_embeddings`?');
    expect(diagnostics[1]!.range).toEqual(at('top_k = 6', 'top_k = '.length));
    expect(diagnostics[1]!.message).toBe('top_k = 6 is more than experts = 4\nhint: allowed range: 1..4');
    expect(diagnostics[2]!.range).toEqual(at('sofmax_topk'));
    expect(diagnostics[2]!.message).toBe('unknown router kind `sofmax_topk`\nhint: did you mean `softmax_topk`?');
    // The same spans the compiler reports, converted to 0-based lines and columns.
    expect(diagnostics.map((d) => d.range.start)).toEqual(expected.map((d) => ({ line: d.span.line - 1, character: d.span.col - 1 })));
  });

  it('republishes on change: fixing the errors clears them', async () => {
    const uri = 'untitled:fixed-later.moe';
    expect((await session.open(uri, mistyped)).diagnostics).toHaveLength(3);
    const fixed = mistyped.replace('tie_embedding', 'tie_embeddings').replace('top_k = 6', 'top_k = 2').replace('sofmax', 'softmax');
    const published = await session.change(uri, 2, fixed);
    expect(published).toMatchObject({ uri, version: 2, diagnostics: [] });
  });

  it('reports a syntax error where the parser stops', async () => {
    const text = 'model "x" {\n  hidden = \n}\n';
    const { diagnostics } = await session.open('untitled:syntax.moe', text);
    const [expected] = checkSpec(text, 'syntax.moe').diagnostics;
    expect(diagnostics[0]!.range.start).toEqual({ line: expected!.span.line - 1, character: expected!.span.col - 1 });
    expect(diagnostics[0]!.message).toBe(expected!.message);
  });
});

describe('completion', () => {
  it('offers the model and compile blocks at the top level, as snippets', async () => {
    const { text, position } = withCursor('|');
    const items = await session.completion(await open(text), position);
    expect(items.map((i) => i.label)).toEqual(['model', 'compile']);
    expect(items[0]).toMatchObject({ insertTextFormat: 2, textEdit: { newText: 'model "${1:name}" {\n\t$0\n}' } });
    expect(await labelsAt('model "m" {\n}\n|')).toEqual(['compile']);
  });

  it('offers a model\'s fields and its moe / dense blocks, without those already written', async () => {
    const labels = await labelsAt('model "m" {\n  hidden = 64\n  |\n  layers = 2\n  moe {\n  }\n}');
    expect(labels).toEqual(['vocab', 'norm', 'attention', 'rope', 'tie_embeddings', 'lm_head_bias', 'dense']);
  });

  it('offers the moe fields inside moe, also while a name is half typed', async () => {
    const labels = await labelsAt('model "m" {\n  moe {\n    experts = 8\n    to|\n  }\n}');
    expect(labels).toEqual(['top_k', 'router', 'expert', 'shared', 'shared_gate', 'first_layer', 'every', 'offset', 'dense_layers']);
  });

  it('offers compile fields and one `quantize <target>` per target not yet quantized', async () => {
    const labels = await labelsAt('compile {\n  quantize experts = int4\n  |\n}');
    expect(labels).toContain('dtype');
    expect(labels).toContain('quantize shared');
    expect(labels).toContain('quantize lm_head');
    expect(labels).not.toContain('quantize experts');
    expect(await labelsAt('compile {\n  quantize |\n}')).toContain('experts');
  });

  it('offers router kinds from the registry, with their docs, after `router =`', async () => {
    const { text, position } = withCursor('model "m" {\n  moe {\n    router = |\n  }\n}');
    const items = await session.completion(await open(text), position);
    expect(items.map((i) => i.label)).toEqual(expect.arrayContaining(['softmax_topk', 'sigmoid_topk']));
    const sigmoid = items.find((i) => i.label === 'sigmoid_topk')!;
    expect(sigmoid.documentation).toMatchObject({ kind: 'markdown' });
    expect(JSON.stringify(sigmoid.documentation)).toContain('DeepSeek-V3');
    expect(await labelsAt('model "m" {\n  moe {\n    router = sig|\n  }\n}')).toContain('sigmoid_topk');
  });

  it('offers activation kinds after expert =, shared = and mlp =; quant kinds after quantize experts =', async () => {
    for (const field of ['expert', 'shared']) expect(await labelsAt(`model "m" {\n  moe {\n    ${field} = |\n  }\n}`)).toEqual(['swiglu', 'clamped_swiglu']);
    expect(await labelsAt('model "m" {\n  dense {\n    mlp = |\n  }\n}')).toEqual(['swiglu', 'clamped_swiglu']);
    expect(await labelsAt('compile {\n  quantize experts = |\n}')).toEqual(['f32', 'f16', 'bf16', 'int8', 'int4', 'int2', 'mixed', 'mxfp4']);
  });

  it('offers rope kinds after rope =, their parameters, and the new attention parameters', async () => {
    expect(await labelsAt('model "m" {\n  rope = |\n}')).toEqual(['default', 'linear', 'yarn', 'longrope']);
    expect(await labelsAt('model "m" {\n  rope = yarn(factor = 40, |)\n}')).toEqual(['original_context', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'attention_factor', 'truncate']);
    expect(await labelsAt('model "m" {\n  attention = gqa(heads = 4, qk_norm = true, qk_norm_span = |)\n}')).toEqual(['head', 'projection']);
    expect(await labelsAt('model "m" {\n  attention = mla(|)\n}')).toEqual(expect.arrayContaining(['rope_interleave', 'latent_norm_eps']));
    expect(await labelsAt('compile {\n  kv_cache = |\n}')).toEqual(['f32', 'f16']);
  });

  it('offers a kind\'s parameter names inside its parentheses, without those given', async () => {
    expect(await labelsAt('compile {\n  quantize experts = int4(|)\n}')).toEqual(['group']);
    const labels = await labelsAt('model "m" {\n  attention = gqa(heads = 8, |)\n}');
    expect(labels).toContain('kv_heads');
    expect(labels).not.toContain('heads');
  });

  it('offers enum values and booleans', async () => {
    expect(await labelsAt('compile {\n  dtype = |\n}')).toEqual(['f32', 'f16']);
    expect(await labelsAt('model "m" {\n  tie_embeddings = |\n}')).toEqual(['true', 'false']);
    expect(await labelsAt('model "m" {\n  moe {\n    router = softmax_topk(renormalize = |)\n  }\n}')).toEqual(['true', 'false']);
    expect(await labelsAt('compile {\n  token_rounding = sonic(mode = |)\n}')).toEqual(['nearest', 'up', 'down']);
  });

  it('offers nothing inside comments, strings and numbers', async () => {
    expect(await labelsAt('// model |\n')).toEqual([]);
    expect(await labelsAt('model "m|" {\n}')).toEqual([]);
    expect(await labelsAt('model "m" {\n  hidden = 4 * |\n}')).toEqual([]);
  });

  it('replaces the word being typed', async () => {
    const { text, position } = withCursor('model "m" {\n  moe {\n    router = sig|\n  }\n}');
    const items = await session.completion(await open(text), position);
    const start = positionAtOffset(text, text.indexOf('sig'));
    expect(items[0]!.textEdit).toMatchObject({ range: { start, end: position } });
  });
});

describe('hover', () => {
  it('shows a field\'s doc and type', async () => {
    const hover = await session.hover(mixtralUri, positionOf(mixtral, 'top_k', 1));
    expect(hover!.contents).toMatchObject({ kind: 'markdown' });
    const text = (hover!.contents as { value: string }).value;
    expect(text).toContain('**top_k**');
    expect(text).toContain('Experts each token is routed to');
    expect(hover!.range).toEqual({ start: positionOf(mixtral, 'top_k'), end: positionOf(mixtral, 'top_k', 5) });
  });

  it('shows a kind\'s doc with its parameters, and a parameter\'s doc', async () => {
    const kind = (await session.hover(mixtralUri, positionOf(mixtral, 'int4', 2)))!.contents as { value: string };
    expect(kind.value).toContain('**int4** — quantization kind');
    expect(kind.value).toContain('`group`');
    const param = (await session.hover(mixtralUri, positionOf(mixtral, 'renormalize', 3)))!.contents as { value: string };
    expect(param.value).toContain('parameter of `softmax_topk`');
  });

  it('shows a rope kind\'s doc and its parameters', async () => {
    const text = 'model "m" {\n  rope = yarn(factor = 32, original_context = 4096, truncate = false)\n}';
    const uri = await open(text);
    const kind = (await session.hover(uri, positionOf(text, 'yarn', 1)))!.contents as { value: string };
    expect(kind.value).toContain('**yarn** — rotary embedding kind');
    expect(kind.value).toContain('`beta_fast`');
    const param = (await session.hover(uri, positionOf(text, 'truncate', 2)))!.contents as { value: string };
    expect(param.value).toContain('parameter of `yarn`');
    expect(param.value).toContain('gpt-oss');
  });

  it('shows the model\'s total and active parameters on its name', async () => {
    const { config } = checkSpec(mixtral, 'mixtral-8x7b.moe');
    const stats = computeStats(compileModelGraph(config!), config!);
    const value = ((await session.hover(mixtralUri, positionOf(mixtral, 'mixtral-8x7b', 3)))!.contents as { value: string }).value;
    expect(value).toContain(`total parameters | 46.70 B (${stats.totalParams.toLocaleString('en-US')})`);
    expect(value).toContain(`active parameters / token | 12.88 B (${stats.activeParams.toLocaleString('en-US')})`);
    expect(value).toContain('placement: single device (no placement in spec)');
  });

  it('shows the MoE block\'s parameters and FLOPs on `moe`', async () => {
    const value = ((await session.hover(mixtralUri, positionOf(mixtral, 'moe {', 1)))!.contents as { value: string }).value;
    // Mixtral: 8 experts of 3 x 4096 x 14336 weights; 2 active per token.
    const perExpert = 3 * 4096 * 14336;
    expect(value).toContain(`| routed experts | 8 × ${(perExpert / 1e6).toFixed(2)} M = ${(8 * perExpert / 1e9).toFixed(2)} B | 2 × ${(perExpert / 1e6).toFixed(2)} M = ${(2 * perExpert / 1e6).toFixed(2)} M |`);
    expect(value).toContain('MoE layers: 32 of 32 (0..31)');
    // 2 FLOPs per weight of the two active experts and the router.
    expect(value).toContain(`| FLOPs / token | | ${((2 * (2 * perExpert + 8 * 4096)) / 1e6).toFixed(2)} MFLOP |`);
  });

  it('shows weight bytes under the current quantization on compile and quantize', async () => {
    const compile = ((await session.hover(mixtralUri, positionOf(mixtral, 'compile', 2)))!.contents as { value: string }).value;
    expect(compile).toMatch(/\| experts \| int4<g32> \| 45\.10 B \| 23\.63 GiB \|/);
    expect(compile).toContain('placement: single device (no placement in spec)');
    const quantize = ((await session.hover(mixtralUri, positionOf(mixtral, 'quantize', 1)))!.contents as { value: string }).value;
    expect(quantize).toContain('The experts weights: 45.10 B parameters, 23.63 GiB as stored (int4<g32>)');
  });

  it('says why there are no figures when the spec has errors', async () => {
    const uri = await open(mistyped);
    const value = ((await session.hover(uri, positionOf(mistyped, 'typo', 1)))!.contents as { value: string }).value;
    expect(value).toContain('3 errors');
    expect(await session.hover(uri, { line: 7, character: 0 })).toBeNull();
  });
});

describe('formatting', () => {
  it('returns formatSpec\'s output as one full-document edit', async () => {
    const messy = 'model "m" {\n      hidden = 64   vocab=100\n layers = 2 }\ncompile { dtype = f16 }\n';
    const uri = await open(messy);
    const edits = await session.formatting(uri);
    expect(edits).toEqual([{ range: { start: { line: 0, character: 0 }, end: { line: 4, character: 0 } }, newText: formatSpec(messy, 'm.moe').text }]);
  });

  it('returns no edit for a text with syntax errors or one already formatted', async () => {
    expect(await session.formatting(await open('model "m" {\n  hidden = \n'))).toEqual([]);
    const formatted = formatSpec(mixtral, 'mixtral-8x7b.moe').text!;
    expect(await session.formatting(await open(formatted))).toEqual([]);
  });
});

describe('document symbols and folding', () => {
  it('outlines blocks and their fields', async () => {
    const symbols = (await session.documentSymbols(mixtralUri))!;
    expect(symbols.map((s) => s.name)).toEqual(['model "mixtral-8x7b"', 'compile']);
    const model = symbols[0]!;
    expect(model.children!.map((c) => c.name)).toEqual(['hidden', 'vocab', 'layers', 'norm', 'attention', 'moe']);
    const moe = model.children!.find((c) => c.name === 'moe')!;
    expect(moe.children!.find((c) => c.name === 'router')).toMatchObject({ detail: 'softmax_topk(renormalize = true)', selectionRange: { start: positionOf(mixtral, 'router') } });
    expect(symbols[1]!.children!.map((c) => c.name)).toContain('quantize experts');
  });

  it('keeps the outline of a file with errors', async () => {
    const symbols = (await session.documentSymbols(await open('model "m" {\n  hidden = 64\n  moe {\n    experts = \n  }\n}\n')))!;
    expect(symbols[0]!.name).toBe('model "m"');
    expect(symbols[0]!.children!.map((c) => c.name)).toEqual(['hidden', 'moe']);
  });

  it('folds blocks, multi-line arguments and comments', async () => {
    const text = [
      '/* A block comment', '   over two lines. */', 'model "m" {', '  // two line', '  // comments', '  hidden = 64',
      '  attention = gqa(', '    heads = 4', '  )', '  moe {', '    experts = 4', '  }', '}', '',
    ].join('\n');
    const ranges = (await session.foldingRanges(await open(text)))!;
    expect(ranges).toEqual([
      { startLine: 0, endLine: 1, kind: 'comment' },
      { startLine: 2, endLine: 11 },
      { startLine: 3, endLine: 4, kind: 'comment' },
      { startLine: 6, endLine: 7 },
      { startLine: 9, endLine: 10 },
    ]);
  });
});

describe('definition and rename of the model name', () => {
  const nameRange = { start: positionOf(mixtral, '"mixtral-8x7b"'), end: positionOf(mixtral, '"mixtral-8x7b"', '"mixtral-8x7b"'.length) };

  it('goes from the model name to its declaration (itself)', async () => {
    expect(await session.definition(mixtralUri, positionOf(mixtral, 'mixtral-8x7b', 4))).toEqual({ uri: mixtralUri, range: nameRange });
    expect(await session.definition(mixtralUri, positionOf(mixtral, 'hidden'))).toBeNull();
  });

  it('prepares a rename of the name inside its quotes', async () => {
    const prepared = await session.prepareRename(mixtralUri, positionOf(mixtral, 'mixtral-8x7b', 2));
    expect(prepared).toEqual({
      range: { start: positionOf(mixtral, 'mixtral-8x7b'), end: positionOf(mixtral, 'mixtral-8x7b', 12) }, placeholder: 'mixtral-8x7b',
    });
    expect(await session.prepareRename(mixtralUri, positionOf(mixtral, 'experts'))).toBeNull();
  });

  it('renames the model, re-quoting the new name', async () => {
    const edit = await session.rename(mixtralUri, positionOf(mixtral, 'mixtral-8x7b', 2), 'my "mixtral"');
    expect(edit).toEqual({ changes: { [mixtralUri]: [{ range: nameRange, newText: '"my \\"mixtral\\""' }] } });
    const renamed = mixtral.replace('"mixtral-8x7b"', edit!.changes![mixtralUri]![0]!.newText);
    expect(checkSpec(renamed, 'renamed.moe').config?.name).toBe('my "mixtral"');
  });

  it('refuses an empty name', async () => {
    await expect(session.rename(mixtralUri, positionOf(mixtral, 'mixtral-8x7b', 2), '  ')).rejects.toThrow('a model name cannot be empty');
  });
});

describe('positions', () => {
  it('maps ranges in a file with CRLF line breaks', async () => {
    const crlf = mistyped.replace(/\n/g, '\r\n');
    const { diagnostics } = await session.open('untitled:crlf.moe', crlf);
    expect(diagnostics[2]!.range.start).toEqual(positionOf(mistyped, 'sofmax_topk'));
  });
});

describe('a plugin-extended registry', () => {
  it('completes, documents and accepts the kinds a plugin registers', async () => {
    const registry = defaultRegistry.clone();
    registry.register({
      name: 'hash_router', category: 'router', doc: 'Routes each token by a hash of its id (a plugin kind).',
      params: [{ name: 'seed', doc: 'Hash seed.', value: { type: 'int', min: 0 }, default: 0 }],
    });
    const plugin = LspSession.inMemory(registry);
    await plugin.initialize();
    try {
      const { text, position } = withCursor('model "m" {\n  moe {\n    router = |\n  }\n}');
      await plugin.open('untitled:plugin-completion.moe', text);
      const items = await plugin.completion('untitled:plugin-completion.moe', position);
      expect(items.find((i) => i.label === 'hash_router')?.documentation).toMatchObject({ value: expect.stringContaining('a hash of its id') });

      const spec = mixtral.replace('softmax_topk(renormalize = true)', 'hash_router(seed = 7)');
      expect((await plugin.open('untitled:plugin-spec.moe', spec)).diagnostics).toEqual([]);
      expect((await session.open('untitled:no-plugin-spec.moe', spec)).diagnostics[0]!.message).toContain('unknown router kind `hash_router`');
      const seed = await plugin.completion('untitled:plugin-spec.moe', positionOf(spec, 'seed', 2));
      expect(seed.map((i) => i.label)).toEqual(['seed']);
    } finally {
      await plugin.close();
    }
  });
  it('shows weight bytes for a quantization kind a plugin registers, at its storage cost', async () => {
    const registry = defaultRegistry.clone();
    registry.register({
      name: 'q2k', category: 'quant', doc: '2-bit values, one f16 scale per group (a plugin kind).',
      params: [{ name: 'group', doc: 'Weights sharing one scale.', value: { type: 'int', min: 1 }, default: 64 }],
      storage: (params) => ({ bits: 2, scaleBits: 16, group: params['group'] as number }),
    });
    const plugin = LspSession.inMemory(registry);
    await plugin.initialize();
    try {
      const spec = mixtral.replace('int4(group = 32)', 'q2k(group = 16)');
      expect((await plugin.open('untitled:plugin-quant.moe', spec)).diagnostics).toEqual([]);
      const value = ((await plugin.hover('untitled:plugin-quant.moe', positionOf(spec, 'compile', 2)))!.contents as { value: string }).value;
      // 45.10 B expert weights at 2 + 16 / 16 = 3 bits each.
      expect(value).toContain(`| experts | q2k<g16> | 45.10 B | ${((45_097_156_608 * 3) / 8 / 2 ** 30).toFixed(2)} GiB |`);
    } finally {
      await plugin.close();
    }
  });
});
