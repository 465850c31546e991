/**
 * Ordering of `wait`'s ready refs without sorting them all: `wait(refs, {numReturns: 1})` over a list of
 * 1,000 ready refs is called 1,000 times by a loop that drains the list (ray_perf's wait_1k_refs), and a
 * full sort per call made that loop O(n² log n); only the first `numReturns` need an order, and only
 * they are returned.
 * @module
 */

/** Below this `k` (and `k` under a quarter of the items) the `k` earliest are selected, not sorted out of all. */
const SELECT_MAX = 16;

/**
 * Positions in `seqs` of its `k` smallest values, smallest first (ties: lower position first); all
 * positions when `k` is at least `seqs.length`. A full sort when `k` is large relative to `seqs`. Does
 * not modify `seqs`.
 */
export function earliestPositions(seqs: readonly number[], k: number): number[] {
  const n = seqs.length;
  if (k <= 0 || n === 0) return [];
  if (k > SELECT_MAX || k * 4 >= n) {
    const all = Array.from({ length: n }, (_, i) => i).sort((a, b) => seqs[a]! - seqs[b]! || a - b);
    return k < n ? all.slice(0, k) : all;
  }
  const best: number[] = [];
  for (let p = 0; p < n; p++) {
    const s = seqs[p]!;
    if (best.length === k) {
      if (s >= seqs[best[k - 1]!]!) continue;
      best.pop();
    }
    let i = best.length;
    while (i > 0 && seqs[best[i - 1]!]! > s) i--;
    best.splice(i, 0, p);
  }
  return best;
}
