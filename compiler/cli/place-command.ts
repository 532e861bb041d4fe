import { parseArgs } from 'node:util';
import { moeLayerIndices } from '../../ir/model-config.js';
import { comparisonTable } from '../placement/compare-table.js';
import { placeExperts } from '../placement/place-experts.js';
import { placementMethods, type PlacementMethod, type PlacementProblem } from '../placement/placement.js';
import { compactJson, placementDocument, sglangExpertLocation } from '../placement/placement-report.js';
import { readRoutingTrace, TraceError } from '../placement/routing-trace.js';
import { loadSpec, pluginHelp, pluginOption, positiveIntegerFlag, UsageError, writeFileAtomic, type Command } from './command.js';


export const placeCommand: Command = {
  name: 'place',
  summary: 'place experts on devices from a routing trace (round-robin, EPLB greedy, or an ILP with HiGHS)',
  usage: 'moec place <spec.moe> --trace trace.json --devices N [--slots-per-device S] [--method ilp|greedy|round-robin] [--time-limit SECONDS] (-o placement.json | --compare)',
  help: [
    'Assigns each MoE layer\'s experts to N devices of S slots each (spare slots hold replicas of hot',
    'experts) and writes placement.json: {"version": 1, "devices", "method", "physical_to_logical_map",',
    '"report"}, physical slot p on device floor(p / S) (see the README, "Routing traces and expert placement").',
    'Methods:',
    '  round-robin   slot p holds expert p mod E (SGLang\'s trivial map)',
    '  greedy        DeepSeek\'s EPLB: replicate the hottest experts, pack replicas heaviest first',
    '  ilp           (default) per layer, HiGHS minimises the busiest device\'s load, then the tokens',
    '                crossing devices from the previous layer; seeded with the other two, never worse',
    'Options:',
    '  --trace FILE            routing trace, format version 1 (required)',
    '  --devices N             devices (required)',
    '  --slots-per-device S    expert slots per device (default: ceil(experts / N)); N x S >= experts',
    '  --method M              ilp, greedy or round-robin (default ilp)',
    '  --time-limit SECONDS    the ILP\'s limit for all layers together (default 20)',
    '  -o, --output FILE       write the placement (atomically)',
    '  --format F              moec (default) or sglang: only physical_to_logical_map, one row per model layer',
    '                          (dense layers trivial), the file SGLang\'s --init-expert-location reads',
    '  --compare               print all three methods side by side, and what the ILP gains over each',
    pluginHelp,
  ].join('\n'),
  async run(args) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: {
        trace: { type: 'string' }, devices: { type: 'string' }, 'slots-per-device': { type: 'string' }, method: { type: 'string' },
        'time-limit': { type: 'string' }, output: { type: 'string', short: 'o' }, format: { type: 'string' }, compare: { type: 'boolean' }, ...pluginOption,
      },
    });
    if (positionals.length !== 1) throw new UsageError('place takes one spec');
    if (values.trace === undefined) throw new UsageError('place needs --trace FILE, a routing trace');
    const devices = positiveIntegerFlag('devices', values.devices);
    if (devices === undefined) throw new UsageError('place needs --devices N');
    const method = (values.method ?? 'ilp') as PlacementMethod;
    if (!placementMethods.includes(method)) throw new UsageError(`--method must be one of ${placementMethods.join(', ')}, got ${values.method}`);
    const timeLimit = values['time-limit'] === undefined ? 20 : Number(values['time-limit']);
    if (!(timeLimit > 0 && timeLimit <= 86_400)) throw new UsageError(`--time-limit must be a number of seconds above 0, got ${values['time-limit']}`);
    const format = values.format ?? 'moec';
    if (format !== 'moec' && format !== 'sglang') throw new UsageError(`--format must be moec or sglang, got ${values.format}`);
    if (values.output === undefined && !values.compare) throw new UsageError('place needs -o placement.json or --compare');

    const specFile = positionals[0]!;
    const { config } = await loadSpec(specFile, values.plugin);
    if (!config) return 1;
    if (!config.moe) {
      process.stderr.write(`moec place: ${specFile}: the spec has no moe block, so there are no experts to place\n`);
      return 1;
    }
    const experts = config.moe.experts;
    const slotsPerDevice = positiveIntegerFlag('slots-per-device', values['slots-per-device']) ?? Math.ceil(experts / devices);
    if (devices * slotsPerDevice < experts) {
      throw new UsageError(`${devices} devices x ${slotsPerDevice} slots = ${devices * slotsPerDevice} slots, fewer than the ${experts} experts of ${specFile}: raise --slots-per-device or --devices`);
    }
    const moeLayers = moeLayerIndices(config);
    let problem: PlacementProblem;
    try {
      problem = { trace: readRoutingTrace(values.trace, { experts, moeLayers }), experts, devices, slotsPerDevice };
    } catch (e) {
      if (!(e instanceof TraceError)) throw e;
      process.stderr.write(`moec place: ${e.message}\n`);
      return 1;
    }
    if (problem.trace.model !== config.name) process.stderr.write(`${values.trace}: note: traced model "${problem.trace.model}", the spec's is "${config.name}"\n`);

    const results = await placeExperts(problem, values.compare ? placementMethods : [method], { timeLimit });
    const chosen = results.find((r) => r.method === method) ?? results.at(-1)!;
    if (values.compare) {
      process.stdout.write(`${specFile}: ${experts} experts, ${moeLayers.length} MoE layers on ${devices} devices x ${slotsPerDevice} slots; ` +
        `${values.trace}: ${problem.trace.tokens} tokens\n` + comparisonTable(results));
    }
    if (values.output !== undefined) {
      const document = format === 'sglang'
        ? sglangExpertLocation(chosen.placement, moeLayers, config.layers, experts)
        : placementDocument(chosen, results, { problem, traceFile: values.trace });
      writeFileAtomic(values.output, compactJson(document));
      const f = chosen.figures;
      process.stdout.write(`${values.output}: ${method}, ${moeLayers.length} MoE layers on ${devices} devices x ${slotsPerDevice} slots; ` +
        `max/mean load ${f.maxOverMean.toFixed(4)}, cross-device transitions ${f.crossDeviceTransitions.toFixed(0)} of ${f.transitions}\n`);
    }
    return 0;
  },
};
