// `moec place` as a user runs it (the bundled CLI, dist/cli/moec.js): --compare's table, the
// placement.json it writes, SGLang's form, and the errors of a bad trace or too few slots
// (exit status, the file and field named, nothing written).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { moec } from '../bundle/cli.js';
import { DEVICES, EXPERTS, expectValidPlacement, MOE_LAYERS, placementSpec, skewedRouting } from './placement-fixtures.js';

/** A trace as JSON.parse gives it back, to spoil one field. */
type TraceJson = { layers: { counts: number[]; transitions: (number | null)[][] }[] };

let dir = '';
const path = (name: string): string => join(dir, name);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moec-place-'));
  writeFileSync(path('spec.moe'), placementSpec());
  writeFileSync(path('trace.json'), JSON.stringify(skewedRouting(7, 2048).trace));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The figures of one method's row of the --compare table. */
function row(stdout: string, method: string): { maxOverMean: number; cross: number } {
  const line = stdout.split('\n').find((l) => l.startsWith(`${method} `))!;
  const cells = line.trim().split(/\s{2,}/);
  return { maxOverMean: Number(cells[3]), cross: Number(cells[5]!.split(' ')[0]) };
}

describe('moec place', () => {
  it('--compare prints the three methods side by side and what the ILP gains over each', async () => {
    const r = await moec(['place', path('spec.moe'), '--trace', path('trace.json'), '--devices', '8', '--compare', '--time-limit', '4']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('64 experts, 24 MoE layers on 8 devices x 8 slots');
    expect(r.stdout).toMatch(/^method\s+max load\s+mean load\s+max\/mean\s+worst layer\s+cross-device transitions\s+solve time$/m);
    const [rr, greedy, ilp] = ['round-robin', 'greedy', 'ilp'].map((m) => row(r.stdout, m));
    for (const other of [rr!, greedy!]) {
      expect(ilp!.maxOverMean).toBeLessThanOrEqual(other.maxOverMean);
      expect(ilp!.cross).toBeLessThan(other.cross);
    }
    expect(r.stdout).toMatch(/^ilp vs round-robin: max load -\d+\.\d% .*cross-device transitions -\d+\.\d%$/m);
    expect(r.stdout).toMatch(/^ilp vs greedy: max load -\d+\.\d% .*cross-device transitions -\d+\.\d%$/m);
    expect(r.stdout).toMatch(/^ilp: HiGHS within 4 s: .* gap to the proven bounds: load \d+\.\d%/m);
  });

  it('-o writes placement.json: SGLang\'s device-major map per MoE layer and a report per method', async () => {
    const r = await moec(['place', path('spec.moe'), '--trace', path('trace.json'), '--devices', '8', '--slots-per-device', '10', '--time-limit', '3', '-o', path('placement.json')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/placement\.json: ilp, 24 MoE layers on 8 devices x 10 slots; max\/mean load \d\.\d{4}, cross-device transitions \d+ of \d+/);
    const placement = JSON.parse(readFileSync(path('placement.json'), 'utf8'));
    expect(placement).toMatchObject({ version: 1, devices: 8, slots_per_device: 10, method: 'ilp' });
    expectValidPlacement(placement.physical_to_logical_map, MOE_LAYERS.length, EXPERTS, DEVICES * 10);
    expect(Object.keys(placement.report.methods)).toEqual(['round-robin', 'greedy', 'ilp']);
    expect(placement.report.moe_layers).toEqual(MOE_LAYERS);
    const ilp = placement.report.methods.ilp;
    expect(ilp).toMatchObject({ time_limit_seconds: 3 });
    for (const key of ['max_load', 'mean_load', 'max_over_mean', 'cross_device_transitions', 'transitions', 'solve_seconds', 'load_gap', 'transitions_gap']) expect(typeof ilp[key]).toBe('number');
    expect(ilp.max_load_per_layer).toHaveLength(24);
    expect(ilp.cross_device_transitions).toBeLessThan(placement.report.methods.greedy.cross_device_transitions);
  });

  it('--method greedy --format sglang writes only physical_to_logical_map, one row per model layer', async () => {
    const r = await moec(['place', path('spec.moe'), '--trace', path('trace.json'), '--devices', '8', '--method', 'greedy', '--format', 'sglang', '-o', path('sglang.json')]);
    expect(r.status).toBe(0);
    const sglang = JSON.parse(readFileSync(path('sglang.json'), 'utf8'));
    expect(Object.keys(sglang)).toEqual(['physical_to_logical_map']);
    expect(sglang.physical_to_logical_map).toHaveLength(25); // layer 0 is dense: the trivial row
    expect(sglang.physical_to_logical_map[0]).toEqual(Array.from({ length: 64 }, (_, p) => p));
    expectValidPlacement(sglang.physical_to_logical_map.slice(1), 24, EXPERTS, 64);
  });

  it.each([
    ['counts of the wrong length', (t: TraceJson) => (t.layers[3].counts = t.layers[3].counts.slice(4)), 'layers[3].counts has 60 numbers, expected 64 (experts)'],
    ['a layer the spec does not have', (t: TraceJson) => t.layers.pop(), 'layers has 23 entries, expected 24 (the spec\'s MoE layers 1..24)'],
    ['a transition that is not a count', (t: TraceJson) => (t.layers[0].transitions[2][5] = null), 'layers[0].transitions[2][5] is null, expected a count >= 0'],
  ])('refuses a trace with %s: exit status 1, the file and field named, nothing written', async (_, spoil, message) => {
    const trace = JSON.parse(readFileSync(path('trace.json'), 'utf8'));
    spoil(trace);
    writeFileSync(path('bad.json'), JSON.stringify(trace));
    const r = await moec(['place', path('spec.moe'), '--trace', path('bad.json'), '--devices', '8', '-o', path('never.json')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`moec place: ${path('bad.json')}: ${message}`);
    expect(existsSync(path('never.json'))).toBe(false);
  });

  it('refuses a file that is not JSON, and fewer slots than experts', async () => {
    writeFileSync(path('broken.json'), '{"version": 1, "layers": [');
    const broken = await moec(['place', path('spec.moe'), '--trace', path('broken.json'), '--devices', '8', '-o', path('never.json')]);
    expect(broken.status).toBe(1);
    expect(broken.stderr).toMatch(new RegExp(`^moec place: ${path('broken.json').replace(/[.\\]/g, '\\$&')}: not valid JSON`));
    const few = await moec(['place', path('spec.moe'), '--trace', path('trace.json'), '--devices', '8', '--slots-per-device', '7', '-o', path('never.json')]);
    expect(few.status).toBe(2);
    expect(few.stderr).toContain('8 devices x 7 slots = 56 slots, fewer than the 64 experts');
    const missing = await moec(['place', path('spec.moe'), '--trace', path('nowhere.json'), '--devices', '8', '-o', path('never.json')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`moec place: ${path('nowhere.json')}: cannot read: ENOENT`);
    expect(existsSync(path('never.json'))).toBe(false);
  });
});
