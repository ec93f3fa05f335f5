// resource.Quantity grammar: what `kubectl` accepts is what sealift size sums.
import { describe, expect, it } from 'vitest';
import { isSealiftError } from '../../src/errors.ts';
import { isQuantity, parseQuantity } from '../../src/quantity.ts';

describe('parseQuantity', () => {
  it.each([
    ['100m', 0.1],
    ['1500m', 1.5],
    ['0.5', 0.5],
    ['2', 2],
    ['.5', 0.5],
    ['1.', 1],
    ['+3', 3],
    ['128Mi', 128 * 2 ** 20],
    ['1Ki', 1024],
    ['4Gi', 4 * 2 ** 30],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['2Ti', 2 * 2 ** 40],
    ['1k', 1000],
    ['1M', 1e6],
    ['450G', 450e9],
    ['1T', 1e12],
    ['1E', 1e18],
    ['1e3', 1000],
    ['1E3', 1000],
    ['5e-3', 0.005],
    ['100n', 100e-9],
    ['250u', 250e-6],
  ])('%s = %d base units', (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value, 9);
  });

  it('takes the numbers YAML makes of `cpu: 1` and `cpu: 0.25`', () => {
    expect(parseQuantity(1)).toBe(1);
    expect(parseQuantity(0.25)).toBe(0.25);
  });

  it.each(['', 'Mi', '1 Gi', '1gi', '1K', '1MiB', '1.2.3', '1e', 'abc', '0x10', '1m5'])(
    'rejects "%s" with a coded error naming the value and where',
    (text) => {
      let caught: unknown;
      try {
        parseQuantity(text, 'releases.x memory');
      } catch (e) {
        caught = e;
      }
      expect(isSealiftError(caught)).toBe(true);
      expect((caught as Error).message).toBe(`releases.x memory: "${text}" is not a Kubernetes quantity`);
      expect(isQuantity(text)).toBe(false);
    },
  );

  it('rejects values that are neither strings nor finite numbers', () => {
    expect(isQuantity(Number.NaN)).toBe(false);
    expect(isQuantity(null)).toBe(false);
    expect(isQuantity({})).toBe(false);
  });
});
