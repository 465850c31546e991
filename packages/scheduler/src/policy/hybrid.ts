import type { ClusterView } from '../cluster-view.js';
import type { NodeClassIndex } from '../node-classes.js';
import { ResourceRequest } from '../resource-request.js';
import { infeasible } from './infeasible.js';
import { weightedRankValue } from './select.js';
import type { ResolvedOptions, ScheduleDecision } from './types.js';

/**
 * Ray's DEFAULT policy (HybridSchedulingPolicy, `hybrid_scheduling_policy.cc`):
 *
 * - score(n) = critical utilization of n (max over CPU, memory, object_store_memory) after placing the
 *   request (or before, with `scoreAfterPlacement: false`); below `spreadThreshold` it counts as 0.
 * - pool = alive nodes that can fit the request now; if none, the feasible-but-busy ones (-> `wait`).
 * - k = max(topKAbsolute, floor(aliveNodes * topKFraction)); pick uniformly among the best min(k, |pool|)
 *   nodes by score, ties broken at random (Ray breaks them by node id, which is random).
 * - the local node wins when it can fit now and its score equals the best score.
 * - a request without GPUs first tries nodes without GPUs that can fit it now (avoidGpuNodes).
 *
 * Random draws, per pass (exactly reproduced by the brute-force reference of the tests), once the local
 * node has not won at once (it fits and scores under the threshold):
 * 1. j = floor(rng() * k); if j >= |P| (the pool is smaller than k), j = floor(rng() * |P|): a uniform rank.
 * 2. if rank j (P ordered by score) scores 0: slots are drawn, i = floor(rng() * L) over the pass's list of
 *    L nodes (all alive nodes, or those without GPUs), until one is a score-0 node of P: the pick.
 * 3. otherwise s* = the score of rank j, G = the nodes of P scoring exactly s* in the view's insertion
 *    order, and the pick is G[floor(rng() * |G|)].
 * With no pool (-> `wait`), the same steps run over the feasible busy nodes, reusing step 1's first draw.
 * That is a uniform pick among the best min(k, |P|) with random tie breaks.
 *
 * Speed: nodes in the same resource state score alike, so the policy works on the view's
 * {@link NodeClassIndex} (kept current by allocate/release): a pass over the classes that stops as soon
 * as more than j score-0 nodes are seen (step 2 then needs about L / |score-0| draws), else a weighted
 * (bucketed) quickselect of rank j over the pool's classes, and for step 3 the r-th smallest slot among
 * G's members (or, when G is large, one pass over slot -> class).
 */
export function scheduleHybrid(req: ResourceRequest, view: ClusterView, o: ResolvedOptions): ScheduleDecision {
  const ix = view.index();
  const n = ix.all.length;
  if (n === 0) return infeasible(req, view, undefined, 'no alive node in the cluster');
  const cx = view.classIndex();
  let k = Math.floor(n * o.topKFraction);
  if (k < o.topKAbsolute) k = o.topKAbsolute;
  if (k < 1) k = 1;
  const local = o.localNodeId === undefined ? -1 : (ix.slotOf.get(o.localNodeId) ?? -1);
  const scoreReq = o.scoreAfterPlacement ? req : ResourceRequest.EMPTY;
  let slot = -1;
  if (req.gpu === 0 && o.avoidGpuNodes && ix.nonGpu.length < n && ix.nonGpu.length > 0) {
    slot = pass(req, scoreReq, cx, k, local, true, o);
    if (slot >= 0) return { kind: 'node', nodeId: ix.all[slot]!.nodeId };
  }
  slot = pass(req, scoreReq, cx, k, local, false, o);
  if (slot >= 0) return { kind: 'node', nodeId: ix.all[slot]!.nodeId };
  if (slot < -1) return { kind: 'wait', nodeId: ix.all[-slot - 2]!.nodeId };
  return infeasible(req, view, undefined);
}

/**
 * One pass of the policy over the alive nodes (`nonGpuOnly`: those without GPUs, which must fit now).
 * Returns the chosen slot (>= 0), `-2 - slot` for a `wait` on a busy slot, or -1 when nothing is found.
 */
