import type { ClusterView } from '../cluster-view.js';
import type { ResourceRequest } from '../resource-request.js';
import { infeasible } from './infeasible.js';
import type { ScheduleDecision } from './types.js';

/**
 * Ray's SPREAD policy (`spread_scheduling_policy.cc`): round robin over the alive nodes sorted by id,
 * starting after the node picked last; first pass takes the first node that can fit the request now,
 * second pass the first feasible one (-> `wait`). The cursor lives in the {@link ClusterView}.
 */
export function scheduleSpread(req: ResourceRequest, view: ClusterView): ScheduleDecision {
  const sorted = view.index().sorted;
  const n = sorted.length;
  const start = view.spreadCursor;
  for (let i = 0; i < n; i++) {
    const idx = (start + i) % n;
    const e = sorted[idx]!;
    if (e.resources.canFit(req)) {
      view.spreadCursor = (idx + 1) % n;
      return { kind: 'node', nodeId: e.nodeId };
    }
  }
  for (let i = 0; i < n; i++) {
    const idx = (start + i) % n;
    const e = sorted[idx]!;
    if (e.resources.isFeasible(req)) {
      view.spreadCursor = (idx + 1) % n;
      return { kind: 'wait', nodeId: e.nodeId };
    }
  }
  return infeasible(req, view, undefined);
}
