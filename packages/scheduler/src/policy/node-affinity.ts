import type { ClusterView } from '../cluster-view.js';
import type { ResourceRequest } from '../resource-request.js';
import { scheduleHybrid } from './hybrid.js';
import type { NodeAffinityStrategy, ResolvedOptions, ScheduleDecision } from './types.js';

/**
 * Ray's NodeAffinitySchedulingStrategy (`node_affinity_scheduling_policy.cc`):
 * - target alive and feasible: run there when it fits now; when busy, `wait` on it, unless
 *   `soft && spillOnUnavailable` (-> DEFAULT policy) or `failOnUnavailable` (-> infeasible);
 * - target dead, unknown or never able to hold the request: `soft` -> DEFAULT policy, else infeasible.
 */
export function scheduleNodeAffinity(req: ResourceRequest, view: ClusterView, s: NodeAffinityStrategy, o: ResolvedOptions): ScheduleDecision {
  const e = view.entry(s.nodeId);
  if (e !== undefined && e.alive && e.resources.isFeasible(req)) {
    if (e.resources.canFit(req)) return { kind: 'node', nodeId: e.nodeId };
    if (s.soft && s.spillOnUnavailable) return scheduleHybrid(req, view, o);
    if (s.failOnUnavailable) {
      return { kind: 'infeasible', missing: [], reason: `node ${s.nodeId} cannot fit the request now and failOnUnavailable is set` };
    }
    return { kind: 'wait', nodeId: e.nodeId };
  }
  if (s.soft) return scheduleHybrid(req, view, o);
  if (e === undefined) return { kind: 'infeasible', missing: [], reason: `node ${s.nodeId} is not in the cluster (hard node affinity)` };
  if (!e.alive) return { kind: 'infeasible', missing: [], reason: `node ${s.nodeId} is dead (hard node affinity)` };
  const missing = e.resources.missing(req);
  return {
    kind: 'infeasible',
    missing,
    reason: `node ${s.nodeId} can never hold ${JSON.stringify(req.toJSON())} (not enough in total: ${missing.join(', ')}; hard node affinity)`,
  };
}
