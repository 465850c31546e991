/**
 * Ordering of `wait`'s ready ids without sorting them all: `wait(refs, {numReturns: 1})` over a list of
 * 1,000 ready refs is called 1,000 times by a loop that drains the list (ray_perf's wait_1k_refs), and a
 * full sort per call made that loop O(n² log n); only the first `numReturns` need an order.
 * @module
 */

/** Below this `k` (and `k` under a quarter of the items) the `k` earliest are selected, not sorted out of all. */
const SELECT_MAX = 16;

/**
 * `items` with the `k` of smallest `seq` first, in `seq` order; the others follow in input order. A
 * full sort when `k` is large relative to `items`. Does not modify `items`.
 */
export function earliestFirst<T>(items: readonly T[], k: number, seq: (item: T) => number): T[] {
  if (k <= 0) return [...items];
  if (k > SELECT_MAX || k * 4 >= items.length) return [...items].sort((a, b) => seq(a) - seq(b));
  const best: T[] = [];
  for (const item of items) {
    const s = seq(item);
    if (best.length === k) {
      if (s >= seq(best[k - 1]!)) continue;
      best.pop();
    }
    let i = best.length;
    while (i > 0 && seq(best[i - 1]!) > s) i--;
    best.splice(i, 0, item);
  }
  const chosen = new Set(best);
  return best.concat(items.filter((item) => !chosen.has(item)));
}
