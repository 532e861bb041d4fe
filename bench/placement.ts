// Expert placement quality and solve time per method on issue 10's synthetic traces: 64 experts,
// 8 devices, 24 MoE layers, Zipf 1.2 popularity with correlated layers, without spare slots
// (S = 8) and with (S = 10). Prints one table per configuration; never passes or fails on time.
import { alignColumns } from '../compiler/placement/compare-table.js';
import { placeExperts } from '../compiler/placement/place-experts.js';
import { syntheticRouting } from '../compiler/placement/synthetic-trace.js';

const EXPERTS = 64;
const DEVICES = 8;
const MOE_LAYERS = Array.from({ length: 24 }, (_, i) => i);
const TOKENS = 8192;
const TIME_LIMIT = 20;

const ratio = (x: number, ilp: number): string => (ilp === 0 ? 'n/a' : `${(x / ilp).toFixed(3)}x`);

async function main(): Promise<void> {
  for (const topK of [2, 6]) {
    const { trace } = syntheticRouting({ experts: EXPERTS, moeLayers: MOE_LAYERS, tokens: TOKENS, topK, seed: 2025 });
    for (const slotsPerDevice of [8, 10]) {
      const results = await placeExperts({ trace, experts: EXPERTS, devices: DEVICES, slotsPerDevice }, ['ilp'], { timeLimit: TIME_LIMIT });
      const ilp = results.find((r) => r.method === 'ilp')!;
      console.log(`\n${EXPERTS} experts (top-${topK}), ${DEVICES} devices x ${slotsPerDevice} slots, ${MOE_LAYERS.length} MoE layers, ${TOKENS} tokens; ILP time limit ${TIME_LIMIT} s`);
      const rows = [['method', 'max/mean', 'worst layer', 'vs ILP', 'cross-device transitions', 'vs ILP', 'solve time']];
      for (const { method, figures: f, seconds } of results) {
        rows.push([method, f.maxOverMean.toFixed(4), f.worstLayerMaxOverMean.toFixed(4), ratio(f.maxLoad, ilp.figures.maxLoad),
          `${f.crossDeviceTransitions.toFixed(0)} (${((100 * f.crossDeviceTransitions) / f.transitions).toFixed(1)}%)`,
          ratio(f.crossDeviceTransitions, ilp.figures.crossDeviceTransitions), `${seconds.toFixed(2)} s`]);
      }
      process.stdout.write(alignColumns(rows));
      const s = ilp.ilp!;
      console.log(`ilp: ${s.layersOptimal}/${MOE_LAYERS.length} layers optimal, ${s.layersTimeLimited} time-limited; gap to proven bounds: load ${(100 * s.loadGap).toFixed(2)}% (worst layer), transitions ${(100 * s.transitionsGap).toFixed(1)}%${s.fellBackTo ? `; fell back to ${s.fellBackTo}` : ''}`);
    }
  }
  console.log('\nmax/mean: busiest device over mean device load, averaged over layers (1 = balanced); vs ILP: the method\'s figure over the ILP\'s (above 1: the ILP is better).');
}

await main();
