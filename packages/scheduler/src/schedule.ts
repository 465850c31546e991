import type { ClusterView } from './cluster-view.js';
import { ResourceValidationError, SchedulingOptionError } from './errors.js';
import { scheduleHybrid } from './policy/hybrid.js';
import { scheduleNodeAffinity } from './policy/node-affinity.js';
import { scheduleNodeLabel } from './policy/node-label.js';
import { scheduleSpread } from './policy/spread.js';
import type { NodeSchedulingStrategy, ResolvedOptions, ScheduleDecision, ScheduleOptions } from './policy/types.js';
import { ResourceRequest, describe } from './resource-request.js';
import { normalizeStrategy } from './strategy.js';

const DEFAULTS: ResolvedOptions = Object.freeze({
  localNodeId: undefined,
  rng: Math.random,
  spreadThreshold: 0.5,
  topKFraction: 0.2,
  topKAbsolute: 1,
  avoidGpuNodes: true,
  scoreAfterPlacement: true,
  queuedNodes: undefined,
  availableOnly: false,
});

const resolvedCache = new WeakMap<ScheduleOptions, ResolvedOptions>();

/**
 * Validates options and applies Ray's defaults. Results are cached per options object, so pass the same
 * (unchanged) object to repeated {@link schedule} calls. @throws SchedulingOptionError
 */
export function resolveScheduleOptions(opts: ScheduleOptions | undefined): ResolvedOptions {
  if (opts === undefined) return DEFAULTS;
  const cached = resolvedCache.get(opts);
  if (cached) return cached;
  if (opts === null || typeof opts !== 'object') throw new SchedulingOptionError('options', `schedule options must be an object, got ${describe(opts)}`);
  const frac = (name: keyof ScheduleOptions, v: unknown, d: number): number => {
    if (v === undefined) return d;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new SchedulingOptionError(name, `${name} must be a number in [0, 1], got ${describe(v)}`);
    return v;
  };
  const bool = (name: keyof ScheduleOptions, v: unknown, d: boolean): boolean => {
    if (v === undefined) return d;
    if (typeof v !== 'boolean') throw new SchedulingOptionError(name, `${name} must be a boolean, got ${describe(v)}`);
    return v;
  };
  if (opts.rng !== undefined && typeof opts.rng !== 'function')
    throw new SchedulingOptionError('rng', `rng must be a function returning [0, 1), got ${describe(opts.rng)}`);
  if (opts.localNodeId !== undefined && typeof opts.localNodeId !== 'string') {
    throw new SchedulingOptionError('localNodeId', `localNodeId must be a string, got ${describe(opts.localNodeId)}`);
  }
  if (opts.queuedNodes !== undefined && (opts.queuedNodes === null || typeof (opts.queuedNodes as { has?: unknown }).has !== 'function')) {
    throw new SchedulingOptionError('queuedNodes', `queuedNodes must be a Set of node ids, got ${describe(opts.queuedNodes)}`);
  }
  const topKAbsolute = opts.topKAbsolute ?? 1;
  if (typeof topKAbsolute !== 'number' || !Number.isInteger(topKAbsolute) || topKAbsolute < 1) {
    throw new SchedulingOptionError('topKAbsolute', `topKAbsolute must be an integer >= 1, got ${describe(topKAbsolute)}`);
  }
  const r: ResolvedOptions = Object.freeze({
    localNodeId: opts.localNodeId,
    rng: opts.rng ?? Math.random,
    spreadThreshold: frac('spreadThreshold', opts.spreadThreshold, DEFAULTS.spreadThreshold),
    topKFraction: frac('topKFraction', opts.topKFraction, DEFAULTS.topKFraction),
    topKAbsolute,
    avoidGpuNodes: bool('avoidGpuNodes', opts.avoidGpuNodes, true),
    scoreAfterPlacement: bool('scoreAfterPlacement', opts.scoreAfterPlacement, true),
    queuedNodes: opts.queuedNodes,
    availableOnly: bool('availableOnly', opts.availableOnly, false),
  });
  resolvedCache.set(opts, r);
  return r;
}

/**
 * Picks a node for a request: `{kind: 'node', nodeId}` (allocate there now), `{kind: 'wait', nodeId}`
 * (feasible but busy everywhere: queue on nodeId or retry) or `{kind: 'infeasible', missing, reason}`.
 * Pure: reads the view (SPREAD advances its round-robin cursor), allocates nothing.
 *
 * @throws UnknownStrategyError, SchedulingOptionError, ResourceValidationError (request is not a
 *   ResourceRequest or a label selector is malformed).
 */
export function schedule(
  request: ResourceRequest,
  cluster: ClusterView,
  strategy: NodeSchedulingStrategy = 'DEFAULT',
  opts?: ScheduleOptions,
): ScheduleDecision {
  if (!(request instanceof ResourceRequest)) {
    throw new ResourceValidationError('request', `request must be a ResourceRequest (see resourceRequestFromOptions), got ${describe(request)}`);
  }
  const o = resolveScheduleOptions(opts);
  if (strategy === 'DEFAULT') return scheduleHybrid(request, cluster, o);
  const s = normalizeStrategy(strategy);
  switch (s.type) {
    case 'DEFAULT':
      return scheduleHybrid(request, cluster, o);
    case 'SPREAD':
      return scheduleSpread(request, cluster, o);
    case 'NODE_AFFINITY':
      return scheduleNodeAffinity(request, cluster, s, o);
    case 'NODE_LABEL':
      return scheduleNodeLabel(request, cluster, s, o);
    case 'PLACEMENT_GROUP':
      throw new SchedulingOptionError('strategy', "schedule() does not place PLACEMENT_GROUP work: it runs in its group's bundles (see @tsray/placement)");
  }
}
