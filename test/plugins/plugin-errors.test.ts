// Bad plugins get errors that name the file at fault: a missing file (at the spec line that asks
// for it), a module that fails to load, a default export that is no plugin, clashes of kinds and
// plugin names, a router kind without semantics, a pass after no pass, a router WGSL template that
// does not compile (Handlebars) and one whose WGSL the device rejects. The fixtures are written to a
// folder under the repo's git-ignored .tmp/, inside the package, so they import `moec/plugin` as a
// plugin beside a user's spec would.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { compileMoeBlockPlan } from '../../compiler/moe-block-plan.js';
import { loadPlugins } from '../../compiler/plugins/load-plugins.js';
import { PluginError, Registry } from '../../compiler/plugins/registry.js';
import { checkSpec } from '../../compiler/spec/check.js';
import { parseSpec } from '../../compiler/spec/parse.js';
import { pluginRequestsOf } from '../../compiler/spec/plugin-paths.js';
import { GpuError, openDevice, type GpuRuntime } from '../../runtime/device.js';
import { createMoeBlockExecutor } from '../../runtime/moe-executor.js';
import { createNodeGpu } from '../../runtime/node/dawn.js';
import { moec, ROOT } from '../bundle/cli.js';

mkdirSync(join(ROOT, '.tmp'), { recursive: true });
const DIR = mkdtempSync(join(ROOT, '.tmp', 'plugin-errors-'));
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Writes `<name>.js` in the fixture folder; returns its absolute path. */
function fixture(name: string, text: string): string {
  const file = join(DIR, `${name}.js`);
  writeFileSync(file, text);
  return file;
}

const HEADER = "import { fileURLToPath } from 'node:url';\nimport { definePlugin } from 'moec/plugin';\n";
/** A router kind `name` and its interpreter (expert k in slot k, equal weights). */
const routerKind = (name: string) => `{ name: '${name}', category: 'router', doc: 'a test router', params: [] }`;
const interpret = '({ topK }) => ({ ids: Array.from({ length: topK }, (_, k) => k), weights: new Array(topK).fill(1 / topK) })';
/** A plugin with router kind `kind`, its interpreter, and (when given) its WGSL selection template. */
const routerPlugin = (name: string, kind: string, wgsl?: string) =>
  `${HEADER}export default definePlugin({
  name: '${name}',
  kinds: [${routerKind(kind)}],
  routers: { ${kind}: { interpret: ${interpret}${wgsl === undefined ? '' : `, kernel: { template: { source: ${JSON.stringify(wgsl)}, origin: fileURLToPath(import.meta.url) }, context: () => ({ n: 1 }) }`} } },
});
`;

/** A small spec using router `router`, with `compile { plugins = [...] }`; returns its path and source. */
function spec(name: string, plugins: string[], router = 'softmax_topk'): { file: string; source: string } {
  const source = `model "${name}" {
  hidden = 16
  vocab = 32
  layers = 1
  norm = rmsnorm
  attention = gqa(heads = 2)
  moe {
    experts = 4
    top_k = 2
    router = ${router}
    expert = swiglu(intermediate = 24)
  }
}
compile {
  plugins = [${plugins.map((p) => JSON.stringify(p)).join(', ')}]
}
`;
  const file = join(DIR, `${name}.moe`);
  writeFileSync(file, source);
  return { file, source };
}

/** What loadSpec does before checking: the spec's plugins, relative to the spec. */
function loadSpecPlugins(s: { file: string; source: string }, base = Registry.builtin()): Promise<Registry> {
  return loadPlugins(pluginRequestsOf(parseSpec(s.source, s.file).ast), { specFile: s.file, specSource: s.source }, base);
}

async function pluginError(load: Promise<unknown>): Promise<string> {
  const error = await load.then(() => undefined, (e: unknown) => e);
  expect(error, 'expected a PluginError').toBeInstanceOf(PluginError);
  return (error as PluginError).message;
}

