/**
 * The `schedulingStrategy` option of tasks and actors: `@tsray/scheduler`'s {@link CanonicalStrategy}
 * (the one type the node, the wire codec and the scheduler use), plus a placement group given by its
 * handle. {@link resolveScheduling} validates it at the API edge.
 * @module
 */
import {
  normalizeStrategy,
  type NormalizedStrategy,
  type PlacementGroupStrategy,
  ResourceValidationError,
  type SchedulingStrategy as CanonicalStrategy,
  UnknownStrategyError,
} from '@tsray/scheduler';
import { ValidationError } from './errors.js';
import type { PlacementGroup } from './placement-group.js';

/** PLACEMENT_GROUP with the group's handle instead of its id (as Ray's `placement_group=pg`). */
export interface PlacementGroupHandleStrategy extends Omit<PlacementGroupStrategy, 'placementGroupId'> {
  /** The group (from `placementGroup()`), or any `{ id }` of one. */
  readonly placementGroup: PlacementGroup | { id: string; bundles?: unknown[] };
}

/**
 * Where a task or actor may run (Ray's scheduling strategies): `'DEFAULT'`, `'SPREAD'`,
 * `{ type: 'NODE_AFFINITY', nodeId, soft? }`, `{ type: 'NODE_LABEL', hard?, soft? }` (label selectors:
 * arrays of `{ key, op: 'in' | 'not_in' | 'exists' | 'does_not_exist', values? }`; nodes get labels from
 * `tsray start --labels` or `init({ labels })`) or `{ type: 'PLACEMENT_GROUP', placementGroup, bundleIndex?,
 * captureChildTasks? }`.
 */
export type SchedulingStrategy = CanonicalStrategy | PlacementGroupHandleStrategy;

/** A validated strategy as tasks carry it (DEFAULT is `undefined`; not in the package barrel). */
export type ResolvedScheduling = Exclude<NormalizedStrategy, { type: 'DEFAULT' }>;

/**
 * Validate a `schedulingStrategy` option. Throws {@link ValidationError} whose `option` names the bad
 * field, e.g. `schedulingStrategy.hard[0]` or `schedulingStrategy.nodeId` (not in the package barrel).
 */
export function resolveScheduling(s: SchedulingStrategy | undefined, where: string): ResolvedScheduling | undefined {
  let canonical: unknown = s;
  let bundles: number | undefined;
  if (s !== null && typeof s === 'object' && s.type === 'PLACEMENT_GROUP' && 'placementGroup' in s) {
    const { placementGroup: pg, ...rest } = s;
    if (!pg || typeof pg.id !== 'string') throw new ValidationError('schedulingStrategy.placementGroup', `${where}: placementGroup must be a PlacementGroup`);
    if ('placementGroupId' in rest)
      throw new ValidationError('schedulingStrategy.placementGroupId', `${where}: give placementGroup or placementGroupId, not both`);
    canonical = { ...rest, placementGroupId: pg.id };
    bundles = Array.isArray(pg.bundles) ? pg.bundles.length : undefined;
  }
  let n: NormalizedStrategy;
  try {
    n = normalizeStrategy(canonical as CanonicalStrategy);
  } catch (e) {
    if (e instanceof UnknownStrategyError || e instanceof ResourceValidationError) {
      throw new ValidationError(e.option ? `schedulingStrategy.${e.option}` : 'schedulingStrategy', `${where}: ${e.message}`);
    }
    throw e;
  }
  if (n.type === 'DEFAULT') return undefined;
  if (n.type === 'PLACEMENT_GROUP' && bundles !== undefined && n.bundleIndex! >= bundles) {
    throw new ValidationError('schedulingStrategy.bundleIndex', `${where}: bundleIndex ${n.bundleIndex} is out of range (-1 = any, or 0..${bundles - 1})`);
  }
  return n;
}
