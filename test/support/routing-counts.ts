// The independent side of the routing-trace tests: each MoE layer's route ids captured from the
// reference interpreter running the model-level graph (ReferenceSession with moe.route wrapped),
// counted here with plain loops; and a session over a traced lowered module whose counters are
// u32 state (Int32Array on the host, as the interpreter holds integers).
import type { Graph, Module, Value } from '../../ir/graph.js';
import { builtinSemantics, interpretModule, type HostTensor } from '../../ir/interpret/interpret.js';
import { ReferenceSession } from '../../ir/interpret/reference-session.js';
import { elementCount } from '../../ir/types.js';

/** counts[E] then transitions[E, E] row-major per MoE layer (the last: counts only), as moe.trace_routes lays them out. */
export type LayerCounters = number[][];

/** Runs `calls` (token ids, one call each, caches kept) through the model graph and counts each MoE layer's routing. */
export function countRoutesByReference(graph: Graph, weight: (p: Value) => Float32Array, moeLayers: readonly number[], experts: number, calls: readonly number[][]): LayerCounters {
  let captured = new Map<number, HostTensor>();
  const route = builtinSemantics.ops['moe.route']!;
  const semantics = {
    ...builtinSemantics,
    ops: {
      ...builtinSemantics.ops,
      'moe.route': (call: Parameters<typeof route>[0]) => {
        const outputs = route(call);
        captured.set(Number(/^layers\.(\d+)\./.exec(call.op.outputs[0]!.name)![1]), outputs[0]!);
        return outputs;
      },
    },
  };
  const session = new ReferenceSession(graph, weight, semantics);
  const counters = moeLayers.map((_, i) => new Array<number>(experts + (i + 1 < moeLayers.length ? experts * experts : 0)).fill(0));
  for (const ids of calls) {
    captured = new Map();
    session.forward(ids);
    moeLayers.forEach((layer, i) => {
      const here = captured.get(layer)!;
      const next = i + 1 < moeLayers.length ? captured.get(moeLayers[i + 1]!)! : undefined;
      const [tokens, k] = here.shape as [number, number];
      for (let t = 0; t < tokens; t++) {
        for (let a = 0; a < k; a++) {
          const e = here.data[t * k + a]!;
          if (e < 0) continue;
          counters[i]![e]! += 1;
          if (!next) continue;
          const k2 = next.shape[1]!;
          for (let b = 0; b < k2; b++) {
            const f = next.data[t * k2 + b]!;
            if (f >= 0) counters[i]![experts + e * experts + f]! += 1;
          }
        }
      }
    });
  }
  return counters;
}

/** A traced lowered module run call after call on the interpreter; `counters(name)` reads a trace state. */
export class TracedSession {
  private length = 0;
  private readonly state: Record<string, HostTensor> = {};

  constructor(private readonly module: Module, private readonly weight: (p: Value) => Float32Array) {
    for (const s of module.functions[0]!.state ?? []) {
      const shape = s.type.shape as number[];
      const n = elementCount(shape);
      this.state[s.name] = { shape, data: s.type.dtype === 'u32' ? new Int32Array(n) : new Float32Array(n) };
    }
  }

  forward(ids: readonly number[]): HostTensor {
    const inputs = {
      token_ids: { shape: [ids.length], data: Int32Array.from(ids) },
      positions: { shape: [ids.length], data: Int32Array.from(ids, (_, t) => this.length + t) },
    };
    const out = interpretModule(this.module, inputs, this.weight, builtinSemantics, this.state);
    this.length += ids.length;
    return Object.values(out)[0]!;
  }

  counters(name: string): number[] {
    return Array.from(this.state[name]!.data);
  }
}
