// Every pass keeps the block's meaning: the CPU interpreter gives the same output before and after
// each one, bit for bit (f32 activations: every pass so far only restructures, and the lowered ops
// store rows at the same points as the model-level ops), at token counts on both paths and around
// the decode bound. round-tokens is the one approximation (token_rounding = sonic changes the
// routing on prefill): every pass after it keeps its output bit for bit. Running a pass twice
// changes nothing.
import { describe, expect, it } from 'vitest';
import { defaultPasses, defaultTarget, runPasses } from '../../compiler/pipeline.js';
import { buildMoeBlockGraph } from '../../ir/build-model.js';
import { moduleOf, type Module } from '../../ir/graph.js';
import { interpretModule } from '../../ir/interpret/interpret.js';
import { printModule } from '../../ir/print.js';
import { blockGraphOf, configOf, dequantizedWeights, families, normals, randomWeights, seededRandom, type Family } from '../codegen/moe-fixtures.js';

const TOKENS = [1, 7, 8, 9, 64, 300];

interface Case {
  name: string;
  family: Family;
  compile?: string;
  /** A storage binding small enough to split the experts into shards. */
  maxBinding?: number;
}

const byName = (name: string) => families.find((f) => f.name === name)!;
const cases: Case[] = [
  ...families.map((family) => ({ name: family.name, family })),
  { name: 'mixtral int4 experts', family: byName('mixtral'), compile: 'target = webgpu\n dtype = f32\n quantize experts = int4(group = 8)\n quantize router = int8(group = 8)' },
  { name: 'qwen2-moe sharded, int8 shared gate', family: byName('qwen2-moe'), compile: 'target = webgpu\n dtype = f32\n quantize shared = int8(group = 4)', maxBinding: 4 * 3 * 56 * 72 },
  { name: 'gpt-oss sharded', family: byName('gpt-oss'), maxBinding: 4 * 3 * 60 * 72 },
  { name: 'mixtral in 2 shards (fused decode over both)', family: byName('mixtral'), maxBinding: 4 * 4 * 40 * 72 },
  { name: 'olmoe sonic(nearest, 4)', family: byName('olmoe'), compile: 'target = webgpu\n dtype = f32\n token_rounding = sonic(mode = nearest, tile = 4)' },
  { name: 'qwen2-moe sonic(up, 16), sharded', family: byName('qwen2-moe'), compile: 'target = webgpu\n dtype = f32\n token_rounding = sonic(mode = up, tile = 16)', maxBinding: 4 * 3 * 56 * 72 },
  { name: 'deepseek-v3 sonic(down, 8)', family: byName('deepseek-v3'), compile: 'target = webgpu\n dtype = f32\n token_rounding = sonic(mode = down, tile = 8)' },
];

function passesOf(c: Case) {
  const config = configOf(c.family, c.compile);
  const target = defaultTarget(c.maxBinding ? { limits: { ...defaultTarget().limits, maxStorageBufferBindingSize: c.maxBinding } } : {});
  return { config, target };
}

describe.each(cases)('$name', (c) => {
  const { config, target } = passesOf(c);
  const { graph } = blockGraphOf(c.family, c.compile);
  const weights = dequantizedWeights(graph, randomWeights(graph, seededRandom(41)));
  const modules: Array<[string, Module]> = [['build', moduleOf(buildMoeBlockGraph(config, 0))]];
  for (const pass of defaultPasses) modules.push([pass.name, runPasses(modules.at(-1)![1], config, { passes: [pass], target, verifyEach: true })]);

  it('shards when the binding is small', () => {
    const sharded = modules.at(-1)![1].functions.some((f) => f.ops.some((op) => op.opcode === 'slice_rows'));
    expect(sharded).toBe(c.maxBinding !== undefined);
  });

  it.each(TOKENS)('T = %i: the same output after every pass', (tokens) => {
    const x = normals(seededRandom(1000 + tokens), tokens * (graph.inputs[0]!.type.shape[1] as number), 1);
    const run = (m: Module) => Object.values(interpretModule(m, { hidden_states: { shape: [tokens, x.length / tokens], data: x } }, (p) => weights.get(p.name)!))[0]!.data;
    const before = run(modules[0]![1]);
    const rounding = modules.findIndex(([name]) => name === 'round-tokens');
    for (const [name, m] of modules.slice(1, rounding)) expect(run(m), `after ${name}`).toEqual(before);
    const rounded = run(modules[rounding]![1]);
    if (!c.compile?.includes('sonic') || tokens <= defaultTarget().decodeMaxTokens) expect(rounded, 'after round-tokens').toEqual(before);
    else if (tokens >= 64) expect(rounded, 'sonic rounding changes the routing of a random batch').not.toEqual(before);
    for (const [name, m] of modules.slice(rounding + 1)) expect(run(m), `after ${name}`).toEqual(rounded);
  });

  it.each(defaultPasses.map((p) => p.name))('%s twice changes nothing', (name) => {
    const index = defaultPasses.findIndex((p) => p.name === name);
    const once = modules[index + 1]![1];
    const twice = runPasses(once, config, { passes: [defaultPasses[index]!], target, verifyEach: true });
    expect(printModule(twice)).toBe(printModule(once));
  });
});
