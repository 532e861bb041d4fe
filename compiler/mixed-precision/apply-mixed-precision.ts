// The commands' side of `quantize experts = mixed(...)`: a spec's config, resolved for its
// weights (each routed expert's format chosen by resolve-mixed-precision.ts and written into
// config.compile.expertFormats, which quantize-weights reads), or, where the trace is still to be
// made (`moec trace`), with the experts in the most precise of the choices.
import { dirname, resolve } from 'node:path';
import type { KindRef, ModelConfig } from '../../ir/model-config.js';
import type { WeightSource } from '../../runtime/plan.js';
import { builtinFormats } from '../../runtime/quant/builtin-formats.js';
import type { FormatTable, WeightFormat } from '../../runtime/quant/weight-format.js';
import type { PassKinds } from '../../passes/pass.js';
import { resolveMixedPrecision, type MixedPrecision, type MixedPrecisionChoice } from './resolve-mixed-precision.js';

/** The `mixed(...)` of `quantize experts`, if the spec has one. */
export const mixedExperts = (config: ModelConfig): KindRef | undefined =>
  (config.compile.quantize.experts?.kind === 'mixed' ? config.compile.quantize.experts : undefined);

/** A quant kind as a storage format and the code bits the budget counts (int4: 4; f16: 16). */
function choiceOf(kind: KindRef, kinds: PassKinds): MixedPrecisionChoice & { kind: KindRef } {
  const storage = kinds.get('quant', kind.kind)?.storage?.(kind.params);
  if (!storage) throw new Error(`mixed(...): choice ${kind.kind} has no storage format`);
  const format: WeightFormat = 'float' in storage ? { format: storage.float } : { format: kind.kind, group: storage.group };
  const bits = 'float' in storage ? (storage.float === 'f32' ? 32 : 16) : storage.bits;
  return { kind, format, bits };
}

export interface MixedPrecisionOptions {
  /** The spec file: the trace path is relative to it. */
  specFile: string;
  weights: WeightSource;
  kinds: PassKinds;
  formats?: FormatTable;
  /** Seconds for HiGHS. */
  timeLimit?: number;
  onExpert?(layer: number, expert: number): void;
}

/** `config` with each expert's format chosen (and what was solved), or `config` itself when its experts are not mixed. */
export async function applyMixedPrecision(config: ModelConfig, options: MixedPrecisionOptions): Promise<{ config: ModelConfig; mixed?: MixedPrecision }> {
  const mixed = mixedExperts(config);
  if (!mixed) return { config };
  const choices = (mixed.params['choices'] as KindRef[]).map((k) => choiceOf(k, options.kinds));
  const result = await resolveMixedPrecision({
    model: config,
    trace: resolve(dirname(options.specFile), mixed.params['trace'] as string),
    weights: options.weights,
    bits: mixed.params['bits'] as number,
    choices,
    formats: options.formats ?? builtinFormats,
    ...(options.timeLimit !== undefined ? { timeLimit: options.timeLimit } : {}),
    ...(options.onExpert ? { onExpert: options.onExpert } : {}),
  });
  const expertFormats = Object.fromEntries([...result.expertChoices].map(([layer, picks]) => [layer, picks.map((c) => choices[c]!.kind)]));
  return { config: { ...config, compile: { ...config.compile, expertFormats } }, mixed: result };
}

/** `config` with mixed experts replaced by the choice of the most code bits (what `moec trace` runs: the trace decides the mix). */
export function withMostPreciseChoice(config: ModelConfig, kinds: PassKinds): ModelConfig {
  const mixed = mixedExperts(config);
  if (!mixed) return config;
  const best = (mixed.params['choices'] as KindRef[]).map((k) => choiceOf(k, kinds)).reduce((a, b) => (b.bits! > a.bits! ? b : a));
  return { ...config, compile: { ...config.compile, quantize: { ...config.compile.quantize, experts: best.kind } } };
}
