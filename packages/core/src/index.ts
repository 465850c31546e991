/**
 * @module @tsray/core
 * Ray's programming model in TypeScript: remote functions (tasks) returning typed ObjectRefs, the
 * object store (`put`/`get`/`wait`), cancellation, and the embedded local cluster (`init`).
 *
 * @example
 * import { init, remote, get, shutdown, isMain } from '@tsray/core';
 * export const square = remote((x: number) => x * x);
 * if (isMain(import.meta)) {
 *   await init();
 *   console.log(await get(square.remote(4))); // 16
 *   await shutdown();
 * }
 */
export { init, shutdown, clusterInfo } from './init.js';
export type { InitOptions, ClusterInfo } from './init.js';
export { remote, isMain, ObjectRefGenerator } from './remote-function.js';
export type { RemoteFunction, RemoteResult, RemoteArg, RemoteArgs } from './remote-function.js';
export { put, putAsync, get, wait, cancel, getRuntimeContext, isWorker } from './api.js';
export type { GetOptions, WaitOptions, CancelOptions, RefValues } from './api.js';
export { ObjectRef } from './object-ref.js';
export { actor, getActor, kill, actorInfo, isActorHandle, ACTOR_INFO } from './actor.js';
export type { ActorClass, ActorHandle, ActorMethod, ActorOptions, ActorMethodOptions, ActorInfo, GetActorOptions, KillOptions } from './actor.js';
export type { TaskOptions } from './options.js';
export { placementGroup, removePlacementGroup, PlacementGroup } from './placement-group.js';
export { python } from './python.js';
export type { PythonActorClass } from './python.js';
export { NDArray } from './xlang.js';
export type { PlacementGroupOptions, PlacementGroupInfo } from './placement-group.js';
export type { SchedulingStrategy, PlacementGroupHandleStrategy } from './scheduling-strategy.js';
export { labelIn, labelNotIn, labelExists, labelDoesNotExist } from '@tsray/scheduler';
export type { LabelConstraint, LabelOperator, LabelSelector, NodeAffinityStrategy, NodeLabelStrategy, PlacementGroupStrategy } from '@tsray/scheduler';
export { requestResources, type RequestResourcesOptions } from './request-resources.js';
export { clusterResources, availableResources, pendingDemand, nodes, listActors, listTasks, listObjects, listPlacementGroups, listJobs } from './state-api.js';
export type { PendingDemand, NodeState, ActorListEntry, TaskListEntry, ObjectListEntry, PlacementGroupListEntry, JobListEntry } from './state-api.js';
export { listWorkers, nodeCounters } from './state-api.js';
export type { NodeCounters } from './state-api.js';
export { listTransferStats, type TransferStatsEntry } from './state-api.js';
export type { WorkerListEntry, GpuId } from './state-api.js';
export { Counter, Gauge, Histogram, type MetricOptions } from './metrics.js';
export type { RuntimeContext } from './runtime.js';
export {
  TsrayError,
  TaskError,
  WorkerCrashedError,
  GetTimeoutError,
  TaskCancelledError,
  ObjectStoreFullError,
  ObjectLostError,
  SerializationError,
  ValidationError,
  RuntimeStateError,
  DriverCodeInWorkerError,
  FunctionNotFoundError,
  ActorDiedError,
  ActorUnavailableError,
  ActorNotFoundError,
  ActorNameTakenError,
  ActorMethodNotFoundError,
  ConnectionError,
  GcsUnavailableError,
  AuthenticationError,
  PlacementGroupError,
  SocketPathTooLongError,
  UnsafeRuntimeDirError,
  ConfigError,
  registerErrorClass,
} from './errors.js';
export type { RemoteErrorInfo, ActorDeathInfo } from './errors.js';
export type { ErrorClass } from './remote-error-class.js';
export { RuntimeEnvSetupError, RuntimeEnvValidationError } from '@tsray/runtime-env';
export type { RuntimeEnv, PipSpec, RuntimeEnvConfig } from '@tsray/runtime-env';