describe('loading', () => {
  test('a missing file: the spec file:line:col, the line, a caret under the string, and the path looked for', async () => {
    const s = spec('missing', ['./missing.js']);
    const lines = s.source.split('\n');
    const line = lines.findIndex((l) => l.includes('"./missing.js"'));
    const col = lines[line]!.indexOf('"./missing.js"') + 1;
    expect(await pluginError(loadSpecPlugins(s))).toBe(
      [
        `${s.file}:${line + 1}:${col}: error: plugin ./missing.js: no such file (looked for ${join(DIR, 'missing.js')})`,
        `  ${lines[line]}`,
        `  ${' '.repeat(col - 1)}^${'~'.repeat('"./missing.js"'.length - 1)}`,
      ].join('\n'),
    );
  });

  test('a --plugin path that does not exist names the path and where it was looked for', async () => {
    const missing = relative(process.cwd(), join(DIR, 'nowhere.js'));
    expect(await pluginError(loadPlugins([{ path: missing }]))).toBe(`--plugin ${missing}: plugin ${missing}: no such file (looked for ${join(DIR, 'nowhere.js')})`);
  });

  test('a module that does not parse names the file', async () => {
    const file = fixture('syntax', `${HEADER}export default definePlugin({\n  name: 'broken',\n  kinds: [,\n});\n`);
    expect(await pluginError(loadPlugins([{ path: file }]))).toContain(`plugin ${file}: cannot load ${file}: `);
  });

  test('a module that throws while loading names the file and the error', async () => {
    const file = fixture('throws', "throw new Error('no GPU here');\n");
    expect(await pluginError(loadPlugins([{ path: file }]))).toBe(`--plugin ${file}: plugin ${file}: cannot load ${file}: no GPU here`);
  });

  test('a default export that is not a plugin (or none at all)', async () => {
    const plain = fixture('plain-object', "export default { name: 'plain', kinds: [] };\n");
    const none = fixture('no-default', 'export const name = 1;\n');
    for (const file of [plain, none]) {
      expect(await pluginError(loadPlugins([{ path: file }]))).toBe(
        `--plugin ${file}: plugin ${file}: ${file} is not a moec plugin: its default export must be \`definePlugin({ name, ... })\` (from moec/plugin)`,
      );
    }
  });
});

describe('registering', () => {
  test('a router kind that clashes with a builtin kind', async () => {
    const file = fixture('clash-builtin', routerPlugin('clash-builtin', 'softmax_topk'));
    expect(await pluginError(loadPlugins([{ path: file }]))).toBe(`${file}: plugin clash-builtin: kind softmax_topk clashes with a router kind of the same name already registered`);
  });

  test("a router kind that clashes with another plugin's", async () => {
    const first = fixture('first-router', routerPlugin('first-router', 'my_router'));
    const second = fixture('second-router', routerPlugin('second-router', 'my_router'));
    expect(await pluginError(loadPlugins([{ path: first }, { path: second }]))).toBe(`${second}: plugin second-router: kind my_router clashes with a router kind of the same name already registered`);
  });

  test('two plugins with the same name', async () => {
    const first = fixture('same-name-a', routerPlugin('same-name', 'router_a'));
    const second = fixture('same-name-b', routerPlugin('same-name', 'router_b'));
    expect(await pluginError(loadPlugins([{ path: first }, { path: second }]))).toBe(`${second}: plugin same-name: a plugin named same-name is already loaded (from ${first})`);
  });

  test('a router kind without interpreter semantics', async () => {
    const file = fixture('no-semantics', `${HEADER}export default definePlugin({ name: 'no-semantics', kinds: [${routerKind('lonely')}] });\n`);
    expect(await pluginError(loadPlugins([{ path: file }]))).toBe(`${file}: plugin no-semantics: router kind lonely has no interpreter semantics (give routers.lonely.interpret)`);
  });

  test('a pass placed after a pass that does not exist', async () => {
    const file = fixture(
      'bad-pass',
      `${HEADER}export default definePlugin({ name: 'bad-pass', passes: [{ pass: { name: 'my-pass', description: 'does nothing', run: (m) => m }, after: 'no-such-pass' }] });\n`,
    );
    const message = await pluginError(loadPlugins([{ path: file }]));
    expect(message).toMatch(new RegExp(`^${escape(file)}: plugin bad-pass: pass my-pass runs after \`no-such-pass\`, which is no pass \\(passes: quantize-weights, .*legalize-webgpu\\)$`));
  });
});

/** A config using router kind `kind` from the plugin in `file`, and the registry with it. */
async function configWith(file: string, kind: string) {
  const registry = await loadPlugins([{ path: file }]);
  const s = spec(`uses-${kind}`, [], kind);
  const checked = checkSpec(s.source, s.file, registry.kinds);
  if (!checked.config) throw new Error(checked.diagnostics.map((d) => d.message).join('; '));
  return { config: checked.config, registry };
}

