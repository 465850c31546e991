/**
 * The node's records: tasks, resource pools, placement groups, actors, leases and connections
 * (workers, client drivers, peer nodes), shared by the node's components.
 * @internal
 */
import type { ResourceRequest, NodeResources, Allocation } from '@tsray/scheduler';
import type { PlacementStrategy, Reservation } from '@tsray/placement';
import type { Deque } from '../deque.js';
import type { ActorDeathInfo } from '../errors.js';
import type { ActorCreation, SubmitSpec } from '../runtime.js';
import type { EnvEntry } from './runtime-envs.js';
import type { ObjectEntry } from './object-table.js';
import type { WorkerProcess } from './worker-process.js';
import { TaskPipeline } from './task-pipeline.js';

export type TaskState = 'deps' | 'queued' | 'dispatched' | 'done';

export interface TaskRecord {
  spec: SubmitSpec;
  request: ResourceRequest;
  owner: WorkerHandle | undefined;
  state: TaskState;
  depsLeft: number;
  /** Ids this task holds (top-level ref args and refs nested in value args). */
  holds: string[];
  attempt: number;
  retriesLeft: number;
  worker: WorkerHandle | undefined;
  cancelled: { forced: boolean } | undefined;
  /** Generator items sealed so far (held by the task until it ends). */
  items: string[];
  startedAt: number;
  /** The worker of this node it was handed to, for its timeline event (cleared when recorded). */
  ranOn: WorkerHandle | undefined;
  /** Namespace of the submitter (for actors it creates and names it looks up). */
  namespace: string;
  /** The job it belongs to: it runs only on workers started for that job, and ends with it. */
  jobId: string;
  /** Creation task: the actor it creates. Method call: the actor it calls. */
  actor: ActorRecord | undefined;
  /** Where its resources come from: the node, or a placement group bundle. */
  pool: Pool | undefined;
  /** Its runtime environment, once built (held until the task is done). */
  env?: EnvEntry | undefined;
  /** Forwarded to this node (multi-node); its returns come back from there. */
  remote: string | undefined;
  /** Returns not back yet from the remote node. */
  remoteLeft: number;
}

/** A resource pool: the node itself, or one bundle of a placement group. */
export interface Pool {
  key: string;
  resources: NodeResources;
  pg: PgRecord | undefined;
  bundleIndex: number;
  /** Multi-node: the bundle is reserved on this other node (as bundle `remoteIndex` of its part). */
  remoteNode?: string;
  remoteIndex?: number;
}

/** A placement group on this node. */
export interface PgRecord {
  id: string;
  name: string;
  strategy: PlacementStrategy;
  bundles: ResourceRequest[];
  raw: Record<string, number>[];
  /** `rescheduling`: bundles were lost with their node and are being reserved again (then `created`). */
  state: 'pending' | 'created' | 'rescheduling' | 'removed';
  reservation: Reservation | undefined;
  pools: Pool[];
  /** Tasks and actors waiting for the group to be created. */
  waiting: TaskRecord[];
  detached: boolean;
  warned: boolean;
  /** One node's part of a group planned elsewhere: reserve now or fail (no cluster-wide planning). */
  noWait: boolean;
  /** Bundles reserved on other nodes, by node: their indices here, and that node's ready info. */
  remoteParts: Map<string, { indices: number[]; ready: { gpuIds: string[] }[] | undefined }> | undefined;
  /** Creation is waiting for the other nodes' parts. */
  preparing: boolean;
  /** Not planned again before this time (ms) after a part failed. */
  retryAt: number;
  /** The job that created it: a non-detached group is removed when that job ends. */
  jobId: string;
}

