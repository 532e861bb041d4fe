// The language server loads the plugins a spec's compile block names, as the CLI does: their kinds
// check, complete and hover; a plugin that cannot be loaded is a diagnostic at the string naming it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileUri, LspSession, positionOf } from './lsp-session.js';

const topPSpec = join(import.meta.dirname, '../../examples/plugins/top-p/top-p.moe');
const topP = readFileSync(topPSpec, 'utf8');

let session: LspSession;
beforeAll(async () => {
  session = LspSession.inMemory();
  await session.initialize();
});
afterAll(() => session.close());

describe('a spec with plugins in the editor', () => {
  it('checks with the plugin\'s kinds: no diagnostics, and the plugin router completes', async () => {
    const uri = fileUri(topPSpec);
    const { diagnostics } = await session.open(uri, topP);
    expect(diagnostics).toEqual([]);
    const labels = (await session.completion(uri, positionOf(topP, 'top_p(', 0))).map((i) => i.label);
    expect(labels).toContain('top_p');
    expect(labels).toContain('softmax_topk');
  });

  it('reports a plugin that cannot be loaded at the string that names it', async () => {
    const text = topP.replace('"./top-p.js"', '"./no-such-plugin.js"');
    const uri = fileUri(join(import.meta.dirname, '../../examples/plugins/top-p/missing.moe'));
    const { diagnostics } = await session.open(uri, text);
    const missing = diagnostics.find((d) => String(d.message).includes('no-such-plugin.js'))!;
    expect(missing.message).toMatch(/no such file/);
    const at = positionOf(text, '"./no-such-plugin.js"');
    expect(missing.range.start).toEqual(at);
    // Without the plugin its router kind is unknown: the checker says so too.
    expect(diagnostics.map((d) => d.message).join('\n')).toMatch(/unknown router kind `top_p`/);
  });
});
