// One value holds everything a name can be looked up in: spec kinds, op definitions and their
// reference semantics, kernels, router partials, activations, weight formats (codec and WGSL
// decode), and the passes in order. It is
// passed explicitly through check -> pipeline -> interpreter -> codegen -> bundle; `with(plugin)`
// returns a copy, so nothing global ever changes.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTemplateSource } from '../../codegen/kernels/template.js';
import type { WeightLoad } from '../../codegen/kernels/weights/weight-loads.js';
import { builtinKernels, type KernelRegistry } from '../../codegen/plan/kernel-registry.js';
import { builtinSemantics, type Semantics } from '../../ir/interpret/interpret.js';
import type { Pass } from '../../passes/pass.js';
import { builtinFormats } from '../../runtime/quant/builtin-formats.js';
import { checkFormatDefinition, type FormatDefinition, type FormatTable } from '../../runtime/quant/weight-format.js';
import { defaultPasses } from '../pipeline.js';
import { builtinRegistry } from '../spec/kinds/builtin.js';
import type { KindRegistry } from '../spec/kinds/registry.js';
import type { MoecPlugin } from './plugin-api.js';
import type { Span } from '../spec/ast.js';

/** A plugin in a registry, with where it came from (for the manifest and messages). */
export interface PluginOrigin {
  name: string;
  file: string;
  sha256: string;
  /** The weight formats it gives and the runtime module (a file) holding each one's codec, which model.js bundles. */
  formats?: PluginFormatOrigin[];
}

export interface PluginFormatOrigin {
  name: string;
  runtime: string;
}

/** A plugin format's runtime module as a file path: a file: URL, or a path relative to the plugin's file. */
export function runtimeModulePath(runtime: URL | string, pluginFile: string): string {
  if (runtime instanceof URL || runtime.startsWith('file:')) return fileURLToPath(runtime);
  return resolve(dirname(pluginFile), runtime);
}

/** A plugin that cannot be loaded or added; `span` is where the spec names it, `detail` the message without the source excerpt. */
export class PluginError extends Error {
  constructor(message: string, readonly where: { span?: Span; detail?: string } = {}) {
    super(message);
  }
}

export class Registry {
  private constructor(
    readonly kinds: KindRegistry,
    readonly semantics: Semantics,
    readonly kernels: KernelRegistry,
    readonly passes: readonly Pass[],
    readonly plugins: readonly PluginOrigin[],
    /** Weight storage formats by name (layout and codec): the builtin ones and the plugins'. */
    readonly formats: FormatTable = builtinFormats,
  ) {}

  static builtin(): Registry {
    return new Registry(builtinRegistry(), builtinSemantics, builtinKernels, defaultPasses, [], builtinFormats);
  }