/** One actor's state on its node. */
export interface ActorRecord {
  id: string;
  creation: ActorCreation;
  /** The creation task's spec (re-run on restarts). */
  spec: SubmitSpec;
  schedule: ResourceRequest;
  hold: ResourceRequest;
  namespace: string;
  state: 'pending' | 'starting' | 'alive' | 'restarting' | 'dead';
  worker: WorkerHandle | undefined;
  allocation: Allocation | undefined;
  restartsLeft: number;
  /**
   * Restarts so far (undefined: none). Names each restart's creation task: `maxRestarts - restartsLeft`
   * stays 0 for an actor restarted forever (maxRestarts -1).
   */
  restarts?: number;
  pool: Pool | undefined;
  /** Method calls in submission order, not yet sent to the worker (some may wait for arguments). */
  calls: Deque<TaskRecord>;
  death: ActorDeathInfo | undefined;
  /** No handle is left: stop once the submitted calls are done. */
  terminating: boolean;
  /** kill() asked for no restart. */
  killed: boolean;
  /** Ids held for the constructor arguments (kept for restarts). */
  ctorHolds: string[];
  nameKey: string | undefined;
  /** Its runtime environment (held until the actor is dead; restarts reuse it). */
  env?: EnvEntry | undefined;
  /**
   * Multi-node: the node that runs it (an actor this node owns but placed elsewhere), or, for a
   * proxy, the node hosting it now as the GCS actor directory says (calls go straight there;
   * undefined while it is re-resolved after that node died).
   */
  remoteNode: string | undefined;
  /** A stand-in for an actor owned by another node (found by name or handle). */
  proxy: boolean;
  /** A proxy's owner node (it decides restarts; the actor dies with it). */
  ownerNode?: string;
  /** A proxy's cached directory version of the host (a host with this version or older is stale). */
  version?: number;
  /** A proxy: the last sequence number given to a call made on this node (see ActorManager.pumpActor). */
  lastCallerSeq?: number;
  /** Hosted here: the last sequence number run per calling node (peer connection id). */
  callerSeqs?: Map<string, number>;
  /** The job that created it: a non-detached actor dies when that job ends. */
  jobId: string;
}

export interface Lease {
  key: string;
  pool: Pool;
  request: ResourceRequest;
  /** Undefined while the worker is blocked in get/wait (its CPUs were given back) or ran unaccounted. */
  allocation: Allocation | undefined;
  /** GPU ids of the lease (kept while blocked). */
  gpuIds: readonly string[];
  worker: WorkerHandle;
}

export class WorkerHandle {
  readonly identity: Buffer;
  state: 'starting' | 'ready' | 'dead' = 'starting';
  /** Tasks sent and not finished, oldest first. */
  readonly pipeline = new TaskPipeline();
  unsent: TaskRecord[] = [];
  lease: Lease | undefined;
  heldRefs = new Set<string>();
  pins = new Map<string, number>();
  allocs = new Set<number>();
  idleSince = Date.now();
  lastResultAt = 0;
  /** The running task waits in get/wait: no new tasks go to this worker. */
  blocked = false;
  /** Objects subscribed by this worker, waiting to be sent. */
  readyOut: ObjectEntry[] = [];
  /** The actor this worker hosts. */
  actor: ActorRecord | undefined;
  /** The runtime environment it was started in (held while it lives; never reused for another). */
  env: EnvEntry | undefined;
  /**
   * Workers: the job they were started for (a worker runs only that job's tasks, so a new job never
   * sees modules an earlier job imported). Client drivers: their job.
   */
  jobId = '';
  /** Client drivers: namespace, pid (local ones are watched), and when they were last heard from. */
  namespace = '';
  pid = 0;
  lastSeen = Date.now();
  constructor(
    readonly id: string,
    /** The process (undefined for a client driver, which is not our child). */
    readonly proc: WorkerProcess | undefined,
    /** GPU ids and language: idle workers are reused only for the same set. */
    readonly gpuKey: string,
    readonly kind: 'worker' | 'driver' | 'peer' = 'worker',
  ) {
    this.identity = Buffer.from(id);
  }
  /** Cannot map this node's shared memory: objects go out in frames. */
  remote = false;
  /** RegisterWorker.language: 'python' processes get V8 objects as msgpack (python-view.ts). */
  language = '';
  /** A peer node: its node id. */
  peerNodeId = '';

  /** Kill the process (workers only). */
  kill(signal: NodeJS.Signals): void {
    this.proc?.proc.kill(signal);
  }
}

/** Counters of actor calls that crossed nodes here (the test of direct calls reads them). */
export interface ActorCallCounters {
  /** Calls that came from another node and were sent on to a third one (the owner relaying). */
  actorCallsRelayed: number;
  /** Calls made on this node sent straight to the node hosting the actor (not its owner). */
  actorCallsSentDirect: number;
  /** Calls from other nodes run by an actor hosted here. */
  actorCallsFromPeers: number;
  /** Calls from other nodes refused because their sequence number was not above the caller's last one. */
  actorCallsOutOfOrder: number;
}
