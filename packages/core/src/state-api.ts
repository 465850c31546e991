/**
 * State API: cluster resources, what is free, pending demand, and the cluster's nodes, actors, tasks,
 * objects, placement groups and jobs. Every call is async: it is answered by a node, which for a client
 * driver is in another process.
 * @module
 */
import { RuntimeStateError } from './errors.js';
import { state } from './state.js';

/** Work waiting for resources: a task or actor shape, how many, and why. */
export interface PendingDemand {
  kind: 'task' | 'actor' | 'placement_group';
  name: string;
  resources: Record<string, number> | Record<string, number>[];
  count: number;
  /** True when no node can ever provide it (the missing resources are named). */
  infeasible: boolean;
  missing: string[];
}

interface StateCaller {
  stateCall(method: string): Promise<unknown>;
}

/**
 * The runtime that answers state calls: the embedded node itself, or the node a client driver (or a
 * worker) is attached to, over its socket. Every state API function is async for that reason: in a
 * client driver the data is remote (as in Ray's client mode).
 */
function caller(what: string): StateCaller {
  const rt = state().runtime as unknown as Partial<StateCaller> | undefined;
  if (!rt || typeof rt.stateCall !== 'function') throw new RuntimeStateError(`${what} needs a running tsray (call init() first)`);
  return rt as StateCaller;
}

/** Total resources of the cluster's alive nodes (as Ray's `cluster_resources()`). Works in every driver, task and actor. */
export async function clusterResources(): Promise<Record<string, number>> {
  return (await caller('clusterResources()').stateCall('cluster_resources')) as Record<string, number>;
}

/** Resources of the cluster's alive nodes free now (as Ray's `available_resources()`). Works in every driver, task and actor. */
export async function availableResources(): Promise<Record<string, number>> {
  return (await caller('availableResources()').stateCall('available_resources')) as Record<string, number>;
}

/** Tasks, actors and placement groups waiting for resources on the cluster's nodes, infeasible ones named. */
export async function pendingDemand(): Promise<PendingDemand[]> {
  return (await caller('pendingDemand()').stateCall('pending_demand')) as PendingDemand[];
}

/** One node of the cluster (as Ray's `ray.nodes()` entries). */
export interface NodeState {
  nodeId: string;
  alive: boolean;
  isHead: boolean;
  address: string;
  hostname: string;
  pid: number;
  resourcesTotal: Record<string, number>;
  resourcesAvailable: Record<string, number>;
  labels: Record<string, string>;
  /** ms since epoch. */
  startTime: number;
  deathReason?: string;
}

/**
 * A GPU id as the state API shows it: a number (as Ray's `get_gpu_ids()`), or the string of an id that
 * is not a decimal number (a GPU UUID taken from CUDA_VISIBLE_DEVICES).
 */
export type GpuId = number | string;

/** One actor (as Ray's `list_actors()`). */
export interface ActorListEntry {
  actorId: string;
  className: string;
  name: string;
  namespace: string;
  state: 'PENDING' | 'STARTING' | 'ALIVE' | 'RESTARTING' | 'DEAD';
  /** The node running it. */
  nodeId: string;
  pid: number;
  numRestarts: number;
  detached: boolean;
  deathCause?: string;
  /**
   * GPU ids the actor holds (its process's CUDA_VISIBLE_DEVICES); empty without GPUs or while not
   * placed. Always set by the state API (optional for rows built elsewhere).
   */
  gpuIds?: GpuId[];
  /**
   * An LLM engine actor: the GPUs it shards its model over (tensor-parallel size): from its creation
   * (`ActorOptions.stateInfo`, set by `@tsray/vllm-bridge`), then from the stats it reports.
   */
  tensorParallelSize?: number;
  /** Other fields its creator set through `ActorOptions.stateInfo`. */
  [field: string]: unknown;
}

/** One worker process of a node and the GPU ids it holds (`listWorkers()`). */
export interface WorkerListEntry {
  workerId: string;
  pid: number;
  nodeId: string;
  /** ACTOR: hosts an actor; LEASED: runs tasks; IDLE: kept for reuse. */
  state: 'ACTOR' | 'LEASED' | 'IDLE';
  /** GPU ids of its lease, or of its actor. */
  gpuIds: GpuId[];
  actorId?: string;
}

/** One task not finished yet (as Ray's `list_tasks()`, live tasks only). */
export interface TaskListEntry {
  taskId: string;
  name: string;
  state: 'PENDING' | 'RUNNING';
  nodeId: string;
  actorId?: string;
}

/** One object in a node's store (as Ray's `list_objects()`). */
export interface ObjectListEntry {
  objectId: string;
  sizeBytes: number;
  nodeId: string;
  location: 'inline' | 'shm' | 'spilled';
}

