// What token rounding did to one batch, for `moec run`: the reference routing of the block (the
// router and moe.round_decide / round_apply of the prefill path, on the CPU, with only the router's
// weights read), the same counts the GPU's round_stats holds.
import { compileReferenceModule } from '../pipeline.js';
import type { Graph } from '../../ir/graph.js';
import { interpretModule } from '../../ir/interpret/interpret.js';
import { decodeRoundStats } from '../../ir/interpret/rounding-ops.js';
import type { ModelConfig } from '../../ir/model-config.js';
import type { WeightSource } from '../../runtime/plan.js';
import type { Registry } from '../plugins/registry.js';

export async function roundingReport(config: ModelConfig, layer: number, hidden: Float32Array, tokens: number, weights: WeightSource, registry?: Registry): Promise<string | undefined> {
  const rounding = config.compile.tokenRounding;
  if (rounding.kind !== 'sonic') return undefined;
  const what = `token rounding sonic(mode = ${String(rounding.params['mode'])}, tile = ${String(rounding.params['tile'])})`;
  const module = compileReferenceModule(config, layer, { registry });
  const prefill = module.functions.find((f) => f.attrs?.['path'] === 'prefill')!;
  const decodeMax = module.functions.find((f) => f.attrs?.['path'] === 'decode')?.attrs?.['max_tokens'] as number;
  if (tokens <= decodeMax) return `${what}: ${tokens} tokens take the decode path, which routes exactly`;
  const apply = prefill.ops.findIndex((op) => op.opcode === 'moe.round_apply');
  const graph: Graph = { ...prefill, ops: prefill.ops.slice(0, apply + 1), outputs: [prefill.ops[apply]!.outputs[2]!] };
  const used = new Set(graph.ops.flatMap((op) => op.inputs.map((v) => v.id)));
  const params = graph.params.filter((p) => used.has(p.id));
  const values = new Map<string, Float32Array>();
  for (const p of params) values.set(p.name, await weights.readF32(p.name, p.type.shape as number[]));
  const out = interpretModule({ name: module.name, functions: [{ ...graph, params }] }, { hidden_states: { shape: [tokens, config.hidden], data: hidden } }, (p) => values.get(p.name)!, registry?.semantics);
  const s = decodeRoundStats(Object.values(out)[0]!.data as Int32Array);
  return `${what}: padded expert rows ${s.paddedRowsBefore} -> ${s.paddedRowsAfter}, ${s.tokensDropped} token-expert pairs dropped, ${s.tokensAdded} added, ` +
    `${(100 * s.weightMassChanged).toFixed(1)}% of the routing weight mass changed`;
}
