// What the interpreter runs a graph with, passed explicitly (a plugin's registry adds to a copy):
// the implementation of each opcode, of each router kind and of each activation kind, and the op
// definitions its verifier checks against.
import type { KindRef } from '../model-config.js';
import type { OpDefinition } from '../op-checks.js';
import type { GatedActivation } from './activations.js';
import type { OpImplementation } from './host-tensor.js';
import type { RouterImplementation } from './routers.js';

export interface Semantics {
  readonly opDefinitions: Readonly<Record<string, OpDefinition>>;
  readonly ops: Readonly<Record<string, OpImplementation>>;
  readonly routers: Readonly<Record<string, RouterImplementation>>;
  readonly activations: Readonly<Record<string, (kind: KindRef) => GatedActivation>>;
}
