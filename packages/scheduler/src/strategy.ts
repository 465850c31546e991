/**
 * Validation of a {@link SchedulingStrategy}: the one check every edge runs (the user API, a spec
 * decoded from the wire, {@link schedule}) and the canonical object form it returns.
 */
import { UnknownStrategyError } from './errors.js';
import { type LabelConstraint, type LabelSelector, validateLabelSelector } from './labels.js';
import type { NodeAffinityStrategy, NodeLabelStrategy, NormalizedStrategy, PlacementGroupStrategy, SchedulingStrategy } from './policy/types.js';

const DEFAULT_STRATEGY = Object.freeze({ type: 'DEFAULT' as const });
const SPREAD_STRATEGY = Object.freeze({ type: 'SPREAD' as const });

/** Fields each strategy type may have (anything else is a typo the user should hear about). */
const FIELDS: Record<string, readonly string[]> = {
  DEFAULT: ['type'],
  SPREAD: ['type'],
  NODE_AFFINITY: ['type', 'nodeId', 'soft', 'spillOnUnavailable', 'failOnUnavailable'],
  NODE_LABEL: ['type', 'hard', 'soft'],
  PLACEMENT_GROUP: ['type', 'placementGroupId', 'bundleIndex', 'captureChildTasks'],
};

/**
 * Validates a strategy and returns it in canonical object form: defaults filled in (`soft: false`,
 * `bundleIndex: -1`, `captureChildTasks: false`, empty selectors), unknown fields rejected, label
 * constraints copied (so later changes to the caller's object do not reach a queued task).
 * @throws UnknownStrategyError (its `option` names the bad field) on an unknown type or a malformed
 *   field; ResourceValidationError (option `hard[i]` / `soft[i]`) on a malformed label selector.
 */
export function normalizeStrategy(strategy: SchedulingStrategy | undefined): NormalizedStrategy {
  if (strategy === undefined || strategy === 'DEFAULT') return DEFAULT_STRATEGY;
  if (strategy === 'SPREAD') return SPREAD_STRATEGY;
  if (strategy === null || typeof strategy !== 'object') throw new UnknownStrategyError(strategy);
  const type = (strategy as { type?: unknown }).type;
  const fields = typeof type === 'string' && Object.hasOwn(FIELDS, type) ? FIELDS[type]! : undefined;
  if (!fields) throw new UnknownStrategyError(strategy, `unknown type ${JSON.stringify(type)}`, 'type');
  for (const k of Object.keys(strategy)) {
    if (!fields.includes(k)) throw new UnknownStrategyError(strategy, `${String(type)} has no field "${k}" (fields: ${fields.join(', ')})`, k);
  }
  switch (strategy.type) {
    case 'DEFAULT':
      return DEFAULT_STRATEGY;
    case 'SPREAD':
      return SPREAD_STRATEGY;
    case 'NODE_AFFINITY':
      return nodeAffinity(strategy);
    case 'NODE_LABEL':
      return nodeLabel(strategy);
    case 'PLACEMENT_GROUP':
      return placementGroup(strategy);
  }
}

function optionalBool(s: object, key: string): boolean {
  const v = (s as Record<string, unknown>)[key];
  if (v !== undefined && typeof v !== 'boolean') throw new UnknownStrategyError(s, `${key} must be a boolean, got ${JSON.stringify(v)}`, key);
  return v === true;
}

function nodeAffinity(s: NodeAffinityStrategy): NodeAffinityStrategy {
  if (typeof s.nodeId !== 'string' || s.nodeId === '') throw new UnknownStrategyError(s, 'NODE_AFFINITY needs a non-empty nodeId', 'nodeId');
  const soft = optionalBool(s, 'soft');
  const spill = optionalBool(s, 'spillOnUnavailable');
  const fail = optionalBool(s, 'failOnUnavailable');
  return { type: 'NODE_AFFINITY', nodeId: s.nodeId, soft, ...(spill ? { spillOnUnavailable: true } : {}), ...(fail ? { failOnUnavailable: true } : {}) };
}

function copySelector(sel: LabelSelector): LabelSelector {
  return sel.map((c): LabelConstraint => (c.op === 'in' || c.op === 'not_in' ? { key: c.key, op: c.op, values: [...c.values!] } : { key: c.key, op: c.op }));
}

function nodeLabel(s: NodeLabelStrategy): NodeLabelStrategy {
  return { type: 'NODE_LABEL', hard: copySelector(validateLabelSelector(s.hard, 'hard')), soft: copySelector(validateLabelSelector(s.soft, 'soft')) };
}

function placementGroup(s: PlacementGroupStrategy): PlacementGroupStrategy {
  if (typeof s.placementGroupId !== 'string' || s.placementGroupId === '') {
    throw new UnknownStrategyError(s, 'PLACEMENT_GROUP needs a non-empty placementGroupId', 'placementGroupId');
  }
  const bundleIndex = s.bundleIndex ?? -1;
  if (!Number.isInteger(bundleIndex) || bundleIndex < -1) {
    throw new UnknownStrategyError(s, `bundleIndex must be -1 (any bundle) or a bundle index >= 0, got ${JSON.stringify(s.bundleIndex)}`, 'bundleIndex');
  }
  return { type: 'PLACEMENT_GROUP', placementGroupId: s.placementGroupId, bundleIndex, captureChildTasks: optionalBool(s, 'captureChildTasks') };
}
