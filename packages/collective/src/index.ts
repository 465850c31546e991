/**
 * `@tsray/collective`: collectives between actor ranks (TypeScript and Python, mixed) through the
 * object store, as Ray's `ray.util.collective`: `createGroup(actors, { name })` in the driver or
 * `initCollectiveGroup(worldSize, rank, name)` in each rank, then `allreduce`, `allgather`,
 * `reducescatter`, `broadcast`, `barrier` in every rank. A rank that dies fails the collective on every
 * rank with `CollectiveRankDiedError`. CPU arrays only (GPU tensors: use torch.distributed NCCL).
 * @module
 */
export { createGroup, destroyGroup, initCollectiveGroup, COLLECTIVE_NAMESPACE, coordinatorName, GROUP_WAIT_MS, collectiveTestHooks } from './group.js';
export type { CollectiveGroup, CreateGroupOptions } from './group.js';
export { allreduce, allgather, reducescatter, broadcast, barrier, getRank, getWorldSize, groupTransport, ringLane, SMALL_BYTES } from './ops.js';
export type { CollectiveOptions, ReduceOptions, BroadcastOptions } from './ops.js';
export { chunkBounds } from './dtypes.js';
export type { Dtype, ReduceOp, NumericArray } from './dtypes.js';
export { CollectiveError, CollectiveGroupNotFoundError, CollectiveRankDiedError, CollectiveTimeoutError, CollectiveUsageError } from './errors.js';
export { CollectiveCoordinator, RemoteCollectiveCoordinator } from './coordinator.js';
export type { RankIdentity, RoundRequest, Joined, Reply } from './coordinator.js';
