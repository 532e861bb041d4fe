// `quantize experts = mixed(bits, choices, trace)`: from the model, its routing trace and its
// weights to each routed expert's storage format. What the CLI calls:
//
//   const mixed = await resolveMixedPrecision({
//     model: graph,                 // the IR graph (any function of the module) or the ModelConfig
//     trace: 'trace.json',          // routing trace, format v1 (`moec trace`)
//     weights,                      // a WeightSource: openHfCheckpoint(dir).weights, or any other
//     bits: 3.5,                    // average code bits per expert weight (scales not counted)
//     choices: [{ format: { format: 'int2', group: 32 } }, { format: { format: 'int4', group: 32 } }, { format: { format: 'int8', group: 32 } }],
//     timeLimit: 10,                // seconds for HiGHS
//   });
//   mixed.expertChoices.get(layer)![e]   // index into choices for expert e of model layer `layer`
//   mixed.expertFormats.get(layer)![e]   // the same as a WeightFormat
//   mixed.report                         // text for the compile report
//
// Steps: importance (trace, expert-importance.ts) -> sensitivity (weights, expert-sensitivity.ts)
// -> the program (HiGHS, choose-expert-formats.ts) -> the report (mixed-precision-report.ts).
import { buildModelGraph } from '../../ir/build-model.js';
import type { Graph } from '../../ir/graph.js';
import type { ModelConfig } from '../../ir/model-config.js';
import type { WeightSource } from '../../runtime/plan.js';
import { builtinFormats } from '../../runtime/quant/builtin-formats.js';
import { describeFormat, formatEntry, type FormatTable, type WeightFormat } from '../../runtime/quant/weight-format.js';
import { checkBudget, chooseExpertFormats, type ExpertFormatProblem, type ExpertFormatSolution, type FormatChoiceCost } from './choose-expert-formats.js';
import { readExpertImportance } from './expert-importance.js';
import { measureExpertSensitivity, moeLayerExperts } from './expert-sensitivity.js';
import { mixedPrecisionReport } from './mixed-precision-report.js';

export interface MixedPrecisionChoice {
  format: WeightFormat;
  /** Code bits per weight counted against the budget; default 32 / the format's values per u32 word (int2: 2, int4: 4, int8: 8, f16: 16). */
  bits?: number;
}

export interface MixedPrecisionRequest {
  /** The IR graph (params with role `expert`, named `layers.<n>.moe.experts.*`, shaped [E, rows, cols]) or the config to build it from. */
  model: Graph | ModelConfig;
  /** Path of the routing trace (format v1); it must cover every MoE layer of the model. */
  trace: string;
  /** Read one expert at a time (rows [e, e+1) of each expert weight). */
  weights: WeightSource;
  /** Average code bits per routed-expert weight, over all MoE layers together. */
  bits: number;
  choices: readonly MixedPrecisionChoice[];
  /** Seconds for HiGHS (default 10); the best assignment found by then is used. */
  timeLimit?: number;
  /** Where the choices' formats are looked up (default the builtin ones; the target's weightFormats with a plugin's). */
  formats?: FormatTable;
  /** Called after each expert's weights are measured, e.g. for a progress bar. */
  onExpert?(layer: number, expert: number): void;
}

export interface MixedPrecision {
  /** Per MoE layer (the model layer index): the index into `choices` of each expert's format. */
  expertChoices: Map<number, number[]>;
  /** The same as formats. */
  expertFormats: Map<number, WeightFormat[]>;
  /** What HiGHS solved (importances, errors, params, choices): the report and tests read it. */
  problem: ExpertFormatProblem;
  solution: ExpertFormatSolution;
  /** Plain text for `moec compile`'s report. */
  report: string;
}

export const DEFAULT_TIME_LIMIT = 10;

const isGraph = (model: Graph | ModelConfig): model is Graph => 'ops' in model && 'params' in model;

/** The program's view of the choices: a name (the format's, with its group where two share one), code bits and scale bits. */
export function formatChoiceCosts(choices: readonly MixedPrecisionChoice[], formats: FormatTable = builtinFormats): FormatChoiceCost[] {
  return choices.map(({ format, bits }) => {
    const { perWord, scalesPerWord } = formatEntry(formats, format.format);
    const shared = choices.filter((c) => c.format.format === format.format).length > 1;
    const scaleBits = scalesPerWord > 0 && format.group !== undefined ? 32 / scalesPerWord / format.group : 0;
    return { name: shared ? describeFormat(format) : format.format, bits: bits ?? 32 / perWord, scaleBits };
  });
}

export async function resolveMixedPrecision(request: MixedPrecisionRequest): Promise<MixedPrecision> {
  const formats = request.formats ?? builtinFormats;
  const choices = formatChoiceCosts(request.choices, formats);
  checkBudget(choices, request.bits); // an unknown format or a budget below every choice fails before any weight is read
  const graph = isGraph(request.model) ? request.model : buildModelGraph(request.model);
  const layers = moeLayerExperts(graph);
  if (layers.length === 0) throw new Error(`mixed precision: ${graph.name} has no routed experts to quantize`);
  const importance = readExpertImportance(request.trace, { experts: layers[0]!.experts, moeLayers: layers.map((l) => l.layer) });
  const sensitivity = await measureExpertSensitivity(graph, request.weights, request.choices.map((c) => c.format), { formats, onExpert: request.onExpert });
  const problem: ExpertFormatProblem = {
    choices,
    bits: request.bits,
    layers: layers.map((l, i) => ({ layer: l.layer, importance: importance[i]!.importance, error: sensitivity[i]!.error, params: new Array<number>(l.experts).fill(l.paramsPerExpert) })),
  };
  const solution = await chooseExpertFormats(problem, { timeLimit: request.timeLimit ?? DEFAULT_TIME_LIMIT });
  return {
    expertChoices: new Map(solution.layers.map((l) => [l.layer, l.choice])),
    expertFormats: new Map(solution.layers.map((l) => [l.layer, l.choice.map((c) => request.choices[c]!.format)])),
    problem,
    solution,
    report: mixedPrecisionReport(problem, solution),
  };
}