function pass(req: ResourceRequest, scoreReq: ResourceRequest, cx: NodeClassIndex, k: number, local: number, nonGpuOnly: boolean, o: ResolvedOptions): number {
  const threshold = o.spreadThreshold;
  const rng = o.rng;
  let localScore = Infinity;
  if (local >= 0) {
    const c = cx.classOf[local]!;
    if (!(nonGpuOnly && cx.hasGpu[c] === 1) && cx.fits(c, req)) {
      localScore = cx.score(c, scoreReq);
      if (localScore < threshold) return local;
    }
  }
  let j = Math.floor(rng() * k);
  const active = cx.active;
  const nActive = cx.nActive;
  const hasGpu = cx.hasGpu;
  const count = cx.count;
  const poolClass = cx.poolClass;
  const poolScore = cx.poolScore;
  const poolCount = cx.poolCount;
  let np = 0;
  let size = 0;
  let zeros = 0;
  let best = Infinity;
  for (let a = 0; a < nActive; a++) {
    const c = active[a]!;
    if (nonGpuOnly && hasGpu[c] === 1) continue;
    if (!cx.fits(c, req)) continue;
    const raw = cx.score(c, scoreReq);
    const m = count[c]!;
    if (raw < threshold || raw === 0) {
      zeros += m;
      best = 0;
      // Rank j is a score-0 node: the pick is uniform over them, whatever the rest of the pool holds.
      if (zeros > j) {
        if (localScore <= 0) return local;
        return pickZero(cx, req, scoreReq, threshold, nonGpuOnly, true, rng);
      }
    } else if (raw < best) best = raw;
    poolClass[np] = c;
    poolScore[np] = raw < threshold ? 0 : raw;
    poolCount[np++] = m;
    size += m;
  }
  if (size > 0) {
    if (localScore <= best) return local;
    if (j >= size) j = Math.floor(rng() * size);
    if (j < zeros) return pickZero(cx, req, scoreReq, threshold, nonGpuOnly, true, rng);
    return pickRank(cx, np, j, rng);
  }
  if (nonGpuOnly) return -1;
  // Nothing fits now: the feasible (busy) nodes, scored the same way, give the node to wait on.
  for (let a = 0; a < nActive; a++) {
    const c = active[a]!;
    if (!cx.feasible(c, req)) continue;
    const raw = cx.score(c, scoreReq);
    const s = raw < threshold ? 0 : raw;
    const m = count[c]!;
    poolClass[np] = c;
    poolScore[np] = s;
    poolCount[np++] = m;
    size += m;
    if (s === 0) zeros += m;
  }
  if (size === 0) return -1;
  if (j >= size) j = Math.floor(rng() * size);
  return -2 - (j < zeros ? pickZero(cx, req, scoreReq, threshold, false, false, rng) : pickRank(cx, np, j, rng));
}

/**
 * Uniform pick among the pass's score-0 nodes (that fit now, or when `fitting` is false, that are
 * feasible), by rejection: slots drawn uniformly (floor(rng() * list length)) over the pass's list (all
 * alive nodes, or those without GPUs) until one is a score-0 node. At least one exists.
 */
function pickZero(
  cx: NodeClassIndex,
  req: ResourceRequest,
  scoreReq: ResourceRequest,
  threshold: number,
  nonGpuOnly: boolean,
  fitting: boolean,
  rng: () => number,
): number {
  const slots = nonGpuOnly ? cx.nonGpuSlots : null;
  const len = slots === null ? cx.n : slots.length;
  for (;;) {
    const i = Math.floor(rng() * len);
    const slot = slots === null ? i : slots[i]!;
    const c = cx.classOf[slot]!;
    if (fitting ? !cx.fits(c, req) : !cx.feasible(c, req)) continue;
    const raw = cx.score(c, scoreReq);
    if (raw < threshold || raw === 0) return slot;
  }
}

/**
 * Pick of rank j (>= the score-0 count) in the pool described by `cx.pool*[0..np)` (class, score, members):
 * its score s*, then G[floor(rng() * |G|)] with G = the pool's nodes scoring s*, in slot order.
 */
function pickRank(cx: NodeClassIndex, np: number, j: number, rng: () => number): number {
  const poolScore = cx.poolScore;
  const target = weightedRankValue(poolScore, cx.poolCount, np, j, cx.rank);
  const flag = cx.flag;
  const poolClass = cx.poolClass;
  let g = 0;
  let only = -1;
  for (let i = 0; i < np; i++) {
    if (poolScore[i] === target) {
      const c = poolClass[i]!;
      flag[c] = 1;
      g += cx.poolCount[i]!;
      only = only === -1 ? c : -2;
    }
  }
  const r = Math.floor(rng() * g);
  let slot = -1;
  if (only >= 0 && g === 1) {
    slot = cx.members[only]![0]!;
  } else if (g * 4 < cx.n) {
    // Few nodes in G: the r-th smallest of their slots.
    const sel = cx.selIdx;
    let len = 0;
    for (let i = 0; i < np; i++) {
      if (poolScore[i] !== target) continue;
      const m = cx.members[poolClass[i]!]!;
      for (let t = 0; t < m.length; t++) sel[len++] = m[t]!;
    }
    slot = kthSmallest(sel, len, r);
  } else {
    const classOf = cx.classOf;
    let left = r;
    for (let i = 0; i < cx.n; i++) {
      if (flag[classOf[i]!] === 1 && left-- === 0) {
        slot = i;
        break;
      }
    }
  }
  for (let i = 0; i < np; i++) flag[poolClass[i]!] = 0;
  return slot;
}

/** The k-th smallest (0-based) of `a[0..n)` (distinct values); reorders `a`. Quickselect, O(n) expected. */
function kthSmallest(a: Int32Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const p = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < p) i++;
      while (a[j]! > p) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[lo]!;
}
