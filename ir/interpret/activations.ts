// The gated activations of an MLP, act(gate, up), one per activation kind of
// compiler/spec/kinds/layers.ts. Routed experts and dense/shared MLPs both use this table.
import { numParam, type KindRef } from '../model-config.js';
import { sigmoid, silu } from './math.js';

export type GatedActivation = (gate: number, up: number) => number;

/** Activation kind name -> act(gate, up) with the kind's params bound. A plugin's registry adds to a copy. */
export const activationImplementations: Readonly<Record<string, (kind: KindRef) => GatedActivation>> = {
  // Mixtral / Qwen / DeepSeek: silu(gate) * up.
  swiglu: () => (gate, up) => silu(gate) * up,
  // gpt-oss: gate clamped above only, up clamped both ways, and the +1 on up.
  clamped_swiglu: (kind) => {
    const limit = numParam(kind, 'limit');
    const alpha = numParam(kind, 'alpha');
    return (gate, up) => {
      const g = Math.min(gate, limit);
      const u = Math.min(Math.max(up, -limit), limit);
      return (u + 1) * g * sigmoid(alpha * g);
    };
  },
};

export function gatedActivation(kind: KindRef, table: Readonly<Record<string, (kind: KindRef) => GatedActivation>>): GatedActivation {
  const make = table[kind.kind];
  if (!make) throw new Error(`the reference interpreter has no activation ${kind.kind} (known: ${Object.keys(table).join(', ')})`);
  return make(kind);
}
