// The registry every spec starts from; plugins clone and extend it.
import { activationKinds, attentionKinds, normKinds } from './layers.js';
import { quantKinds } from './quantization.js';
import { KindRegistry } from './registry.js';
import { ropeKinds } from './rope.js';
import { roundingKinds } from './rounding.js';
import { routerKinds } from './routers.js';

export function builtinRegistry(): KindRegistry {
  const registry = new KindRegistry();
  for (const kind of [...normKinds, ...attentionKinds, ...ropeKinds, ...routerKinds, ...activationKinds, ...quantKinds, ...roundingKinds]) registry.register(kind);
  return registry;
}

export const defaultRegistry = builtinRegistry();
