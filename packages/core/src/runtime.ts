/**
 * The interface between the public API and the process it runs in: the driver (which hosts the node
 * runtime in-process) or a worker (which talks to its node over ZeroMQ).
 * @internal
 */
import type { ResourceRequest } from '@tsray/scheduler';
import type { SerializedValue } from './serialization.js';
import type { ResolvedScheduling } from './scheduling-strategy.js';

/** Where a remote function lives. */
export interface FunctionRef {
  moduleUrl: string;
  key: string;
  name: string;
  /** The project folder of the module on the submitting machine (see `code-root.ts`); absent: nothing to ship. */
  codeRoot?: string;
}

/** A task argument as submitted: a serialized value, or a top-level ref the task depends on. */
export type SubmitArg = { kind: 'value'; value: SerializedValue } | { kind: 'ref'; id: string };

/** A validated task, ready to hand to the node. */
export interface SubmitSpec {
  taskId: string;
  fn: FunctionRef;
  args: SubmitArg[];
  /** Resource amounts in fixed-point units (1e-4). */
  resources: Map<string, number>;
  /** The same resources as a request object, when the submitter has one (saves the node a parse). */
  request?: ResourceRequest;
  numReturns: number;
  streaming: boolean;
  maxRetries: number;
  retryExceptions: boolean | string[];
  returnIds: string[];
  name: string;
  /** Actor method call: the actor, its method, the concurrency group. */
  actorId?: string;
  method?: string;
  concurrencyGroup?: string;
  /** Actor creation task. */
  actorCreation?: ActorCreation;
  /** Scheduling strategy (undefined = DEFAULT). */
  scheduling?: ResolvedScheduling;
  /** The caller is not TypeScript: results are encoded as msgpack. */
  xlang?: boolean;
  /** Runtime environment (job merged with task level), canonical JSON; undefined = none. */
  runtimeEnv?: string;
  /** A direct actor call from another node: the calling node's sequence number for the actor (see ActorManager.pumpActor). */
  callerSeq?: number;
  /** The job that submitted it (set from the wire; a node fills in its submitter's job otherwise). */
  jobId?: string;
}

/** How to create an actor. */
export interface ActorCreation {
  actorId: string;
  className: string;
  methods: string[];
  name: string;
  namespace: string;
  detached: boolean;
  getIfExists: boolean;
  maxRestarts: number;
  maxTaskRetries: number;
  maxConcurrency: number;
  concurrencyGroups: { name: string; maxConcurrency: number; methods: string[] }[];
  /** Resources held while the actor lives (units). */
  hold: Map<string, number>;
  holdRequest?: ResourceRequest;
  isAsync: boolean;
  /** Extra fields of the actor's state-API row (`ActorOptions.stateInfo`). */
  stateInfo?: Record<string, string | number | boolean>;
}

/** What identifies an actor (for handles). */
export interface ActorInfoData {
  actorId: string;
  className: string;
  methods: readonly string[];
  module: string;
  key: string;
}

/** What the API needs from the process it runs in. */
export interface CoreRuntime {
  readonly kind: 'driver' | 'worker';
  readonly nodeId: string;
  readonly jobId: string;
  /** Hand a task to the node. Never throws for scheduling reasons: failures land in the return objects. */
  submitTask(spec: SubmitSpec): void;
  /** Store a serialized value under `id` (the caller made the id and holds a ref to it). */
  putObject(id: string, value: SerializedValue): void;
  /**
   * Like `putObject`, but reads `value.bytes` only until the promise resolves (no defensive copy: one
   * copy into shared memory instead of two). Optional: runtimes without it fall back to `putObject`.
   */
  putObjectOwned?(id: string, value: SerializedValue): Promise<void>;
  /** Values of the objects, in order; rejects with the task's error for failed objects. */
  getObjects(ids: string[], timeoutMs: number | undefined): Promise<unknown[]>;
  /**
   * Positions in `ids` of the first `numReturns` ready objects, in completion order, once that many are
   * ready or the timeout elapsed (then fewer). Rejects with a ValidationError when an id appears twice.
   */
  wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<number[]>;
  /** Cancel the task that produces `id`. */
  cancel(id: string, force: boolean): void;
  /** This process started holding `id` (first live ObjectRef). */
  refAdded(id: string): void;
  /** This process stopped holding `id` (last ObjectRef collected). */
  refRemoved(id: string): void;
  /** Create an actor; returns its id (another actor's with getIfExists). Throws ActorNameTakenError where it can tell at once. */
  createActor(spec: SubmitSpec): string;
  /** Look up a named actor. */
  getActor(name: string, namespace: string | undefined): Promise<ActorInfoData>;
  /** Kill an actor; rejects with ActorDiedError if it is already dead (where the runtime can tell). */
  killActor(actorId: string, noRestart: boolean): void;
  /** Reserve a placement group (creation is reported by sealing `<id>.ready`). */
  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean): void;
  /** Remove a placement group; throws if it was removed already (where the runtime can tell). */
  removePlacementGroup(id: string): void;
  /** Runtime context of the current task (workers) or the driver. */
  context(): RuntimeContext;
  /** Shut down (driver: the embedded cluster; worker: nothing). */
  shutdown(): Promise<void>;
}

/** Information about where the current code runs. */
export interface RuntimeContext {
  readonly nodeId: string;
  readonly jobId: string;
  /** Id of the task being executed (undefined in the driver). */
  readonly taskId: string | undefined;
  /** Name of the task being executed. */
  readonly taskName: string | undefined;
  /** Attempt number of the current task (0 for the first). */
  readonly attempt: number;
  /** GPU ids assigned to the current task or actor (strings, as in CUDA_VISIBLE_DEVICES). */
  readonly gpuIds: readonly string[];
  /** Aborted when the current task is cancelled (cooperative interruption of async code). */
  readonly signal: AbortSignal;
  /** Process id. */
  readonly pid: number;
  /** True in a worker process. */
  readonly isWorker: boolean;
  /** Id of the actor this process hosts, if any. */
  readonly actorId?: string;
  /** Placement group of the current task or actor, if any. */
  readonly placementGroupId?: string;
  /** @internal the current task's strategy when its children inherit it (captureChildTasks). */
  readonly capturedScheduling?: ResolvedScheduling;
}
