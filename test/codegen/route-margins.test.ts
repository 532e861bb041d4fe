// The near-tie rule of the family tests (route-margins.ts) must excuse only genuine near-ties.
import { describe, expect, it } from 'vitest';
import type { KindRef } from '../../ir/model-config.js';
import { decisionMargin } from './route-margins.js';

const softmaxTopk = (params: Record<string, number | boolean> = {}): KindRef => ({
  kind: 'softmax_topk',
  params: { renormalize: true, groups: 1, topk_groups: 1, scale: 1, null_experts: 0, bias: false, ...params },
});

describe('decision margins', () => {
  it('top-k: the gap at the k-th place, not elsewhere', () => {
    const logits = [3, 1, 2, 2 + 1e-9, -1];
    expect(decisionMargin(logits, { kind: 'topk_softmax', params: { bias: true } }, 2)).toBeLessThan(1e-8); // 2 vs 2 + 1e-9 decide slot 2
    expect(decisionMargin(logits, { kind: 'topk_softmax', params: { bias: true } }, 3)).toBeCloseTo(1, 6); // both are in: the boundary is 2 vs 1
  });

  it('softmax: null experts tying among themselves decide nothing', () => {
    expect(decisionMargin([-5, -6, -7], softmaxTopk({ null_experts: 3 }), 2)).toBeGreaterThan(1e-3);
  });

  it('groups: a near-tie between group scores counts', () => {
    const logits = [2, 0, 2 + 1e-9, 0, -3, -3];
    expect(decisionMargin(logits, softmaxTopk({ groups: 3, topk_groups: 1 }), 1)).toBeLessThan(1e-8);
  });

  it('sparsemixer: a logit on the window edge counts', () => {
    const router: KindRef = { kind: 'sparsemixer', params: { jitter_eps: 0.01 } };
    // m = 10: the edge is where (10 - l) = 0.02 max(|l|, 10), i.e. l = 9.8.
    expect(decisionMargin([10, 9.8 + 1e-9, 0, -4], router, 2)).toBeLessThan(1e-8);
    expect(decisionMargin([10, 9, 0, -4], router, 2)).toBeGreaterThan(0.1);
  });

  it('relu_gate: a logit at zero counts', () => {
    expect(decisionMargin([1, 2, 1e-9, -3], { kind: 'relu_gate', params: {} }, 3)).toBeLessThan(1e-8);
  });
});
