// Cases small enough to place by hand: 4 experts on 2 devices, where the best placement and
// every method's figures can be worked out on paper.
import { describe, expect, it } from 'vitest';
import { balancedPacking, greedyEplbRow, replicateExperts } from '../../compiler/placement/greedy-eplb.js';
import { minCostAssignment } from '../../compiler/placement/device-relabel.js';
import { noWorse, placeExperts, type MethodResult } from '../../compiler/placement/place-experts.js';
import { crossDeviceMass } from '../../compiler/placement/placement-figures.js';
import type { RoutingTrace } from '../../compiler/placement/placement.js';

const traceOf = (layers: { counts: number[]; transitions?: number[][] }[]): RoutingTrace => ({
  version: 1, model: 'hand', tokens: 100, layers: layers.map((l, i) => ({ layer: i, counts: l.counts, transitions: l.transitions ?? [] })),
});

async function placeAll(trace: RoutingTrace, slotsPerDevice: number): Promise<Record<string, MethodResult>> {
  const results = await placeExperts({ trace, experts: 4, devices: 2, slotsPerDevice }, ['ilp'], { timeLimit: 5 });
  return Object.fromEntries(results.map((r) => [r.method, r]));
}

describe('EPLB steps (DeepSeek eplb.py semantics)', () => {
  it('replicates the expert with the most tokens per replica, the first such on a tie', () => {
    expect(replicateExperts([40, 10, 6, 4], 6)).toEqual({ physicalToExpert: [0, 1, 2, 3, 0, 0], replicas: [3, 1, 1, 1] });
    expect(replicateExperts([10, 10, 1, 1], 6)).toEqual({ physicalToExpert: [0, 1, 2, 3, 0, 1], replicas: [2, 2, 1, 1] });
  });

  it('packs heaviest first onto the lightest device with room, the lower device on a tie', () => {
    expect(balancedPacking([5, 9, 1, 7], 2)).toEqual({ pack: [1, 0, 0, 1], rank: [1, 0, 1, 0] });
    expect(balancedPacking([3, 2, 1], 3)).toEqual({ pack: [0, 1, 2], rank: [0, 0, 0] }); // one per pack: in order
  });

  it('lays the packed replicas out device-major', () => {
    // replicas 40/3 (x3), 10, 6, 4: device 0 gets 13.3, 13.3, 4 = 30.7; device 1 gets 13.3, 10, 6 = 29.3
    expect(greedyEplbRow([40, 10, 6, 4], 2, 3)).toEqual([0, 0, 3, 0, 1, 2]);
  });
});

describe('measuring a placement', () => {
  it('splits a replicated expert evenly: half of its transitions to an expert on one device cross', () => {
    const from = [[1, 1], [1, 0]]; // expert 0 on both devices, expert 1 on device 0
    const to = [[1, 0], [0, 1]];
    expect(crossDeviceMass([[0, 10], [0, 0]], from, to)).toBe(5); // 0 -> 1: half of expert 0's tokens are on device 0, expert 1 is on device 1
    expect(crossDeviceMass([[10, 0], [0, 0]], from, to)).toBe(5);
    expect(crossDeviceMass([[0, 0], [8, 0]], from, to)).toBe(0);
  });

  it('minCostAssignment finds the cheapest matching', () => {
    expect(minCostAssignment([[4, 1, 3], [2, 0, 5], [3, 2, 2]])).toEqual([1, 0, 2]);
  });
});

describe('4 experts on 2 devices', () => {
  it('one layer [10, 10, 1, 1], 2 slots each: round-robin puts both hot experts together (20), greedy and the ILP split them (11)', async () => {
    const r = await placeAll(traceOf([{ counts: [10, 10, 1, 1] }]), 2);
    expect(r['round-robin']!.placement.physicalToLogical).toEqual([[0, 1, 2, 3]]);
    expect(r['round-robin']!.figures.maxLoad).toBe(20);
    expect(r.greedy!.figures.maxLoad).toBe(11);
    expect(r.ilp!.figures.maxLoad).toBe(11);
    expect(r.ilp!.figures.meanLoad).toBe(11);
  });

  it('two layers whose tokens go 0 -> 3, 1 -> 2, 2 -> 1, 3 -> 0: the ILP keeps every transition on its device, the others cross all 22', async () => {
    const trace = traceOf([
      { counts: [10, 10, 1, 1], transitions: [[0, 0, 0, 10], [0, 0, 10, 0], [0, 1, 0, 0], [1, 0, 0, 0]] },
      { counts: [1, 1, 10, 10] },
    ]);
    const r = await placeAll(trace, 2);
    expect(r.greedy!.placement.physicalToLogical).toEqual([[0, 2, 1, 3], [2, 0, 3, 1]]);
    expect(r.greedy!.figures.crossDeviceTransitions).toBe(22);
    expect(r['round-robin']!.figures.crossDeviceTransitions).toBe(22);
    expect(r.ilp!.figures.crossDeviceTransitions).toBe(0);
    expect(r.ilp!.figures.perLayer.map((f) => f.maxLoad)).toEqual([11, 11]);
    const [first, second] = r.ilp!.placement.physicalToLogical.map((row) => row.map((e, slot) => [e, Math.floor(slot / 2)]));
    const deviceOf = (row: number[][], expert: number): number => row.find(([e]) => e === expert)![1]!;
    for (const [from, to] of [[0, 3], [1, 2], [2, 1], [3, 0]] as const) expect(deviceOf(second!, to)).toBe(deviceOf(first!, from));
  });

  it('one layer [40, 10, 6, 4] with 3 slots each: replicas of the hot expert; best is 92/3 on the busiest device', async () => {
    const r = await placeAll(traceOf([{ counts: [40, 10, 6, 4] }]), 3);
    expect(r['round-robin']!.placement.physicalToLogical).toEqual([[0, 1, 2, 3, 0, 1]]);
    expect(r['round-robin']!.figures.maxLoad).toBe(31); // 40/2 + 10/2 + 6 on device 0
    expect(r.greedy!.figures.maxLoad).toBeCloseTo(92 / 3, 12);
    expect(r.ilp!.figures.maxLoad).toBeCloseTo(92 / 3, 12);
    expect(r.ilp!.figures.meanLoad).toBe(30);
  });
});

describe('noWorse, the ILP\'s guarantee', () => {
  const figures = (maxLoads: number[], cross: number) => ({
    maxLoad: 0, meanLoad: 0, maxOverMean: 0, worstLayerMaxOverMean: 0, crossDeviceTransitions: cross, transitions: 100,
    perLayer: maxLoads.map((maxLoad, layer) => ({ layer, maxLoad, meanLoad: 0, crossDeviceTransitions: 0, transitions: 0 })),
  });

  it('needs every layer\'s busiest device and the crossing transitions to be no worse', () => {
    expect(noWorse(figures([10, 11], 5), figures([10, 12], 5))).toBe(true);
    expect(noWorse(figures([10, 13], 1), figures([10, 12], 5))).toBe(false); // one layer worse on load
    expect(noWorse(figures([9, 11], 6), figures([10, 12], 5))).toBe(false);
  });
});