/** One placement group (as Ray's `list_placement_groups()`). */
export interface PlacementGroupListEntry {
  placementGroupId: string;
  name: string;
  strategy: string;
  /** RESCHEDULING: bundles were lost with their node and are being reserved again on others. */
  state: 'PENDING' | 'CREATED' | 'RESCHEDULING' | 'REMOVED';
  bundles: Record<string, number>[];
  bundleNodes: string[];
  /** GPU ids reserved for each bundle on its node (parallel to `bundles`; empty while pending). Always set by the state API. */
  bundleGpuIds?: GpuId[][];
}

/** One job of the cluster (submitted with `tsray job submit` or the jobs HTTP API). */
export interface JobListEntry {
  submissionId: string;
  entrypoint: string;
  status: 'PENDING' | 'RUNNING' | 'STOPPED' | 'SUCCEEDED' | 'FAILED';
  message: string;
  startTime?: number;
  endTime?: number;
}

/** The cluster's nodes, alive and dead (Ray's `ray.nodes()`). Works in drivers, tasks and actors. */
export async function nodes(): Promise<NodeState[]> {
  return (await caller('nodes()').stateCall('nodes')) as NodeState[];
}

/** Actors of the cluster. */
export async function listActors(): Promise<ActorListEntry[]> {
  return (await caller('listActors()').stateCall('actors')) as ActorListEntry[];
}

/** Tasks waiting or running anywhere in the cluster (at most 10,000 per node). */
export async function listTasks(): Promise<TaskListEntry[]> {
  return (await caller('listTasks()').stateCall('tasks')) as TaskListEntry[];
}

/** Objects stored on the cluster's nodes (at most 10,000 per node). */
export async function listObjects(): Promise<ObjectListEntry[]> {
  return (await caller('listObjects()').stateCall('objects')) as ObjectListEntry[];
}

/** Placement groups of the cluster. */
export async function listPlacementGroups(): Promise<PlacementGroupListEntry[]> {
  return (await caller('listPlacementGroups()').stateCall('placement_groups')) as PlacementGroupListEntry[];
}

/** Worker processes of the cluster's nodes, with the GPU ids each holds. */
export async function listWorkers(): Promise<WorkerListEntry[]> {
  return (await caller('listWorkers()').stateCall('workers')) as WorkerListEntry[];
}

/** One node's counters of actor calls that crossed nodes (`nodeCounters()`). */
export interface NodeCounters {
  nodeId: string;
  /** Calls this node received from another node and sent on to a third one (an owner relaying). */
  actorCallsRelayed: number;
  /** Calls made on this node and sent straight to the node hosting the actor (not through its owner). */
  actorCallsSentDirect: number;
  /** Calls from other nodes run by actors hosted on this node. */
  actorCallsFromPeers: number;
  /** Calls from other nodes refused here as out of order (their caller's sequence number went back). */
  actorCallsOutOfOrder: number;
}

/** Every node's counters of actor calls across nodes (each node's since it started). */
export async function nodeCounters(): Promise<NodeCounters[]> {
  return (await caller('nodeCounters()').stateCall('node_counters')) as NodeCounters[];
}

/** Object movement counters of one node (`listTransferStats()`). */
export interface TransferStatsEntry {
  nodeId: string;
  /** Payload bytes sent to / received from each peer node, by node id. */
  sent: Record<string, number>;
  received: Record<string, number>;
  /**
   * Pulls of this node: bytes in flight now and their high-water mark, the bound, counts; chunks that
   * came on the data plane, the holders it has a ready data-plane session with, and how many of those
   * sessions seal their chunks (the others are on one host's loopback: `TSRAY_SEAL_LOOPBACK`).
   */
  pulls: {
    bytesInFlight: number;
    maxBytesInFlight: number;
    boundBytes: number;
    pullsStarted: number;
    pullsDone: number;
    failovers: number;
    active: number;
    dataPlaneChunksIn: number;
    dataPlanePeers: number;
    dataPlaneSealedPeers: number;
  };
  /**
   * Chunks this node served to pulling nodes (all, and those on the data plane), connections its data
   * port closed (no valid hello, a frame that does not open), and its data-plane sessions.
   */
  served: { chunksServed: number; pausedRequests: number; dataPlaneChunks: number; dataPlaneDropped: number; dataPlaneSessions: number };
  /** Objects this node knows only by their holders on other nodes (it pulls them when needed). */
  located: number;
  /** Finished tasks kept to rebuild returns that live only on other nodes, and rebuilds started (lineage reconstruction). */
  lineage: { kept: number; rebuilds: number };
}

/** Object movement counters of every node: bytes per peer node and pull gauges (how objects travelled). */
export async function listTransferStats(): Promise<TransferStatsEntry[]> {
  return (await caller('listTransferStats()').stateCall('transfer')) as TransferStatsEntry[];
}

/** Jobs of the cluster (empty for an embedded cluster). */
export async function listJobs(): Promise<JobListEntry[]> {
  return (await caller('listJobs()').stateCall('jobs')) as JobListEntry[];
}
