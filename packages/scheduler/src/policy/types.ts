import type { LabelSelector } from '../labels.js';

/** Ray's NodeAffinitySchedulingStrategy. */
export interface NodeAffinityStrategy {
  readonly type: 'NODE_AFFINITY';
  /** Target node id. */
  readonly nodeId: string;
  /** Soft: fall back to the DEFAULT policy when the target is dead or can never hold the request (default false). */
  readonly soft?: boolean;
  /** With `soft`: also fall back when the target is alive but busy (Ray's `_spill_on_unavailable`). */
  readonly spillOnUnavailable?: boolean;
  /** Fail (infeasible) instead of waiting when the target is alive but busy (Ray's `_fail_on_unavailable`). */
  readonly failOnUnavailable?: boolean;
}

/** Ray's NodeLabelSchedulingStrategy: `hard` must match, `soft` is preferred. */
export interface NodeLabelStrategy {
  readonly type: 'NODE_LABEL';
  /** Constraints every chosen node must satisfy. */
  readonly hard?: LabelSelector;
  /** Constraints preferred among the nodes that satisfy `hard`. */
  readonly soft?: LabelSelector;
}

/**
 * Ray's PlacementGroupSchedulingStrategy: run in a bundle of a placement group. The group's
 * reservation (`@tsray/placement`) decides the node, not {@link schedule}.
 */
export interface PlacementGroupStrategy {
  readonly type: 'PLACEMENT_GROUP';
  /** Id of the placement group. */
  readonly placementGroupId: string;
  /** Bundle to use; -1 (default) = any bundle with room. */
  readonly bundleIndex?: number;
  /** Tasks and actors started from this one are placed in the group too (default false). */
  readonly captureChildTasks?: boolean;
}

/**
 * A scheduling strategy: Ray's DEFAULT (hybrid), SPREAD, node affinity, node labels or a placement
 * group. One type from the user API (`options({ schedulingStrategy })`) through the node and the wire
 * (`tsray.v1.SchedulingStrategy`) to {@link schedule}; {@link normalizeStrategy} validates it.
 */
export type SchedulingStrategy =
  | 'DEFAULT'
  | 'SPREAD'
  | { readonly type: 'DEFAULT' }
  | { readonly type: 'SPREAD' }
  | NodeAffinityStrategy
  | NodeLabelStrategy
  | PlacementGroupStrategy;

/** A validated strategy in object form (what {@link normalizeStrategy} returns). */
export type NormalizedStrategy = Exclude<SchedulingStrategy, string>;

/** The strategies {@link schedule} decides by itself (a placement group's reservation places the rest). */
export type NodeSchedulingStrategy = Exclude<SchedulingStrategy, PlacementGroupStrategy>;

/** Options of {@link schedule}; defaults are Ray's (`ray_config_def.h`). */
export interface ScheduleOptions {
  /** The node the request comes from (Ray's preferred node): DEFAULT picks it when it is among the best. */
  readonly localNodeId?: string;
  /** Uniform random numbers in [0, 1); default `Math.random`. Inject a seeded one for reproducible runs. */
  readonly rng?: () => number;
  /** Utilization below this counts as 0 (`scheduler_spread_threshold`, default 0.5). */
  readonly spreadThreshold?: number;
  /** Pick among the best `max(topKAbsolute, floor(nodes * topKFraction))` nodes (default 0.2). */
  readonly topKFraction?: number;
  /** Lower bound of k (`scheduler_top_k_absolute`, default 1). */
  readonly topKAbsolute?: number;
  /** Keep requests without GPUs off GPU nodes while a node without GPUs can run them now (default true). */
  readonly avoidGpuNodes?: boolean;
  /**
   * Score nodes by their utilization after placing the request (default true, as the tsray issue asks);
   * false scores the current utilization, as Ray 2.x does.
   */
  readonly scoreAfterPlacement?: boolean;
  /**
   * SPREAD: nodes that hold queued work the view does not show yet (tasks accepted but not started). The
   * first pass (a node that can run the request now) skips them; they stay candidates of the second pass
   * (feasible nodes), so queued work still goes round robin over every feasible node.
   */
  readonly queuedNodes?: ReadonlySet<string>;
  /**
   * SPREAD: pick only among nodes that can run the request now (spilling queued work to idle nodes).
   * When none can, the answer is `wait` (or `infeasible`) and the round robin does not move, so retrying
   * does not skew the share of later requests.
   */
  readonly availableOnly?: boolean;
}

/**
 * A scheduling decision.
 * - `node`: run on `nodeId` now (it can fit the request; allocate there).
 * - `wait`: some alive node can hold the request but none can now. `nodeId` is the feasible-but-busy
 *   node the policy would queue on (Ray's DEFAULT picks one by the same scoring; hard affinity waits on
 *   its target). The caller may queue there or retry the decision later.
 * - `infeasible`: no alive node can ever hold it (or none matches the hard constraints). `missing`
 *   lists resources no alive node has enough of in total (if every resource exists somewhere but no single
 *   node has them all, the union of what each node lacks); `reason` says why in words.
 */
export type ScheduleDecision =
  | { readonly kind: 'node'; readonly nodeId: string }
  | { readonly kind: 'wait'; readonly nodeId: string }
  | { readonly kind: 'infeasible'; readonly missing: string[]; readonly reason: string };

/** @internal Options with defaults applied. */
export interface ResolvedOptions {
  readonly localNodeId: string | undefined;
  readonly rng: () => number;
  readonly spreadThreshold: number;
  readonly topKFraction: number;
  readonly topKAbsolute: number;
  readonly avoidGpuNodes: boolean;
  readonly scoreAfterPlacement: boolean;
  readonly queuedNodes: ReadonlySet<string> | undefined;
  readonly availableOnly: boolean;
}
