/**
 * @module @tsray/scheduler
 * Resources in fixed point, node resource views and scheduling policies: pure logic, no sockets, no
 * processes, no timers.
 */
export {
  RESOURCE_UNIT,
  toUnits,
  fromUnits,
  CPU,
  GPU,
  MEMORY,
  OBJECT_STORE_MEMORY,
  ACCELERATOR_TYPE_PREFIX,
} from './units.js';
export {
  SchedulerError,
  ResourceValidationError,
  SchedulingOptionError,
  UnknownStrategyError,
  DuplicateNodeError,
  UnknownNodeError,
  DoubleReleaseError,
  ForeignAllocationError,
} from './errors.js';
export { ResourceRequest, resourceRequestFromOptions, type ResourceOptions } from './resource-request.js';
export { NodeResources, type Allocation, type NodeSnapshot } from './node-resources.js';
export {
  NODE_ID_LABEL,
  labelIn,
  labelNotIn,
  labelExists,
  labelDoesNotExist,
  matchesLabels,
  validateLabelSelector,
  type LabelConstraint,
  type LabelOperator,
  type LabelSelector,
} from './labels.js';
export { ClusterView, type NodeEntry } from './cluster-view.js';
export { schedule, resolveScheduleOptions } from './schedule.js';
export { normalizeStrategy } from './strategy.js';
export type {
  SchedulingStrategy,
  NodeAffinityStrategy,
  NodeLabelStrategy,
  PlacementGroupStrategy,
  NormalizedStrategy,
  NodeSchedulingStrategy,
  ScheduleOptions,
  ScheduleDecision,
  ResolvedOptions,
} from './policy/types.js';
