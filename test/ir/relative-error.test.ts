import { describe, expect, it } from 'vitest';
import { relativeError } from '../../ir/interpret/relative-error.js';

describe('relativeError', () => {
  it('is ||a - b|| / ||b||', () => {
    expect(relativeError([3, 4], [0, 5])).toBeCloseTo(Math.sqrt(9 + 1) / 5, 12);
  });
  it('compares an all-zero reference absolutely: zeros match, anything else does not', () => {
    expect(relativeError([0, 0, 0], [0, 0, 0])).toBe(0);
    expect(relativeError([0, 3e-3, 4e-3], [0, 0, 0])).toBeCloseTo(5e-3, 12);
  });
  it('gives NaN for NaN values and for mismatched lengths', () => {
    expect(relativeError([Number.NaN, 1], [1, 1])).toBeNaN();
    expect(relativeError([1, 1], [1, 1, 1])).toBeNaN();
  });
  it('counts only the given rows', () => {
    const rows = { width: 2, indices: [1] };
    expect(relativeError([9, 9, 1, 1], [0, 0, 1, 1], rows)).toBe(0);
  });
});
