import type { ClusterView } from '../cluster-view.js';
import { matchesLabels, type LabelSelector } from '../labels.js';
import type { ResourceRequest } from '../resource-request.js';
import type { ScheduleDecision } from './types.js';

/**
 * @internal Builds the `infeasible` decision: `missing` = resources no candidate node has enough of in
 * total; when every resource exists somewhere but no single node has them all, the union of what each
 * candidate lacks.
 */
export function infeasible(req: ResourceRequest, view: ClusterView, hard: LabelSelector | undefined, reason?: string): ScheduleDecision {
  const cands = view.index().all.filter((e) => !hard || matchesLabels(hard, e.resources.labels, e.nodeId));
  const shape = JSON.stringify(req.toJSON());
  if (cands.length === 0) {
    return {
      kind: 'infeasible',
      missing: [...req.amounts.keys()],
      reason: reason ?? (hard ? `no alive node matches the hard label selector ${JSON.stringify(hard)}` : 'no alive node in the cluster'),
    };
  }
  let inter: Set<string> | undefined;
  const union = new Set<string>();
  for (const e of cands) {
    const miss = e.resources.missing(req);
    for (const x of miss) union.add(x);
    inter = inter === undefined ? new Set(miss) : new Set(miss.filter((x) => inter!.has(x)));
  }
  const missing = inter && inter.size > 0 ? [...inter] : [...union];
  return {
    kind: 'infeasible',
    missing: missing.sort(),
    reason:
      reason ??
      `no alive node${hard ? ' matching the hard label selector' : ''} can ever hold ${shape}` +
        (missing.length > 0 ? ` (not enough in total: ${missing.join(', ')})` : ''),
  };
}
