import { describe, expect, it } from 'vitest';
import { earliestFirst } from '../src/earliest-first.js';

const seq = (x: { seq: number }) => x.seq;

describe('earliestFirst', () => {
  it('puts the k smallest first in order, the rest after in input order (selection path)', () => {
    const items = [50, 3, 99, 7, 1, 42, 8, 64, 2, 77, 5, 31, 12, 90, 6, 13].map((s) => ({ seq: s }));
    const out = earliestFirst(items, 2, seq);
    expect(out.map(seq)).toEqual([1, 2, 50, 3, 99, 7, 42, 8, 64, 77, 5, 31, 12, 90, 6, 13]);
    expect(out).toHaveLength(items.length);
  });

  it('matches a full sort on its first k for random inputs, and keeps every item once', () => {
    let x = 12345;
    const rand = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x;
    };
    for (let trial = 0; trial < 50; trial++) {
      const items = Array.from({ length: 200 + (trial % 7) }, () => ({ seq: rand() % 10_000 }));
      for (const k of [1, 3, 16, 40, 200]) {
        const out = earliestFirst(items, k, seq);
        const sorted = [...items].sort((a, b) => a.seq - b.seq);
        expect(out.slice(0, k).map(seq)).toEqual(sorted.slice(0, k).map(seq));
        expect(new Set(out).size).toBe(items.length);
      }
    }
  });

  it('sorts everything when k is large relative to the items, and handles k = 0 and no items', () => {
    const items = [3, 1, 2].map((s) => ({ seq: s }));
    expect(earliestFirst(items, 1, seq).map(seq)).toEqual([1, 2, 3]);
    expect(earliestFirst([], 1, seq)).toEqual([]);
    expect(earliestFirst(items, 0, seq)).toHaveLength(3);
    expect(items.map(seq)).toEqual([3, 1, 2]);
  });
});