  /** A copy with `plugin` added; throws PluginError naming `origin.file` on any clash or gap. */
  with(plugin: MoecPlugin, origin: PluginOrigin = { name: plugin.name, file: plugin.name, sha256: '' }): Registry {
    const where = `${origin.file}: plugin ${plugin.name}`;
    const fail = (message: string): never => {
      throw new PluginError(`${where}: ${message}`);
    };
    if (this.plugins.some((p) => p.name === plugin.name)) fail(`a plugin named ${plugin.name} is already loaded (from ${this.plugins.find((p) => p.name === plugin.name)!.file})`);
    const kinds = this.kinds.clone();
    for (const kind of plugin.kinds ?? []) {
      try {
        kinds.register(kind);
      } catch {
        fail(`kind ${kind.name} clashes with a ${kind.category} kind of the same name already registered`);
      }
    }
    const routers = { ...this.semantics.routers };
    const routerPartials = { ...this.kernels.routers };
    for (const [name, router] of Object.entries(plugin.routers ?? {})) {
      if (!kinds.get('router', name)) fail(`router ${name} has no router kind of that name (add it to kinds)`);
      if (this.semantics.routers[name]) fail(`router ${name} clashes with a builtin router`);
      routers[name] = router.interpret;
      if (router.kernel) routerPartials[name] = router.kernel;
    }
    const activations = { ...this.semantics.activations };
    const activationKernels = { ...this.kernels.activations };
    for (const [name, activation] of Object.entries(plugin.activations ?? {})) {
      if (!kinds.get('activation', name)) fail(`activation ${name} has no activation kind of that name (add it to kinds)`);
      if (this.semantics.activations[name]) fail(`activation ${name} clashes with a builtin activation`);
      activations[name] = activation.interpret;
      if (activation.wgsl) activationKernels[name] = activation.wgsl;
    }
    for (const kind of plugin.kinds ?? []) {
      if (kind.category === 'router' && !routers[kind.name]) fail(`router kind ${kind.name} has no interpreter semantics (give routers.${kind.name}.interpret)`);
      if (kind.category === 'activation' && !activations[kind.name]) fail(`activation kind ${kind.name} has no interpreter semantics (give activations.${kind.name}.interpret)`);
    }
    const opDefinitions = { ...this.semantics.opDefinitions };
    const ops = { ...this.semantics.ops };
    const opKernels = { ...this.kernels.ops };
    for (const [opcode, op] of Object.entries(plugin.ops ?? {})) {
      if (opDefinitions[opcode]) fail(`op ${opcode} clashes with an op of the same name`);
      if (typeof op.interpret !== 'function') fail(`op ${opcode} has no interpreter semantics (interpret)`);
      opDefinitions[opcode] = op.definition;
      ops[opcode] = op.interpret;
      if (op.kernel) opKernels[opcode] = op.kernel;
    }
    const formats: Record<string, FormatDefinition> = { ...this.formats };
    const weightLoads: Record<string, WeightLoad> = { ...this.kernels.weightLoads };
    const formatOrigins: PluginFormatOrigin[] = [];
    for (const [name, format] of Object.entries(plugin.formats ?? {})) {
      if (Object.hasOwn(formats, name)) fail(`format ${name} clashes with a weight format of the same name`);
      if (!kinds.get('quant', name)?.storage) fail(`format ${name} has no quant kind of that name with a storage cost (add it to kinds)`);
      if (!format.definition) fail(`format ${name} has no definition (give formats.${name}.definition, or load the plugin with loadPlugins, which imports formats.${name}.runtime)`);
      try {
        checkFormatDefinition(format.definition!, `format ${name}`);
      } catch (e) {
        fail((e as Error).message);
      }
      if (format.definition!.name !== name) fail(`format ${name}: its definition is named ${format.definition!.name}`);
      if (typeof format.wgsl !== 'string' || !/\{\{\s*name\s*\}\}_at\s*\(/.test(format.wgsl)) fail(`format ${name}: wgsl must be a template defining fn {{name}}_at(m: u32, i: u32) -> f32`);
      if (!(format.runtime instanceof URL) && typeof format.runtime !== 'string') fail(`format ${name}: runtime must be the URL of the module exporting its FormatDefinition`);
      formats[name] = format.definition!;
      const wgsl = format.wgsl;
      weightLoads[name] = { layout: format.definition!, render: (context) => renderTemplateSource(`${origin.file} (format ${name})`, wgsl, context) };
      formatOrigins.push({ name, runtime: runtimeModulePath(format.runtime, origin.file) });
    }
    let passes = [...this.passes];
    for (const { pass, after } of plugin.passes ?? []) {
      if (passes.some((p) => p.name === pass.name)) fail(`pass ${pass.name} clashes with a pass of the same name`);
      const index = passes.findIndex((p) => p.name === after);
      if (index < 0) fail(`pass ${pass.name} runs after \`${after}\`, which is no pass (passes: ${passes.map((p) => p.name).join(', ')})`);
      passes = [...passes.slice(0, index + 1), pass, ...passes.slice(index + 1)];
    }
    return new Registry(
      kinds,
      { opDefinitions, ops, routers, activations },
      { ops: opKernels, routers: routerPartials, activations: activationKernels, weightLoads },
      passes,
      [...this.plugins, formatOrigins.length ? { ...origin, formats: formatOrigins } : origin],
      formats,
    );
  }
}
