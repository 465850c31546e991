/**
 * Shapes shared by the head/node daemons, the CLI, the jobs manager and the HTTP API.
 * @module
 */

import type { EngineRow, TaskEvent, TaskFailure } from '@tsray/core/internal';
import type { AutoscalerStatus } from '@tsray/autoscaler';
import type { ActorListEntry, NodeState, ObjectListEntry, PendingDemand, PlacementGroupListEntry, TaskListEntry, WorkerListEntry } from '@tsray/core';

/** One node (the core state API's shape: `nodes()`). */
export type NodeInfo = NodeState;
/** One actor (the core state API's shape: `listActors()`). */
export type ActorState = ActorListEntry;
/** One live task (`listTasks()`). */
export type TaskState = TaskListEntry;
/** One stored object (`listObjects()`). */
export type ObjectState = ObjectListEntry;
/** One placement group (`listPlacementGroups()`). */
export type PlacementGroupState = PlacementGroupListEntry;
/** One finished task as a node reports it for `tsray timeline`. */
export type { TaskEvent };
/** One recent task failure with its error class, message and remote stack (the dashboard's tasks page). */
export type { TaskFailure };
/** One LLM engine (or data-parallel rank) and its load, as its actor last reported it. */
export type { EngineRow };
/** One worker process and the GPU ids it holds (`listWorkers()`). */
export type WorkerState = WorkerListEntry;
/** Demand waiting for resources (`pendingDemand()`). */
export type DemandState = PendingDemand;

/** Configuration handed to a daemon process (`node dist/daemon-main.js '<json>'`). */
export interface DaemonConfig {
  /** `head` runs the GCS, the jobs HTTP API and a node; `node` joins a head. */
  role: 'head' | 'node';
  /** Session directory of this machine's cluster processes (`<tmp>/tsray-<uid>/session-…`), logs under `logs/`. */
  sessionDir: string;
  /**
   * Cluster token (every connection proves it with an HMAC handshake; never sent in clear). `tsray
   * start` leaves it out: the configuration is the daemon's argv, which every local user can read in
   * /proc; the daemon reads `tokenFile` (0600) instead.
   */
  token?: string;
  /** The file holding the token (default `<sessionDir>/token`), read when `token` is not given. */
  tokenFile?: string;
  /** Head only: interface of the jobs HTTP API / dashboard (`--dashboard-host`, default 127.0.0.1); beyond loopback it speaks TLS only. */
  dashboardHost?: string;
  /** Head only: PEM certificate and key files of the HTTP API's TLS (default: a self-signed certificate made at start). */
  dashboardCert?: string;
  dashboardKey?: string;
  /** Head only: GCS port (default 6380; 0 = pick a free one). */
  port?: number;
  /** Head only: jobs HTTP API / dashboard port (default 8265; 0 = pick a free one). */
  dashboardPort?: number;
  /**
   * Head only: where the GCS keeps its tables (`--storage`): `redis://host:port[/db]`, or a file path
   * of the on-disk log. Default: `<sessionDir>/gcs/store.jsonl` (a head restarted in the same session
   * reloads it).
   */
  storage?: string;
  /** Host/interface to bind and advertise (head default 127.0.0.1; node default: the address of its route to the head). */
  host?: string;
  /** Node only: the head's GCS address `host:port`. */
  headAddress?: string;
  /**
   * Node only: the address other nodes reach this node on (`--node-ip-address`). Default: `host`, or
   * without `host` the local address of this machine's route to the head (as Ray detects it).
   */
  nodeIpAddress?: string;
  /** Node only: seconds without word from the head after which the node stops (default 60, or TSRAY_HEAD_LOST_TIMEOUT_S). */
  headLostTimeoutS?: number;
  numCpus?: number;
  numGpus?: number;
  /** Custom resources (`--resources '{"accel":2}'`). */
  resources?: Record<string, number>;
  /** Node labels (`--labels k=v,k2=v2`). */
  labels?: Record<string, string>;
  /** Object store size in bytes. */
  objectStoreMemory?: number;
  /** A node is declared dead at most this many seconds after its last heartbeat (default 3). */
  nodeDeathTimeoutS?: number;
  /**
   * Largest frame the GCS and the node accept, in bytes (default 256 MiB); a bigger one is answered
   * with an ErrorReply (ERROR_CODE_TOO_LARGE). Keep it above 8 MiB (objects travel between nodes in
   * 8 MiB chunks); it also caps a value a remote driver puts.
   */
  maxFrameBytes?: number;
  /** Head only: a cluster config (`tsray up`'s); the head runs its autoscaler. */
  autoscalingConfig?: string;
  /** The daemon writes {@link ReadyInfo} JSON here once it serves (or `{error}` if it failed to start). */
  readyFile: string;
}