describe('router WGSL', () => {
  test('a Handlebars syntax error in the template names the plugin file', async () => {
    const file = fixture('bad-template', routerPlugin('bad-template', 'bad_template', 'fn route_token(row: u32, out: u32) {\n{{#if n}}\n}\n'));
    const { config, registry } = await configWith(file, 'bad_template');
    expect(() => compileMoeBlockPlan(config, 0, { registry })).toThrow(new RegExp(`^${escape(file)}: WGSL template: Parse error on line \\d+:`));
  });

  test('a field the context does not give (strict) names the plugin file', async () => {
    const file = fixture('missing-field', routerPlugin('missing-field', 'missing_field', 'fn route_token(row: u32, out: u32) {\n  let k = {{nope}};\n}\n'));
    const { config, registry } = await configWith(file, 'missing_field');
    expect(() => compileMoeBlockPlan(config, 0, { registry })).toThrow(new RegExp(`^${escape(file)}: WGSL template: "nope" not defined`));
  });

  describe('on the device', () => {
    let rt: GpuRuntime;
    beforeAll(async () => {
      rt = await openDevice({ gpu: createNodeGpu() });
    });
    afterAll(() => rt?.destroy());

    const weights = { readF32: () => { throw new Error('no weights: the kernels should not compile'); } };

    it('a WGSL error inside the partial names the plugin file and the line in the rendered partial', async () => {
      const file = fixture('bad-wgsl', routerPlugin('bad-wgsl', 'bad_wgsl', 'fn route_token(row: u32, out: u32) {\n  let a: u32 = 1.5;\n  route_ids[out] = -1;\n}'));
      const { config, registry } = await configWith(file, 'bad_wgsl');
      const error = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0, { registry }), weights).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(GpuError);
      const message = (error as GpuError).message;
      expect(message).toMatch(new RegExp(`^uses-bad_wgsl\\.moe_block_0/router_bad_wgsl:\\d+:\\d+: .*\\(line 2 of the WGSL rendered from ${escape(file)}\\)\\n  +let a: u32 = 1\\.5;\\n +\\^`));
    });

    it('an error the partial causes elsewhere in the kernel (no route_token) still names the plugin file', async () => {
      const file = fixture('no-route-token', routerPlugin('no-route-token', 'no_route_token', 'fn route_tokens(row: u32, out: u32) {\n}'));
      const { config, registry } = await configWith(file, 'no_route_token');
      const error = await createMoeBlockExecutor(rt, compileMoeBlockPlan(config, 0, { registry }), weights).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(GpuError);
      expect((error as GpuError).message).toMatch(new RegExp(`^uses-no_route_token\\.moe_block_0/router_no_route_token:\\d+:\\d+: .*route_token.*\\(this kernel includes WGSL from ${escape(file)}\\)`));
    });
  });
});

describe('the CLI', () => {
  // Each spec names its bad plugin in `compile { plugins = [...] }`.
  const cases: { name: string; plugin?: string; expected: (s: { file: string }) => RegExp }[] = [
    { name: 'missing', expected: (s) => new RegExp(`^${escape(s.file)}:15:14: error: plugin \\./cli-missing\\.js: no such file \\(looked for ${escape(join(DIR, 'cli-missing.js'))}\\)\\n`) },
    { name: 'syntax', plugin: `${HEADER}export default definePlugin({ name: 'x',, });\n`, expected: (s) => new RegExp(`^${escape(s.file)}:15:14: error: plugin \\./cli-syntax\\.js: cannot load ${escape(join(DIR, 'cli-syntax.js'))}: \\S`) },
    { name: 'not-plugin', plugin: 'export default 42;\n', expected: () => /is not a moec plugin/ },
    // Named by the spec: the spec line that asks for it, then the plugin file and the clash.
    { name: 'clash', plugin: routerPlugin('cli-clash', 'relu_gate'), expected: (s: { file: string }) => new RegExp(`^${escape(s.file)}:\\d+:\\d+: error: ${escape(join(DIR, 'cli-clash.js'))}: plugin cli-clash: kind relu_gate clashes`) },
  ];

  for (const c of cases) {
    it(`moec check with a bad plugin (${c.name}) exits 1, the message on stderr, nothing on stdout`, async () => {
      if (c.plugin) fixture(`cli-${c.name}`, c.plugin);
      const s = spec(`cli-${c.name}`, [`./cli-${c.name}.js`]);
      const result = await moec(['check', s.file]);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(c.expected(s));
      expect(result.status).toBe(1);
    });
  }

  it('moec compile with a template that does not compile exits 1 and writes no bundle', async () => {
    fixture('cli-template', routerPlugin('cli-template', 'cli_template', 'fn route_token(row: u32, out: u32) {\n{{#if n}}\n}\n'));
    const s = spec('cli-template', ['./cli-template.js'], 'cli_template');
    const out = join(DIR, 'bundle-out');
    const result = await moec(['compile', s.file, '-o', out]);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`${join(DIR, 'cli-template.js')}: WGSL template: Parse error`);
    expect(result.status).toBe(1);
    expect(existsSync(join(out, 'model.js'))).toBe(false);
  });
});
