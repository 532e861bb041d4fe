// The reference for generation: the whole-model graph run call after call with its KV caches
// kept between calls, as transformers' generate() runs a model with a cache (prefill the prompt,
// then one token per call at the next position).
import { moduleOf, type Graph, type Module, type Value } from '../graph.js';
import { elementCount } from '../types.js';
import { builtinSemantics, interpretModule, type HostTensor, type Semantics } from './interpret.js';

export class ReferenceSession {
  /** Tokens already in the caches: the next call's first position. */
  length = 0;
  private readonly state: Record<string, HostTensor> = {};

  private readonly module: Module;

  /** The model-level graph, or a lowered module (its decode function serves calls of up to max_tokens). */
  constructor(model: Graph | Module, private readonly weight: (param: Value) => Float32Array, private readonly semantics: Semantics = builtinSemantics) {
    this.module = 'functions' in model ? model : moduleOf(model);
    for (const s of this.module.functions[0]!.state ?? []) {
      const shape = s.type.shape as number[];
      // Counters (u32, i32) as Int32Array, everything else (caches) as f32 values.
      const integer = s.type.dtype === 'u32' || s.type.dtype === 'i32';
      this.state[s.name] = { shape, data: integer ? new Int32Array(elementCount(shape)) : new Float32Array(elementCount(shape)) };
    }
  }

  /** The logits [T, vocab] of `ids` at the next T positions; their keys and values join the caches. */
  forward(ids: ArrayLike<number>): HostTensor {
    const positions = Int32Array.from({ length: ids.length }, (_, t) => this.length + t);
    const inputs = { token_ids: { shape: [ids.length], data: Int32Array.from(ids) }, positions: { shape: [ids.length], data: positions } };
    const out = interpretModule(this.module, inputs, this.weight, this.semantics, this.state);
    this.length += ids.length;
    return Object.values(out)[0]!;
  }

  /** Greedy decoding: the prompt in one call, then `count` tokens one call each (argmax, lowest id on ties). */
  greedy(prompt: ArrayLike<number>, count: number): number[] {
    const tokens: number[] = [];
    let logits = this.forward(prompt);
    for (let i = 0; i < count; i++) {
      const next = argmaxOfLastRow(logits);
      tokens.push(next);
      if (i + 1 < count) logits = this.forward([next]);
    }
    return tokens;
  }
}

export function argmaxOfLastRow(logits: HostTensor): number {
  const [rows, vocab] = logits.shape as [number, number];
  const row = logits.data.subarray((rows - 1) * vocab, rows * vocab);
  let best = 0;
  for (let i = 1; i < vocab; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
