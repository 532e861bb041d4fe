// Reads a routing trace (format version 1) and checks every field, so a bad file is refused with
// its name and the field at fault (`trace.json: layers[3].counts has 60 numbers, expected 64 (experts)`)
// before any placement is computed.
import { readFileSync } from 'node:fs';
import type { RoutingTrace, TraceLayer } from './placement.js';

/** A trace file that cannot be used; the message names the file and the field. */
export class TraceError extends Error {
  override readonly name = 'TraceError';
}

/** What the spec says the trace must hold; without it, layers[0] sets the expert count. */
export interface TraceExpectations {
  experts?: number;
  /** The model layer index of each MoE layer, in order. */
  moeLayers?: readonly number[];
}

export function readRoutingTrace(path: string, expected: TraceExpectations = {}): RoutingTrace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TraceError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseRoutingTrace(text, path, expected);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const quoted = (v: unknown): string => (v === undefined ? 'missing' : JSON.stringify(v)?.slice(0, 40) ?? String(v));

/** `1..24` for a run of consecutive layers, else the list. */
function layerList(layers: readonly number[]): string {
  const consecutive = layers.every((l, i) => i === 0 || l === layers[i - 1]! + 1);
  return consecutive && layers.length > 2 ? `${layers[0]}..${layers.at(-1)}` : layers.join(', ');
}

export function parseRoutingTrace(text: string, file: string, expected: TraceExpectations = {}): RoutingTrace {
  const fail = (message: string): never => {
    throw new TraceError(`${file}: ${message}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
  if (!isRecord(json)) return fail('expected a JSON object {"version": 1, "model", "tokens", "layers"}');
  if (json.version !== 1) fail(`version is ${quoted(json.version)}, expected 1 (the only trace format this moec reads)`);
  if (typeof json.model !== 'string') fail(`model is ${quoted(json.model)}, expected the model's name (a string)`);
  const tokens = json.tokens;
  if (typeof tokens !== 'number' || !Number.isSafeInteger(tokens) || tokens < 0) fail(`tokens is ${quoted(tokens)}, expected a whole number >= 0`);
  const layers = json.layers;
  if (!Array.isArray(layers) || layers.length === 0) return fail(`layers is ${quoted(layers)}, expected a non-empty array (one entry per MoE layer)`);
  const { moeLayers } = expected;
  if (moeLayers && layers.length !== moeLayers.length) {
    fail(`layers has ${layers.length} entr${layers.length === 1 ? 'y' : 'ies'}, expected ${moeLayers.length} (the spec's MoE layers ${layerList(moeLayers)})`);
  }
  const first = layers[0];
  const experts = expected.experts ?? (isRecord(first) && Array.isArray(first.counts) ? first.counts.length : 0);
  const expertsWhy = expected.experts === undefined ? 'experts, as in layers[0].counts' : 'experts';

  const countsOf = (value: unknown, field: string): number[] => {
    if (!Array.isArray(value)) return fail(`${field} is ${quoted(value)}, expected an array of ${experts} numbers (${expertsWhy})`);
    if (value.length !== experts) fail(`${field} has ${value.length} numbers, expected ${experts} (${expertsWhy})`);
    value.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(`${field}[${i}] is ${quoted(v)}, expected a count >= 0`);
    });
    return value as number[];
  };

  const parsed = layers.map((entry: unknown, i): TraceLayer => {
    const at = `layers[${i}]`;
    if (!isRecord(entry)) return fail(`${at} is ${quoted(entry)}, expected {"layer", "counts", "transitions"}`);
    const layer = entry.layer;
    if (typeof layer !== 'number' || !Number.isSafeInteger(layer) || layer < 0) fail(`${at}.layer is ${quoted(layer)}, expected a layer index`);
    if (moeLayers && layer !== moeLayers[i]) fail(`${at}.layer is ${layer}, expected ${moeLayers[i]} (the spec's MoE layers are ${layerList(moeLayers)})`);
    const previous = i > 0 && isRecord(layers[i - 1]) ? (layers[i - 1] as Record<string, unknown>).layer : undefined;
    if (typeof previous === 'number' && (layer as number) <= previous) fail(`${at}.layer is ${layer}, expected more than ${previous} (layers in model order)`);
    const counts = countsOf(entry.counts, `${at}.counts`);
    const last = i === layers.length - 1;
    const transitions = entry.transitions;
    if (last) {
      if (transitions !== undefined && !(Array.isArray(transitions) && transitions.length === 0)) {
        fail(`${at}.transitions must be empty or left out: the last MoE layer has no next layer`);
      }
      return { layer: layer as number, counts, transitions: [] };
    }
    if (transitions === undefined) fail(`${at}.transitions is missing (every MoE layer but the last needs ${experts} x ${experts} transitions to the next)`);
    if (!Array.isArray(transitions) || transitions.length !== experts) {
      fail(`${at}.transitions has ${Array.isArray(transitions) ? `${transitions.length} rows` : quoted(transitions)}, expected ${experts} rows of ${experts} numbers (${expertsWhy})`);
    }
    return { layer: layer as number, counts, transitions: (transitions as unknown[]).map((row, r) => countsOf(row, `${at}.transitions[${r}]`)) };
  });
  return { version: 1, model: json.model as string, tokens: tokens as number, layers: parsed };
}
