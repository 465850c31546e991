/**
 * Typed errors of `@tsray/scheduler`. One class per condition; every message says what happened and
 * where to look.
 */

/** Base class of every error thrown by `@tsray/scheduler`. */
export class SchedulerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A resource option or amount is invalid (NaN, negative, non-finite, not a number, a fractional GPU
 * amount above 1, a reserved or empty resource name...). `option` names the offending option, e.g.
 * `numCpus` or `resources.my_res`.
 */
export class ResourceValidationError extends SchedulerError {
  /** The option that is invalid, e.g. `numCpus`, `resources.custom`, `total.GPU`. */
  readonly option: string;
  constructor(option: string, message: string) {
    super(message);
    this.option = option;
  }
}

/**
 * A scheduling strategy is not one of DEFAULT, SPREAD, NODE_AFFINITY, NODE_LABEL, PLACEMENT_GROUP (or
 * one of its fields is malformed: `option` names it).
 */
export class UnknownStrategyError extends SchedulerError {
  /** The strategy as given, for the log. */
  readonly strategy: unknown;
  /** The malformed field of the strategy, e.g. `nodeId`; `''` when the strategy itself is unknown. */
  readonly option: string;
  constructor(strategy: unknown, detail?: string, option = '') {
    super(
      `unknown scheduling strategy ${safeString(strategy)}${detail ? `: ${detail}` : ''}; ` +
        `expected 'DEFAULT', 'SPREAD', {type: 'NODE_AFFINITY', nodeId, soft}, {type: 'NODE_LABEL', hard, soft} ` +
        `or {type: 'PLACEMENT_GROUP', placementGroupId, bundleIndex, captureChildTasks}`,
    );
    this.strategy = strategy;
    this.option = option;
  }
}

/** A node id was added twice to a {@link ClusterView}. */
export class DuplicateNodeError extends SchedulerError {
  /** The node id. */
  readonly nodeId: string;
  constructor(nodeId: string) {
    super(`node ${nodeId} is already in the cluster view; remove it first`);
    this.nodeId = nodeId;
  }
}

/** A node id is not in the {@link ClusterView}. */
export class UnknownNodeError extends SchedulerError {
  /** The node id. */
  readonly nodeId: string;
  constructor(nodeId: string) {
    super(`node ${nodeId} is not in the cluster view`);
    this.nodeId = nodeId;
  }
}

/** An allocation was released twice: a bookkeeping bug in the caller (look for two release paths). */
export class DoubleReleaseError extends SchedulerError {
  constructor() {
    super('allocation released twice: each Allocation must be released exactly once');
  }
}

/** An allocation was released on a node that did not make it (or is not an Allocation at all). */
export class ForeignAllocationError extends SchedulerError {
  constructor() {
    super('allocation was not made by this NodeResources: release it on the node that allocated it');
  }
}

function safeString(x: unknown): string {
  try {
    return typeof x === 'string' ? `'${x}'` : (JSON.stringify(x) ?? String(x));
  } catch {
    return String(x);
  }
}

/** A scheduling option (spreadThreshold, topKFraction, rng...) is out of range or of the wrong type. */
export class SchedulingOptionError extends SchedulerError {
  /** The option, e.g. `spreadThreshold`. */
  readonly option: string;
  constructor(option: string, message: string) {
    super(message);
    this.option = option;
  }
}
