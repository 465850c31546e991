/**
 * Fixed-point resource amounts, as Ray's `FixedPoint` (`ray:src/ray/common/scheduling/fixed_point.h`).
 *
 * Every amount is stored as an integer number of units, {@link RESOURCE_UNIT} units per 1.0, so that
 * 0.1 + 0.2 adds up to exactly 0.3. Integers are exact in a JS number up to 2^53 units (about 9e11 in
 * float terms); amounts that are whole multiples of 1.0 (memory in bytes) stay exact up to about 1.4e13
 * because 10,000 is a multiple of 16.
 */

/** Fixed-point units per 1.0 of a resource (1e-4 granularity, as Ray). */
export const RESOURCE_UNIT = 10_000;

/**
 * Converts a float amount to fixed-point units (`Math.round(x * 1e4)`).
 * Amounts below 0.5e-4 round to 0. The caller validates the input (see {@link resourceRequestFromOptions}).
 */
export function toUnits(x: number): number {
  return Math.round(x * RESOURCE_UNIT);
}

/** Converts fixed-point units back to a float amount. */
export function fromUnits(u: number): number {
  return u / RESOURCE_UNIT;
}

/** The resource name of CPUs. */
export const CPU = 'CPU';
/** The resource name of GPUs (a unit-instance resource: every GPU has an id). */
export const GPU = 'GPU';
/** The resource name of (logical) heap memory, in bytes. */
export const MEMORY = 'memory';
/** The resource name of object store memory, in bytes. */
export const OBJECT_STORE_MEMORY = 'object_store_memory';
/** Prefix of the accelerator-type resource (`accelerator_type:A100`), of which a request takes 0.001. */
export const ACCELERATOR_TYPE_PREFIX = 'accelerator_type:';
