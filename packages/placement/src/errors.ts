/** Typed errors of `@tsray/placement`. One class per condition. */

/** Base class of every error thrown by `@tsray/placement`. */
export class PlacementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The bundle list is not a non-empty array. */
export class EmptyBundleListError extends PlacementError {
  constructor(got: string) {
    super(`a placement group needs a non-empty array of bundles, got ${got}`);
  }
}

/** A bundle asks for nothing (empty, or only zero amounts): Ray rejects such bundles too. */
export class InvalidBundleError extends PlacementError {
  /** Index of the bad bundle. */
  readonly bundleIndex: number;
  constructor(bundleIndex: number, message: string) {
    super(message);
    this.bundleIndex = bundleIndex;
  }
}

/** The strategy is not PACK, SPREAD, STRICT_PACK or STRICT_SPREAD. */
export class UnknownPlacementStrategyError extends PlacementError {
  /** The strategy as given. */
  readonly strategy: unknown;
  constructor(strategy: unknown) {
    super(
      `unknown placement strategy ${typeof strategy === 'string' ? `'${strategy}'` : String(strategy)}; expected 'PACK', 'SPREAD', 'STRICT_PACK' or 'STRICT_SPREAD'`,
    );
    this.strategy = strategy;
  }
}

/** A reservation operation was called in the wrong state (commit after rollback, release twice...). */
export class ReservationStateError extends PlacementError {
  /** State the reservation was in. */
  readonly state: string;
  constructor(op: string, state: string) {
    super(`cannot ${op} a reservation that is ${state}`);
    this.state = state;
  }
}

/** A plan does not fit the bundles it is applied to (wrong length or unknown node). */
export class PlanMismatchError extends PlacementError {
  constructor(message: string) {
    super(message);
  }
}
