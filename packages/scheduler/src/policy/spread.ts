import type { ClusterView } from '../cluster-view.js';
import type { ResourceRequest } from '../resource-request.js';
import { infeasible } from './infeasible.js';
import type { ResolvedOptions, ScheduleDecision } from './types.js';

/**
 * Ray's SPREAD policy (`spread_scheduling_policy.cc`): round robin over the alive nodes sorted by id,
 * starting after the node picked last; first pass takes the first node that can fit the request now,
 * second pass the first feasible one (-> `wait`: the caller queues the request on that node, so work
 * that finds every node busy is still shared out in turn). The cursor lives in the {@link ClusterView}.
 *
 * `opts.queuedNodes` are skipped by the first pass (they hold queued work their free resources do not
 * show); `opts.availableOnly` drops the second pass and leaves the cursor where it was.
 */
export function scheduleSpread(req: ResourceRequest, view: ClusterView, opts: ResolvedOptions): ScheduleDecision {
  const sorted = view.index().sorted;
  const n = sorted.length;
  const start = view.spreadCursor;
  const queued = opts.queuedNodes;
  for (let i = 0; i < n; i++) {
    const idx = (start + i) % n;
    const e = sorted[idx]!;
    if (!queued?.has(e.nodeId) && e.resources.canFit(req)) {
      view.spreadCursor = (idx + 1) % n;
      return { kind: 'node', nodeId: e.nodeId };
    }
  }
  for (let i = 0; i < n; i++) {
    const idx = (start + i) % n;
    const e = sorted[idx]!;
    if (e.resources.isFeasible(req)) {
      if (!opts.availableOnly) view.spreadCursor = (idx + 1) % n;
      return { kind: 'wait', nodeId: e.nodeId };
    }
  }
  return infeasible(req, view, undefined);
}
