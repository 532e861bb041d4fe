// One value holds everything a name can be looked up in: spec kinds, op definitions and their
// reference semantics, kernels, router partials, activations, and the passes in order. It is
// passed explicitly through check -> pipeline -> interpreter -> codegen -> bundle; `with(plugin)`
// returns a copy, so nothing global ever changes.
import { builtinKernels, type KernelRegistry } from '../../codegen/plan/kernel-registry.js';
import { builtinSemantics, type Semantics } from '../../ir/interpret/interpret.js';
import type { Pass } from '../../passes/pass.js';
import { defaultPasses } from '../pipeline.js';
import { builtinRegistry } from '../spec/kinds/builtin.js';
import type { KindRegistry } from '../spec/kinds/registry.js';
import type { MoecPlugin } from './plugin-api.js';

/** A plugin in a registry, with where it came from (for the manifest and messages). */
export interface PluginOrigin {
  name: string;
  file: string;
  sha256: string;
}

export class PluginError extends Error {}

export class Registry {
  private constructor(
    readonly kinds: KindRegistry,
    readonly semantics: Semantics,
    readonly kernels: KernelRegistry,
    readonly passes: readonly Pass[],
    readonly plugins: readonly PluginOrigin[],
  ) {}

  static builtin(): Registry {
    return new Registry(builtinRegistry(), builtinSemantics, builtinKernels, defaultPasses, []);
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
      { ops: opKernels, routers: routerPartials, activations: activationKernels },
      passes,
      [...this.plugins, origin],
    );
  }
}
