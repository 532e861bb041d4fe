// Kinds (routers, activations, quantizations, norms, attentions, token rounding) are names
// looked up here, not grammar keywords: a plugin registers a kind and the language knows it.
import type { ParamValue } from '../../../ir/model-config.js';
import type { WeightStorage } from '../../../passes/pass.js';

export type KindCategory = 'norm' | 'attention' | 'rope' | 'router' | 'activation' | 'quant' | 'rounding';

export type ValueType =
  | { type: 'int'; min?: number; max?: number }
  | { type: 'number'; min?: number; max?: number; exclusiveMin?: boolean }
  | { type: 'bool' }
  | { type: 'string' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'kind'; category: KindCategory }
  | { type: 'int-list'; min?: number }
  | { type: 'number-list'; min?: number; exclusiveMin?: boolean }
  | { type: 'string-list' }
  | { type: 'kind-list'; category: KindCategory };

export interface FieldSchema {
  name: string;
  doc: string;
  value: ValueType;
  required?: boolean;
  default?: ParamValue;
  /** For fields written `name qualifier = value` (e.g. `quantize experts = ...`): the allowed qualifiers. */
  qualifiers?: readonly string[];
}

/** What a kind's own consistency check may report: a message about one of its params. */
export interface KindIssue {
  param?: string;
  message: string;
  hint?: string;
}

/** Facts from around the kind that its check may need (the MoE block's sizes, etc.). */
export interface KindContext {
  experts?: number;
  topK?: number;
  hidden?: number;
}

export interface KindDefinition {
  name: string;
  category: KindCategory;
  doc: string;
  params: FieldSchema[];
  /** Fills parameters whose default depends on the context, and reports inconsistent ones. */
  resolve?(params: Record<string, ParamValue>, context: KindContext): KindIssue[];
  /** Quantization kinds: how a weight matrix is stored with these params (read by the quantize-weights pass). */
  storage?(params: Record<string, ParamValue>): WeightStorage;
}

export class KindRegistry {
  private readonly kinds = new Map<string, KindDefinition>();

  register(kind: KindDefinition): void {
    const key = `${kind.category}:${kind.name}`;
    if (this.kinds.has(key)) throw new Error(`kind ${kind.name} is already registered as a ${kind.category}`);
    this.kinds.set(key, kind);
  }

  get(category: KindCategory, name: string): KindDefinition | undefined {
    return this.kinds.get(`${category}:${name}`);
  }

  list(category: KindCategory): KindDefinition[] {
    return [...this.kinds.values()].filter((k) => k.category === category);
  }

  /** A copy to which a plugin can add kinds without changing the built-in registry. */
  clone(): KindRegistry {
    const copy = new KindRegistry();
    for (const kind of this.kinds.values()) copy.register(kind);
    return copy;
  }
}

export const categoryWords: Record<KindCategory, string> = {
  norm: 'normalization',
  attention: 'attention',
  rope: 'rotary embedding',
  router: 'router',
  activation: 'expert activation',
  quant: 'quantization',
  rounding: 'token rounding',
};
