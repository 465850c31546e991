import type { ClusterView, MutableNodeEntry } from '../cluster-view.js';
import { matchesLabels } from '../labels.js';
import type { ResourceRequest } from '../resource-request.js';
import { infeasible } from './infeasible.js';
import type { NodeLabelStrategy, ResolvedOptions, ScheduleDecision } from './types.js';

/**
 * Ray's NodeLabelSchedulingStrategy (`node_label_scheduling_policy.cc`): candidates are alive nodes
 * matching every `hard` constraint and feasible for the request. Among those that fit now, pick
 * uniformly at random, preferring the ones that also match `soft`; if none fits now, `wait` on a random
 * feasible candidate (soft-matching preferred); if there is no candidate, infeasible.
 */
export function scheduleNodeLabel(req: ResourceRequest, view: ClusterView, s: NodeLabelStrategy, o: ResolvedOptions): ScheduleDecision {
  const hard = s.hard ?? [];
  const soft = s.soft ?? [];
  const avail: MutableNodeEntry[] = [];
  const availSoft: MutableNodeEntry[] = [];
  const busy: MutableNodeEntry[] = [];
  const busySoft: MutableNodeEntry[] = [];
  for (const e of view.index().all) {
    const labels = e.resources.labels;
    if (!matchesLabels(hard, labels, e.nodeId) || !e.resources.isFeasible(req)) continue;
    const softOk = soft.length > 0 && matchesLabels(soft, labels, e.nodeId);
    if (e.resources.canFit(req)) (softOk ? availSoft : avail).push(e);
    else (softOk ? busySoft : busy).push(e);
  }
  const pick = (xs: MutableNodeEntry[]) => xs[Math.floor(o.rng() * xs.length)]!.nodeId;
  if (availSoft.length > 0) return { kind: 'node', nodeId: pick(availSoft) };
  if (avail.length > 0) return { kind: 'node', nodeId: pick(avail) };
  if (busySoft.length > 0) return { kind: 'wait', nodeId: pick(busySoft) };
  if (busy.length > 0) return { kind: 'wait', nodeId: pick(busy) };
  return infeasible(req, view, hard.length > 0 ? hard : undefined);
}
