import type { ClusterView, MutableNodeEntry, ViewIndex } from '../cluster-view.js';
import { ResourceRequest } from '../resource-request.js';
import { infeasible } from './infeasible.js';
import { selectRank } from './select.js';
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
 * Speed: nodes are visited in a uniformly random order (lazy Fisher-Yates over a persistent permutation).
 * A rank j is drawn uniformly in [0, k) up front; the j-th score-0 node met in random order is exactly the
 * j-th of the best-k list (score-0 nodes come first, in random order), so the scan stops there. In a
 * cluster under the spread threshold that is ~k/2 nodes visited instead of all; otherwise a full scan
 * plus a quickselect on the rank. The result has exactly the distribution of the description above
 * (including the case |pool| < k, corrected at the end).
 */
export function scheduleHybrid(req: ResourceRequest, view: ClusterView, o: ResolvedOptions): ScheduleDecision {
  const ix = view.index();
  const n = ix.all.length;
  if (n === 0) return infeasible(req, view, undefined, 'no alive node in the cluster');
  let k = Math.floor(n * o.topKFraction);
  if (k < o.topKAbsolute) k = o.topKAbsolute;
  if (k < 1) k = 1;
  const localEntry = o.localNodeId === undefined ? undefined : (view.entry(o.localNodeId) as MutableNodeEntry | undefined);
  const scoreReq = o.scoreAfterPlacement ? req : ResourceRequest.EMPTY;
  if (req.gpu === 0 && o.avoidGpuNodes && ix.nonGpu.length < n && ix.nonGpu.length > 0) {
    const d = pass(req, scoreReq, ix.nonGpu, ix.permNonGpu, ix, k, localEntry, true, true, o);
    if (d) return d;
  }
  return pass(req, scoreReq, ix.all, ix.permAll, ix, k, localEntry, false, false, o) ?? infeasible(req, view, undefined);
}

function pass(
  req: ResourceRequest,
  scoreReq: ResourceRequest,
  list: MutableNodeEntry[],
  perm: Int32Array,
  ix: ViewIndex,
  k: number,
  local: MutableNodeEntry | undefined,
  nonGpuOnly: boolean,
  requireAvailable: boolean,
  o: ResolvedOptions,
): ScheduleDecision | null {
  const threshold = o.spreadThreshold;
  const rng = o.rng;
  let localScore = Infinity;
  if (local !== undefined && local.alive && !(nonGpuOnly && local.resources.hasGpus()) && local.resources.canFit(req)) {
    localScore = local.resources.scoreAfter(scoreReq);
    if (localScore < threshold) return { kind: 'node', nodeId: local.nodeId };
  }
  const m = list.length;
  const j = Math.floor(rng() * k);
  // Per-decision xorshift32 seeded from the injected rng: cheap random order, reproducible with a seeded rng.
  let x = Math.floor(rng() * 0x100000000) | 0 || 1;
  const zero = ix.zero;
  const candNode = ix.candNode;
  const candScore = ix.candScore;
  let count0 = 0;
  let nnz = 0;
  let nbusy = 0;
  const busyNode = ix.busyNode;
  const busyScore = ix.busyScore;
  for (let i = 0; i < m; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    // (x >>> 0) * (m - i) < 2^52 is exact; scaling by 2^-32 keeps it in [0, m - i).
    const r = i + Math.floor((x >>> 0) * (m - i) * 2.3283064365386963e-10);
    const pi = perm[r]!;
    perm[r] = perm[i]!;
    perm[i] = pi;
    const e = list[pi]!;
    const node = e.resources;
    if (node.canFit(req)) {
      const s = node.scoreAfter(scoreReq);
      if (s < threshold) {
        if (count0 === j) return { kind: 'node', nodeId: e.nodeId };
        zero[count0++] = e;
      } else {
        candNode[nnz] = e;
        candScore[nnz++] = s;
      }
    } else if (!requireAvailable && node.isFeasible(req)) {
      busyNode[nbusy] = e;
      const s = node.scoreAfter(scoreReq);
      busyScore[nbusy++] = s < threshold ? 0 : s;
    }
  }
  const p = count0 + nnz;
  if (p > 0) {
    let best = 0;
    if (count0 === 0) {
      best = Infinity;
      for (let i = 0; i < nnz; i++) if (candScore[i]! < best) best = candScore[i]!;
    }
    if (localScore <= best) return { kind: 'node', nodeId: local!.nodeId };
    if (p >= k) {
      // j >= count0 here, else the scan would have stopped at the j-th score-0 node.
      return { kind: 'node', nodeId: candNode[selectRank(candScore, nnz, j - count0, threshold, 1, ix.rank)]!.nodeId };
    }
    // |pool| < k: every pool node must end with probability 1/p. Score-0 nodes already got 1/k each
    // through the early stop (taken with probability count0/k); top them up.
    const w0 = (count0 * (1 / p - 1 / k)) / (1 - count0 / k);
    if (nnz === 0 || (count0 > 0 && rng() < w0)) return { kind: 'node', nodeId: zero[Math.floor(rng() * count0)]!.nodeId };
    return { kind: 'node', nodeId: candNode[Math.floor(rng() * nnz)]!.nodeId };
  }
  if (nbusy === 0) return null;
  const kk = nbusy < k ? nbusy : k;
  return { kind: 'wait', nodeId: busyNode[selectRank(busyScore, nbusy, Math.floor(rng() * kk), 0, 2, ix.rank)]!.nodeId };
}
