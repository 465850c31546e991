/**
 * The errors a collective raises on a rank. A collective fails on every rank together: when one rank
 * dies, the others get {@link CollectiveRankDiedError} naming it instead of waiting forever.
 * @module
 */
import { TsrayError } from '@tsray/core';

/** Base class of the errors of `@tsray/collective`. `group` names the group. */
export class CollectiveError extends TsrayError {
  override name = 'CollectiveError';
  constructor(
    readonly group: string,
    message: string,
  ) {
    super(`collective group '${group}': ${message}`);
  }
}

/**
 * A rank of the group died (its process exited, or its actor was killed or is restarting) while the
 * group was in a collective, or before it. Every rank waiting in that collective, and every later call
 * on the group, gets this error until all ranks join again (see the package README: re-forming a group).
 */
export class CollectiveRankDiedError extends CollectiveError {
  override name = 'CollectiveRankDiedError';
  constructor(
    group: string,
    /** The rank that died. */
    readonly rank: number,
    /** What the cluster said about it (actor state, death cause). */
    readonly detail: string,
  ) {
    super(group, `rank ${rank} died (${detail}); the collective was aborted on every rank`);
  }
}

/** The collective did not complete within the `timeoutMs` the call gave (some rank never called it). */
export class CollectiveTimeoutError extends CollectiveError {
  override name = 'CollectiveTimeoutError';
  constructor(
    group: string,
    /** Ranks that had not called the collective when the time ran out. */
    readonly missingRanks: readonly number[],
    timeoutMs: number,
  ) {
    super(group, `collective timed out after ${timeoutMs} ms waiting for rank(s) ${missingRanks.join(', ')}`);
  }
}

/** A call that cannot work as given: wrong rank, mismatched sizes or types between ranks, unknown op. */
export class CollectiveUsageError extends CollectiveError {
  override name = 'CollectiveUsageError';
}

/**
 * The group does not exist: no coordinator was found for it within the wait (`createGroup()` or
 * `initCollectiveGroup()` was not called, or the group was destroyed). A `CollectiveUsageError`.
 */
export class CollectiveGroupNotFoundError extends CollectiveUsageError {
  override name = 'CollectiveGroupNotFoundError';
  constructor(
    group: string,
    /** How long the rank waited for the group to appear. */
    readonly waitedMs: number,
  ) {
    super(group, `no such group (waited ${waitedMs} ms for it): create it with createGroup() or initCollectiveGroup() first`);
  }
}

/** The failure a coordinator reply carries (plain data, so it crosses to Python ranks too). */
export interface FailureInfo {
  kind: 'rank_died' | 'timeout' | 'usage';
  message: string;
  rank?: number;
  missing?: number[];
  timeoutMs?: number;
}

/** The typed error for a failure reply. */
export function errorFromFailure(group: string, f: FailureInfo): CollectiveError {
  if (f.kind === 'rank_died') return new CollectiveRankDiedError(group, f.rank ?? -1, f.message);
  if (f.kind === 'timeout') return new CollectiveTimeoutError(group, f.missing ?? [], f.timeoutMs ?? 0);
  return new CollectiveUsageError(group, f.message);
}
