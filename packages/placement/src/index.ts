/**
 * @module @tsray/placement
 * Placement groups, pure part: validate bundles, plan bundle -> node (PACK, SPREAD, STRICT_PACK,
 * STRICT_SPREAD), and hold the resources atomically across node views (prepare, commit, rollback).
 * No runtime API, no I/O.
 */
export {
  PlacementError,
  EmptyBundleListError,
  InvalidBundleError,
  UnknownPlacementStrategyError,
  ReservationStateError,
  PlanMismatchError,
} from './errors.js';
export { PLACEMENT_STRATEGIES, validateBundles, validateStrategy, type BundleSpec, type PlacementStrategy } from './bundles.js';
export { planPlacement, type PlacementPlan } from './planner.js';
export { Reservation, reserve, type ReservationState, type PrepareResult, type ReserveResult } from './reservation.js';
