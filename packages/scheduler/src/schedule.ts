import type { ClusterView } from './cluster-view.js';
import { ResourceValidationError, SchedulingOptionError, UnknownStrategyError } from './errors.js';
import { validateLabelSelector } from './labels.js';
import { scheduleHybrid } from './policy/hybrid.js';
import { scheduleNodeAffinity } from './policy/node-affinity.js';
import { scheduleNodeLabel } from './policy/node-label.js';
import { scheduleSpread } from './policy/spread.js';
import type { NodeAffinityStrategy, NodeLabelStrategy, ResolvedOptions, ScheduleDecision, ScheduleOptions, SchedulingStrategy } from './policy/types.js';
import { ResourceRequest, describe } from './resource-request.js';

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
  if (opts.rng !== undefined && typeof opts.rng !== 'function') throw new SchedulingOptionError('rng', `rng must be a function returning [0, 1), got ${describe(opts.rng)}`);
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
 * Validates a strategy and returns it in object form.
 * @throws UnknownStrategyError on an unknown type; ResourceValidationError on a bad label selector.
 */
export function normalizeStrategy(strategy: SchedulingStrategy | undefined): Exclude<SchedulingStrategy, string> {
  if (strategy === undefined || strategy === 'DEFAULT') return DEFAULT_STRATEGY;
  if (strategy === 'SPREAD') return SPREAD_STRATEGY;
  if (strategy === null || typeof strategy !== 'object') throw new UnknownStrategyError(strategy);
  switch ((strategy as { type?: unknown }).type) {
    case 'DEFAULT':
    case 'SPREAD':
      return strategy;
    case 'NODE_AFFINITY': {
      const s = strategy as NodeAffinityStrategy;
      if (typeof s.nodeId !== 'string' || s.nodeId === '') throw new UnknownStrategyError(strategy, 'NODE_AFFINITY needs a non-empty nodeId');
      if (typeof s.soft !== 'boolean') throw new UnknownStrategyError(strategy, 'NODE_AFFINITY needs soft: boolean');
      return s;
    }
    case 'NODE_LABEL': {
      const s = strategy as NodeLabelStrategy;
      validateLabelSelector(s.hard, 'hard');
      validateLabelSelector(s.soft, 'soft');
      return s;
    }
    default:
      throw new UnknownStrategyError(strategy);
  }
}

const DEFAULT_STRATEGY = Object.freeze({ type: 'DEFAULT' as const });
const SPREAD_STRATEGY = Object.freeze({ type: 'SPREAD' as const });

/**
 * Picks a node for a request: `{kind: 'node', nodeId}` (allocate there now), `{kind: 'wait', nodeId}`
 * (feasible but busy everywhere: queue on nodeId or retry) or `{kind: 'infeasible', missing, reason}`.
 * Pure: reads the view (SPREAD advances its round-robin cursor), allocates nothing.
 *
 * @throws UnknownStrategyError, SchedulingOptionError, ResourceValidationError (request is not a
 *   ResourceRequest or a label selector is malformed).
 */
export function schedule(request: ResourceRequest, cluster: ClusterView, strategy: SchedulingStrategy = 'DEFAULT', opts?: ScheduleOptions): ScheduleDecision {
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
  }
}
