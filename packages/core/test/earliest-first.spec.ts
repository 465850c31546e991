import { describe, expect, it } from 'vitest';
import { earliestPositions } from '../src/earliest-first.js';

/** The reference: every position sorted by its value (ties by position), the first k. */
function sortedPositions(seqs: readonly number[], k: number): number[] {
  return seqs
    .map((_, i) => i)
    .sort((a, b) => seqs[a]! - seqs[b]! || a - b)
    .slice(0, Math.max(0, k));
}

describe('earliestPositions', () => {
  it('gives the positions of the k smallest values, smallest first (selection path)', () => {
    const seqs = [50, 3, 99, 7, 1, 42, 8, 64, 2, 77, 5, 31, 12, 90, 6, 13];
    expect(earliestPositions(seqs, 1)).toEqual([4]);
    expect(earliestPositions(seqs, 3)).toEqual([4, 8, 1]);
    expect(seqs[0]).toBe(50); // not modified
  });

  it('matches a full sort for random inputs, on both the selection and the sort path', () => {
    let x = 12345;
    const rand = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x;
    };
    for (let trial = 0; trial < 50; trial++) {
      const seqs = Array.from({ length: 200 + (trial % 7) }, () => rand() % 300); // ties included
      for (const k of [1, 3, 16, 17, 40, 200, 500]) {
        expect(earliestPositions(seqs, k)).toEqual(sortedPositions(seqs, k));
      }
    }
  });

  it('returns every position when k covers them, and nothing for k = 0 or no values', () => {
    expect(earliestPositions([3, 1, 2], 1)).toEqual([1]);
    expect(earliestPositions([3, 1, 2], 5)).toEqual([1, 2, 0]);
    expect(earliestPositions([], 1)).toEqual([]);
    expect(earliestPositions([3, 1, 2], 0)).toEqual([]);
  });
});
