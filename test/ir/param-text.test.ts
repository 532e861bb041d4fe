// ir/param-text.ts, the value printer the IR printer, the importer's spec writer and the editor share.
import { describe, expect, it } from 'vitest';
import { numberText, paramText } from '../../ir/param-text.js';

describe('numberText', () => {
  it('writes floats below 1e-3 in exponent form and keeps large numbers plain by default (the IR)', () => {
    const cases: [number, string][] = [[0, '0'], [-0, '0'], [1e-3, '0.001'], [5e-4, '5e-4'], [1e-5, '1e-5'], [-1.5e-5, '-1.5e-5'], [1e-20, '1e-20'], [1.702, '1.702'], [10000, '10000'], [1e6, '1000000'], [150000, '150000']];
    for (const [x, text] of cases) expect(numberText(x), String(x)).toBe(text);
  });

  it('writes numbers from largeFrom up in exponent form only where that is shorter (a spec: 1e6)', () => {
    const cases: [number, string][] = [[1e6, '1e6'], [1e5, '1e5'], [150000, '1.5e5'], [123456, '123456'], [1.5e6, '1.5e6'], [99999, '99999'], [1e-6, '1e-6'], [1e21, '1e21']];
    for (const [x, text] of cases) expect(numberText(x, 1e5), String(x)).toBe(text);
  });
});

describe('paramText', () => {
  it('writes bools, strings as they are, and lists with the same number form as single numbers', () => {
    expect(paramText(true)).toBe('true');
    expect(paramText(false)).toBe('false');
    expect(paramText('nearest')).toBe('nearest');
    expect(paramText('1408 * 2')).toBe('1408 * 2');
    expect(paramText([0, 1e6, 2e-5])).toBe('[0, 1000000, 2e-5]');
    expect(paramText([1e6, 1e6], (x) => numberText(x, 1e5))).toBe('[1e6, 1e6]');
    expect(paramText(1e-6, String)).toBe('0.000001');
  });
});
