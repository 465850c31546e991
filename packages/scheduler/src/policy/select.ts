/** @internal Number of score buckets used to narrow a rank selection. */
export const BUCKETS = 256;

/**
 * @internal Scratch for {@link selectRank}: bucket of each candidate, bucket counts, member positions.
 */
export class RankScratch {
  bucket: Int32Array;
  readonly counts = new Int32Array(BUCKETS);
  members: Int32Array;
  constructor(n: number) {
    this.bucket = new Int32Array(n);
    this.members = new Int32Array(n);
  }
}

/**
 * @internal Position of the element of rank `rank` (0-based) among `scores[0..n)` ordered by
 * (score, position). Scores are first counted into {@link BUCKETS} buckets over [lo, hi] (values above
 * `hi` go to the last bucket), which keeps the order; then only the bucket holding the rank is sorted.
 * O(n + bucket size * log).
 */
export function selectRank(scores: Float64Array, n: number, rank: number, lo: number, hi: number, s: RankScratch): number {
  const counts = s.counts;
  counts.fill(0);
  const bucket = s.bucket;
  const scale = hi > lo ? (BUCKETS - 1e-9) / (hi - lo) : 0;
  for (let i = 0; i < n; i++) {
    let b = Math.floor((scores[i]! - lo) * scale);
    if (b >= BUCKETS) b = BUCKETS - 1;
    else if (b < 0) b = 0;
    bucket[i] = b;
    counts[b]!++;
  }
  let b = 0;
  let before = 0;
  while (before + counts[b]! <= rank) before += counts[b++]!;
  const members = s.members;
  let m = 0;
  for (let i = 0; i < n; i++) if (bucket[i] === b) members[m++] = i;
  // Sort the (small) bucket by (score, position); members are already in position order.
  const sub = members.subarray(0, m);
  if (m > 1) sub.sort((x, y) => scores[x]! - scores[y]! || x - y);
  return sub[rank - before]!;
}

/** @internal Scratch of {@link weightedRankValue} for up to `n` entries. */
export class WeightedRankScratch {
  readonly idx: Int32Array;
  readonly bucket: Int32Array;
  readonly scores: Float64Array;
  readonly counts: Int32Array;
  readonly bucketWeight = new Int32Array(BUCKETS);
  constructor(n: number) {
    this.idx = new Int32Array(n);
    this.bucket = new Int32Array(n);
    this.scores = new Float64Array(n);
    this.counts = new Int32Array(n);
  }
}

/**
 * @internal The value of rank `rank` (0-based) in the multiset where `scores[i]` appears `counts[i]` times
 * (i in [0, n)): the s such that (sum of counts of scores < s) <= rank < (sum of counts of scores <= s).
 * Needs 0 <= rank < sum of counts. Many entries are first narrowed to one of {@link BUCKETS} buckets over
 * [min, max] (a monotone map, so equal scores share a bucket); then a three-way quickselect, O(n) expected,
 * deterministic (no random pivot).
 */
export function weightedRankValue(scores: Float64Array, counts: Int32Array, n: number, rank: number, s: WeightedRankScratch): number {
  if (n > 64) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = scores[i]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    if (lo === hi) return lo;
    const weight = s.bucketWeight;
    weight.fill(0);
    const bucket = s.bucket;
    const scale = (BUCKETS - 1e-9) / (hi - lo);
    for (let i = 0; i < n; i++) {
      let b = Math.floor((scores[i]! - lo) * scale);
      if (b >= BUCKETS) b = BUCKETS - 1;
      bucket[i] = b;
      weight[b]! += counts[i]!;
    }
    let b = 0;
    while (rank >= weight[b]!) rank -= weight[b++]!;
    let m = 0;
    const sub = s.scores;
    const subCounts = s.counts;
    for (let i = 0; i < n; i++) {
      if (bucket[i] === b) {
        sub[m] = scores[i]!;
        subCounts[m++] = counts[i]!;
      }
    }
    return quickselect(sub, subCounts, m, rank, s.idx);
  }
  return quickselect(scores, counts, n, rank, s.idx);
}

function quickselect(scores: Float64Array, counts: Int32Array, n: number, rank: number, idx: Int32Array): number {
  for (let i = 0; i < n; i++) idx[i] = i;
  let lo = 0;
  let hi = n;
  for (;;) {
    const a = scores[idx[lo]!]!;
    const b = scores[idx[(lo + hi) >>> 1]!]!;
    const c = scores[idx[hi - 1]!]!;
    const p = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b; // median of three
    let lt = lo;
    let i = lo;
    let gt = hi;
    let less = 0;
    let equal = 0;
    while (i < gt) {
      const e = idx[i]!;
      const s = scores[e]!;
      if (s < p) {
        idx[i] = idx[lt]!;
        idx[lt++] = e;
        less += counts[e]!;
        i++;
      } else if (s > p) {
        idx[i] = idx[--gt]!;
        idx[gt] = e;
      } else {
        equal += counts[e]!;
        i++;
      }
    }
    if (rank < less) hi = lt;
    else if (rank < less + equal) return p;
    else {
      rank -= less + equal;
      lo = gt;
    }
  }
}