/** What a daemon writes to its `readyFile` once it is up. */
export interface ReadyInfo {
  role: 'head' | 'node';
  nodeId: string;
  pid: number;
  /** GCS address `host:port` of the cluster. */
  gcsAddress: string;
  /** Head only: `http://host:port` of the jobs HTTP API. */
  dashboardUrl?: string;
  /** Head only: where the GCS keeps its tables (`redis://…` with no password, or `file:<path>`). */
  gcsStorage?: string;
  /** Head only: the cluster's id (kept in the GCS store: the same after a head restart). */
  clusterId?: string;
  /** Head with an https HTTP API: the SHA-256 fingerprint of its certificate (clients on this machine pin it). */
  dashboardFingerprint?: string;
  /** This node's local socket (drivers on this machine attach here). */
  nodeSocket: string;
  /** Optional (added by the CLI helper): this node's tcp address `host:port` that other nodes and drivers reach; `tsray start` prints it (else `nodeSocket`). */
  nodeAddress?: string;
  sessionDir: string;
  /** Set instead of the rest when the daemon could not start. */
  error?: string;
}

/** Job status, as Ray's `JobStatus`. */
export type JobStatus = 'PENDING' | 'RUNNING' | 'STOPPED' | 'SUCCEEDED' | 'FAILED';

/** One job (a submitted entrypoint, or a connected driver). */
export interface JobInfo {
  /** `tsraysubmit_<random>` for submitted jobs. */
  submissionId: string;
  entrypoint: string;
  status: JobStatus;
  message: string;
  /** ms since epoch. */
  startTime?: number;
  endTime?: number;
  exitCode?: number | null;
  metadata: Record<string, string>;
  runtimeEnv?: Record<string, unknown>;
  driverPid?: number;
}

/** Everything `tsray status` prints. */
export interface ClusterStatus {
  nodes: NodeInfo[];
  pendingDemand: DemandState[];
  placementGroups: PlacementGroupState[];
  /** The head's autoscaler (a head started by `tsray up`): launching and idle nodes, decisions, failures. */
  autoscaler?: AutoscalerStatus;
}

/** What the head's HTTP API and CLI read cluster state from (implemented by the head daemon). */
export interface StateProvider {
  status(): Promise<ClusterStatus>;
  nodes(): Promise<NodeInfo[]>;
  actors(): Promise<ActorState[]>;
  tasks(): Promise<TaskState[]>;
  objects(): Promise<ObjectState[]>;
  placementGroups(): Promise<PlacementGroupState[]>;
  /** Every node's recent finished tasks (`tsray timeline`); absent: none kept. */
  timeline?(): Promise<TaskEvent[]>;
  /** Every node's worker processes with their GPU ids; absent: not known. */
  workers?(): Promise<WorkerState[]>;
  /** Every node's recent task failures (at most 200 per node); absent: none kept. */
  taskFailures?(): Promise<TaskFailure[]>;
  /** The LLM engines that reported their load in the last 10 s; absent: none known. */
  engines?(): Promise<EngineRow[]>;
}
