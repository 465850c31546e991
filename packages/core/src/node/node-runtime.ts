/**
 * The node runtime ("raylet"): task manager, worker pool, object table and store of one node. In an
 * embedded cluster it lives in the driver process and implements the driver's CoreRuntime directly.
 * @internal
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { ClusterView, NodeResources, ResourceRequest, type Allocation } from '@tsray/scheduler';
import { reserve, validateBundles, validateStrategy, type PlacementStrategy, type Reservation } from '@tsray/placement';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody } from '@tsray/protocol';
import { encodeErrorPayload, errorFromPayload, type ErrorPayload } from '../error-payload.js';
import { ActorDiedError, ActorNameTakenError, ActorNotFoundError, GetTimeoutError, PlacementGroupError, RuntimeStateError, ObjectStoreFullError, type ActorDeathInfo } from '../errors.js';
import { gcFunction } from '../gc.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import type { ActorCreation, ActorInfoData, CoreRuntime, RuntimeContext, SchedulingSpec, SubmitArg, SubmitSpec } from '../runtime.js';
import type { PendingDemand } from '../state-api.js';
import { serialize } from '../serialization.js';
import { deserialize, type SerializedValue } from '../serialization.js';
import { deserialize as v8deserialize } from 'node:v8';
import { xlangDecode } from '../xlang.js';
import { encodingToWire, FrameBuilder, storedFromWire, storedToWire } from '../wire.js';
import { ObjectTable, type ObjectEntry, type StoredObject } from './object-table.js';
import { Deque } from './deque.js';
import { INLINE_THRESHOLD, NodeStore } from './store.js';
import { WorkerProcess } from './worker-process.js';

/** Options of the node runtime (from `init()`). */
export interface NodeRuntimeOptions {
  nodeId: string;
  jobId: string;
  sessionDir: string;
  resources: Record<string, number>;
  gpuIds?: string[];
  objectStoreMemory: number;
  spilling: boolean;
  logToDriver: boolean;
  /** Bytes of the arena faulted in at start. */
  prefaultBytes: number;
  /** Idle workers above the CPU count are stopped after this long. */
  idleWorkerTimeoutMs?: number;
  /** Namespace of the embedded driver's job. */
  namespace: string;
  /** A client driver silent for longer than this is treated as gone. Default 10 s. */
  clientTimeoutMs?: number;
  /** Python interpreter for Python workers (with the `tsray` package installed). */
  python: string;
}

type TaskState = 'deps' | 'queued' | 'dispatched' | 'done';

interface TaskRecord {
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
  /** Namespace of the submitter (for actors it creates and names it looks up). */
  namespace: string;
  /** Creation task: the actor it creates. Method call: the actor it calls. */
  actor: ActorRecord | undefined;
  /** Where its resources come from: the node, or a placement group bundle. */
  pool: Pool | undefined;
}

/** A resource pool: the node itself, or one bundle of a placement group. */
interface Pool {
  key: string;
  resources: NodeResources;
  pg: PgRecord | undefined;
  bundleIndex: number;
}

/** A placement group on this node. */
interface PgRecord {
  id: string;
  name: string;
  strategy: PlacementStrategy;
  bundles: ResourceRequest[];
  raw: Record<string, number>[];
  state: 'pending' | 'created' | 'removed';
  reservation: Reservation | undefined;
  pools: Pool[];
  /** Tasks and actors waiting for the group to be created. */
  waiting: TaskRecord[];
  detached: boolean;
  warned: boolean;
}

/** One actor's state on its node. */
interface ActorRecord {
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
  pool: Pool | undefined;
  /** Method calls in submission order, not yet sent to the worker (some may wait for arguments). */
  calls: TaskRecord[];
  death: ActorDeathInfo | undefined;
  /** No handle is left: stop once the submitted calls are done. */
  terminating: boolean;
  /** kill() asked for no restart. */
  killed: boolean;
  /** Ids held for the constructor arguments (kept for restarts). */
  ctorHolds: string[];
  nameKey: string | undefined;
}

interface Lease {
  key: string;
  pool: Pool;
  request: ResourceRequest;
  /** Undefined while the worker is blocked in get/wait (its CPUs were given back) or ran unaccounted. */
  allocation: Allocation | undefined;
  /** GPU ids of the lease (kept while blocked). */
  gpuIds: readonly string[];
  worker: WorkerHandle;
}

class WorkerHandle {
  readonly identity: Buffer;
  state: 'starting' | 'ready' | 'dead' = 'starting';
  pipeline: TaskRecord[] = [];
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
  /** Client drivers: namespace, job, and when they were last heard from. */
  namespace = '';
  jobId = '';
  lastSeen = Date.now();
  constructor(
    readonly id: string,
    /** The process (undefined for a client driver, which is not our child). */
    readonly proc: WorkerProcess | undefined,
    /** GPU ids and language: idle workers are reused only for the same set. */
    readonly gpuKey: string,
    readonly kind: 'worker' | 'driver' = 'worker',
  ) {
    this.identity = Buffer.from(id);
  }

  /** Kill the process (workers only). */
  kill(signal: NodeJS.Signals): void {
    this.proc?.proc.kill(signal);
  }
}

const ENC_ERROR = 'error';
/** TSRAY_TRACE=1 prints every message the node sends and receives (debugging). */
const TRACE = process.env['TSRAY_TRACE'] === '1';

/** One node: tasks, workers, objects. */
export class NodeRuntime implements CoreRuntime {
  readonly kind = 'driver' as const;
  readonly nodeId: string;
  readonly jobId: string;
  readonly address: string;
  readonly objects: ObjectTable;
  readonly store: NodeStore;
  readonly resources: NodeResources;
  private readonly router = new zmq.Router({ sendHighWaterMark: 0, receiveHighWaterMark: 0 });
  private readonly outbox = new Outbox(this.router);
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly queues = new Map<string, Deque<TaskRecord>>();
  private readonly leasesByKey = new Map<string, Lease[]>();
  private readonly workers = new Map<string, WorkerHandle>();
  private readonly idle: WorkerHandle[] = [];
  private readonly feasibilityChecked = new Set<string>();
  private readonly requestCache = new Map<string, ResourceRequest>();
  private readonly avgDuration = new Map<string, number>();
  private dispatchScheduled = false;
  private flushScheduled = false;
  private readonly dirtyWorkers = new Set<WorkerHandle>();
  private workerSeq = 0;
  private closed = false;
  private readonly maxWorkers: number;
  private readonly cpuSlots: number;
  private readonly abort = new AbortController();
  private readonly reaper: NodeJS.Timeout;
  private receiving: Promise<void> | undefined;
  private readonly actors = new Map<string, ActorRecord>();
  /** `${namespace}\0${name}` -> actor id. */
  private readonly names = new Map<string, string>();
  /** Handle ids created with getIfExists -> the existing actor's id. */
  private readonly aliases = new Map<string, string>();
  private readonly pendingActors: ActorRecord[] = [];
  readonly namespace: string;
  private readonly pgs = new Map<string, PgRecord>();
  private readonly pendingPgs: PgRecord[] = [];
  private readonly cluster = new ClusterView();
  private readonly nodePool: Pool;

  private constructor(private readonly opts: NodeRuntimeOptions) {
    this.nodeId = opts.nodeId;
    this.jobId = opts.jobId;
    this.namespace = opts.namespace;
    this.address = `ipc://${join(opts.sessionDir, 'node.sock')}`;
    mkdirSync(join(opts.sessionDir, 'logs'), { recursive: true });
    this.store = new NodeStore({
      capacity: opts.objectStoreMemory,
      spillDir: join(opts.sessionDir, 'spill'),
      spilling: opts.spilling,
      prefaultBytes: opts.prefaultBytes,
      onPressure: () => this.requestGc(),
    });
    this.objects = new ObjectTable((d) => this.store.release(d), (id) => this.onUnreferenced(id));
    this.store.attach(this.objects);
    this.resources = new NodeResources(opts.resources, opts.gpuIds ? { gpuIds: opts.gpuIds } : undefined);
    this.cpuSlots = Math.max(1, Math.floor(opts.resources['CPU'] ?? 1));
    this.cluster.addNode(this.nodeId, this.resources);
    this.nodePool = { key: '', resources: this.resources, pg: undefined, bundleIndex: -1 };
    this.maxWorkers = this.cpuSlots + 64;
    this.reaper = setInterval(() => this.reapIdle(), 500);
    this.reaper.unref();
  }

  /** Start a node runtime (binds its socket). */
  static async start(opts: NodeRuntimeOptions): Promise<NodeRuntime> {
    const n = new NodeRuntime(opts);
    await n.router.bind(n.address);
    n.receiving = n.receiveLoop();
    return n;
  }

  // ---------------------------------------------------------------- CoreRuntime (driver side)

  submitTask(spec: SubmitSpec): void {
    this.submit(spec, undefined);
  }

  putObject(id: string, value: SerializedValue): void {
    this.objects.seal(id, this.store.store(value));
  }

  getObjects(ids: string[], timeoutMs: number | undefined): Promise<unknown[]> {
    const out = new Array<unknown>(ids.length);
    let missing = 0;
    for (let i = 0; i < ids.length; i++) {
      const e = this.objects.get(ids[i]!);
      if (e?.data === undefined) missing++;
    }
    if (missing === 0) {
      try {
        for (let i = 0; i < ids.length; i++) out[i] = this.materialize(this.objects.get(ids[i]!)!);
        return Promise.resolve(out);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      let left = missing;
      const cancels: (() => void)[] = [];
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        try {
          for (let i = 0; i < ids.length; i++) out[i] = this.materialize(this.objects.get(ids[i]!)!);
          resolve(out);
        } catch (e) {
          reject(e);
        }
      };
      for (const id of ids) {
        const e = this.objects.get(id);
        if (e?.data !== undefined) continue;
        cancels.push(
          this.objects.whenReady(id, () => {
            if (--left === 0) done();
          }),
        );
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          for (const c of cancels) c();
          reject(new GetTimeoutError(timeoutMs / 1000, ids.filter((id) => this.objects.get(id)?.data === undefined)));
        }, timeoutMs);
      }
    });
  }

  wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<string[]> {
    const ready: ObjectEntry[] = [];
    for (const id of ids) {
      const e = this.objects.get(id);
      if (e?.data !== undefined) ready.push(e);
    }
    const finish = () => ready.sort((a, b) => a.seq - b.seq).map((e) => e.id);
    if (ready.length >= numReturns) return Promise.resolve(finish().slice(0, numReturns));
    return new Promise((resolve) => {
      const cancels: (() => void)[] = [];
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        for (const c of cancels) c();
        resolve(finish().slice(0, numReturns));
      };
      for (const id of ids) {
        const e = this.objects.get(id);
        if (e?.data !== undefined) continue;
        cancels.push(
          this.objects.whenReady(id, (entry) => {
            if (settled) return;
            ready.push(entry);
            if (ready.length >= numReturns) queueMicrotask(settle);
          }),
        );
      }
      if (timeoutMs !== undefined) timer = setTimeout(settle, timeoutMs);
    });
  }

  cancel(id: string, force: boolean): void {
    const taskId = taskIdOf(id);
    const t = taskId ? this.tasks.get(taskId) : undefined;
    if (!t || t.state === 'done' || t.cancelled) return;
    t.cancelled = { forced: force };
    const payload: ErrorPayload = { type: 'TaskCancelledError', taskName: t.spec.name, forced: force };
    if (t.state === 'deps' || t.state === 'queued') {
      if (t.state === 'queued' && !t.actor) {
        for (const q of this.queues.values()) if (q.remove(t)) break;
      }
      const sc = t.spec.scheduling;
      if (sc?.kind === 'PLACEMENT_GROUP') {
        const pg = this.pgs.get(sc.pgId);
        const i = pg ? pg.waiting.indexOf(t) : -1;
        if (i !== -1) pg!.waiting.splice(i, 1);
      }
      this.finishTask(t, errorObject(payload));
      return;
    }
    // Dispatched to a worker.
    const w = t.worker!;
    const running = w.pipeline[0] === t;
    if (force && running) {
      w.kill('SIGKILL');
      return;
    }
    // The worker drops it (queued there) or aborts its signal (running); its result will be ignored.
    this.send(w, { cancelTask: { taskId: t.spec.taskId, force } });
    this.sealReturns(t, errorObject(payload));
  }

  refAdded(id: string): void {
    this.objects.incRef(id);
  }

  refRemoved(id: string): void {
    this.objects.decRef(id);
  }

  private driverContext: RuntimeContext | undefined;

  context(): RuntimeContext {
    return (this.driverContext ??= {
      nodeId: this.nodeId,
      jobId: this.jobId,
      taskId: undefined,
      taskName: undefined,
      attempt: 0,
      gpuIds: [],
      signal: this.abort.signal,
      pid: process.pid,
      isWorker: false,
    });
  }

  /** Value of a sealed object in this (driver) process. */
  private materialize(e: ObjectEntry): unknown {
    const d = e.data!;
    if (d.encoding === ENC_ERROR) throw errorFromPayload(this.store.bytes(d), d.rawKind);
    if (d.shm && d.encoding === 'raw') {
      const view = this.store.arena.view(d.shm.offset, d.shm.length);
      const value = deserialize('raw', d.rawKind, view) as object;
      this.objects.pin(e.id);
      viewRegistry.register(value, { node: this, id: e.id });
      return value;
    }
    if (d.inline && d.encoding === 'raw') return deserialize('raw', d.rawKind, Buffer.from(d.inline));
    return deserialize(d.encoding, d.rawKind, this.store.bytes(d));
  }

  private gcPending = false;
  private lastGc = 0;

  /** Collect garbage soon (throttled): finalizers of dropped refs then free their objects. */
  private requestGc(): void {
    if (this.gcPending || this.closed) return;
    const gc = gcFunction();
    if (!gc) return;
    this.gcPending = true;
    const delay = Math.max(0, 50 - (Date.now() - this.lastGc));
    const t = setTimeout(() => {
      this.gcPending = false;
      this.lastGc = Date.now();
      gc();
    }, delay);
    t.unref();
  }

  /** @internal called when a zero-copy view is collected. */
  unpinView(id: string): void {
    if (!this.closed) this.objects.unpin(id);
  }

  // ---------------------------------------------------------------- tasks

  private requestFor(spec: SubmitSpec): ResourceRequest {
    if (spec.request) return spec.request;
    let key = '';
    for (const [k, v] of spec.resources) key += `${k}:${v};`;
    let r = this.requestCache.get(key);
    if (!r) this.requestCache.set(key, (r = ResourceRequest.fromUnits(spec.resources)));
    return r;
  }

  private submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void {
    if (this.closed) throw new RuntimeStateError('the node runtime was shut down');
    const t: TaskRecord = {
      spec,
      request: this.requestFor(spec),
      owner,
      state: 'deps',
      depsLeft: 0,
      holds: [],
      attempt: 0,
      retriesLeft: spec.maxRetries,
      worker: undefined,
      cancelled: undefined,
      items: [],
      startedAt: 0,
      namespace: owner ? this.namespaceOf(owner) : this.namespace,
      actor: undefined,
      pool: undefined,
    };
    this.tasks.set(spec.taskId, t);
    if (spec.actorCreation) {
      const rec = this.registerActor(t, owner);
      if (!rec) return;
      t.actor = rec;
    } else if (spec.actorId) {
      const rec = this.actors.get(this.aliases.get(spec.actorId) ?? spec.actorId);
      if (!rec || rec.state === 'dead') {
        this.finishTask(t, errorObject({ type: 'ActorDiedError', info: rec?.death ?? unknownActor(spec.actorId, spec.fn.name) }));
        return;
      }
      t.actor = rec;
      t.retriesLeft = rec.creation.maxTaskRetries;
      rec.calls.push(t);
    }
    const args = spec.args;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a.kind === 'ref') {
        this.objects.incRef(a.id);
        t.holds.push(a.id);
        const e = this.objects.get(a.id)!;
        if (e.data === undefined) {
          t.depsLeft++;
          this.objects.whenReady(a.id, (entry) => this.depReady(t, entry));
        } else if (e.data.encoding === ENC_ERROR) {
          this.failFromUpstream(t, e.data);
          return;
        }
      } else if (a.value.bytes.byteLength > INLINE_THRESHOLD) {
        // Large arguments go to the object store (as Ray puts them into plasma) and travel as refs.
        const id = `${spec.taskId}.a${i}`;
        this.objects.incRef(id);
        t.holds.push(id);
        try {
          this.objects.seal(id, this.store.store(a.value));
        } catch (err) {
          this.finishTask(t, errorObject(storeErrorPayload(err)));
          return;
        }
        args[i] = { kind: 'ref', id };
      } else {
        for (const c of a.value.containedRefs) {
          this.objects.incRef(c);
          t.holds.push(c);
        }
      }
    }
    if (t.depsLeft === 0) this.enqueue(t);
  }

  private depReady(t: TaskRecord, e: ObjectEntry): void {
    if (t.state !== 'deps') return;
    if (e.data!.encoding === ENC_ERROR) {
      this.failFromUpstream(t, e.data!);
      return;
    }
    if (--t.depsLeft === 0) this.enqueue(t);
  }

  private failFromUpstream(t: TaskRecord, errData: StoredObject): void {
    const bytes = this.store.bytes(errData);
    this.finishTask(t, { encoding: 'error', rawKind: '', inline: Buffer.from(bytes), size: bytes.length, contained: [] });
  }

  /**
   * The pool a task or actor takes resources from, per its strategy. Undefined: it must wait (its
   * placement group is not created yet; it was parked on the group) or it failed.
   */
  private poolFor(t: TaskRecord): Pool | undefined {
    const sc = t.spec.scheduling;
    if (!sc || sc.kind !== 'PLACEMENT_GROUP') {
      if (sc?.kind === 'NODE_AFFINITY' && sc.nodeId !== this.nodeId && !sc.soft) {
        this.finishTask(t, errorObject({ type: 'Other', name: 'TaskUnschedulableError', message: `task ${t.spec.name} has a hard affinity to node ${sc.nodeId}, which is not in the cluster (this node is ${this.nodeId})` }));
        return undefined;
      }
      return this.nodePool;
    }
    const pg = this.pgs.get(sc.pgId);
    if (!pg || pg.state === 'removed') {
      this.finishTask(t, errorObject({ type: 'Other', name: 'PlacementGroupError', message: `task ${t.spec.name} targets placement group ${sc.pgId}, which ${pg ? 'was removed' : 'does not exist'}` }));
      return undefined;
    }
    if (pg.state === 'pending') {
      pg.waiting.push(t);
      return undefined;
    }
    const req = t.spec.actorCreation ? (t.actor?.schedule ?? t.request) : t.request;
    if (sc.bundleIndex >= pg.pools.length) {
      this.finishTask(t, errorObject({ type: 'Other', name: 'PlacementGroupError', message: `bundleIndex ${sc.bundleIndex} is out of range: placement group ${pg.id} has ${pg.pools.length} bundle(s)` }));
      return undefined;
    }
    if (sc.bundleIndex >= 0) return pg.pools[sc.bundleIndex];
    return pg.pools.find((p) => p.resources.canFit(req)) ?? pg.pools.find((p) => p.resources.isFeasible(req)) ?? pg.pools[0];
  }

  private pythonCheck: string | undefined | null = null;

  /** Why Python workers cannot start here (undefined: they can). Checked once. */
  private pythonProblem(): string | undefined {
    if (this.pythonCheck !== null) return this.pythonCheck;
    const py = this.opts.python;
    try {
      const out = execFileSync(py, ['-c', 'import sys; import tsray.worker; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
      const [maj, min] = out.split('.').map(Number);
      this.pythonCheck = maj! > 3 || (maj === 3 && min! >= 10) ? undefined : `Python ${out} at ${py} is too old: tsray needs Python >= 3.10 (pass init({ python }) or set TSRAY_PYTHON)`;
    } catch (e) {
      const err = e as { code?: string; stderr?: string; message: string };
      this.pythonCheck =
        err.code === 'ENOENT'
          ? `no Python interpreter at "${py}": install Python >= 3.10 with the tsray package (pip install ./python) and pass init({ python: '/path/to/python' }) or set TSRAY_PYTHON`
          : `the Python interpreter "${py}" cannot import the tsray package (${(err.stderr ?? err.message).trim().split('\n').pop()}): pip install ./python into that environment, or point init({ python }) / TSRAY_PYTHON at one that has it`;
    }
    return this.pythonCheck;
  }

  private enqueue(t: TaskRecord, front = false): void {
    if (isPython(t.spec.fn.moduleUrl) && t.state === 'deps') {
      const problem = this.pythonProblem();
      if (problem) {
        const err = errorObject({ type: 'Other', name: 'PythonEnvironmentError', message: `task ${t.spec.name}: ${problem}` });
        if (t.actor && t.spec.actorCreation) {
          this.finishTask(t, err);
          this.actorDead(t.actor, { actorId: t.actor.id, className: t.actor.creation.className, reason: 'crashed', detail: problem });
        } else this.finishTask(t, err);
        return;
      }
    }
    if (!t.pool) {
      const pool = this.poolFor(t);
      if (!pool) return;
      t.pool = pool;
      if (t.actor && t.spec.actorCreation) t.actor.pool = pool;
    }
    if (t.actor) {
      t.state = 'queued';
      if (t.spec.actorCreation) this.queueActorStart(t.actor);
      else this.pumpActor(t.actor);
      return;
    }
    t.state = 'queued';
    const lang = isPython(t.spec.fn.moduleUrl) ? '|py' : '';
    const key = (t.pool.key ? `${t.request.key}|${t.pool.key}` : t.request.key) + lang;
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = new Deque()));
    if (front) q.unshift(t);
    else q.push(t);
    this.warnIfInfeasible(key, `task ${t.spec.name}`, t.request, t.pool);
    this.scheduleDispatch();
  }

  /**
   * Warn once per request shape and pool when the pool can never provide the request. Total
   * resources of a pool do not change, so each key is checked once (not on every enqueue).
   */
  private warnIfInfeasible(key: string, what: string, request: ResourceRequest, pool: Pool): void {
    if (this.feasibilityChecked.has(key)) return;
    this.feasibilityChecked.add(key);
    if (pool.resources.isFeasible(request)) return;
    const where = pool.pg ? `bundle ${pool.bundleIndex} of placement group ${pool.pg.id}` : 'no node';
    const has = JSON.stringify(Object.fromEntries([...pool.resources.total].map(([k, v]) => [k, v / 10_000])));
    const msg =
      `tsray: ${what} needs ${JSON.stringify(request.toJSON())} but ${where} can ever provide ` +
      `${pool.resources.missing(request).join(', ')} (${pool.pg ? 'the bundle' : `node ${this.nodeId}`} has ${has}); ` +
      `it stays pending${pool.pg ? '' : ' until such a node joins'}`;
    logger().warn({ what, request: request.toJSON() }, msg);
    process.stderr.write(`${msg}\n`);
  }

  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    queueMicrotask(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /**
   * How many tasks of a function may wait in a worker's queue behind the running one: tiny tasks are
   * pipelined (fewer round trips), anything slower or not yet measured runs one at a time (as Ray's
   * default of one task in flight per leased worker).
   */
  private pipelineDepth(t: TaskRecord): number {
    const avg = this.avgDuration.get(fnKey(t));
    if (avg === undefined || avg > 5) return 1;
    return avg > 1 ? 8 : 64;
  }

  private dispatch(): void {
    if (this.closed) return;
    if (this.pendingPgs.length > 0) this.placePending();
    if (this.pendingActors.length > 0) this.startActors();
    for (const [key, q] of this.queues) {
      if (q.length === 0) continue;
      const request = q.peek()!.request;
      let leases = this.leasesByKey.get(key);
      while (q.length > 0) {
        const depth = this.pipelineDepth(q.peek()!);
        // Least-loaded existing lease with room.
        let best: Lease | undefined;
        if (leases) {
          for (const l of leases) {
            if (l.worker.state === 'dead' || l.worker.blocked) continue;
            const load = l.worker.pipeline.length;
            if (load < depth && (best === undefined || load < best.worker.pipeline.length)) best = l;
          }
        }
        // Open another lease when every existing one is busy and resources allow (tasks that hold no
        // CPU open new workers only up to the CPU count).
        if (best === undefined || (best.worker.pipeline.length > 0 && (request.cpu > 0 || this.workers.size < this.cpuSlots))) {
          const fresh = this.newLease(key, request, q.peek()!.pool ?? this.nodePool, isPython(q.peek()!.spec.fn.moduleUrl));
          if (fresh) {
            if (!leases) this.leasesByKey.set(key, (leases = []));
            leases.push(fresh);
            best = fresh;
          }
        }
        if (best === undefined) break;
        this.assign(q.shift()!, best.worker);
      }
    }
    this.scheduleFlush();
  }

  private newLease(key: string, request: ResourceRequest, pool: Pool, python: boolean): Lease | undefined {
    if (!pool.resources.canFit(request)) return undefined;
    const allocation = pool.resources.allocate(request);
    if (!allocation) return undefined;
    const gpuKey = allocation.gpuIds.join(',') + (python ? '|py' : '');
    let w: WorkerHandle | undefined;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (this.idle[i]!.gpuKey === gpuKey) {
        w = this.idle.splice(i, 1)[0];
        break;
      }
    }
    if (!w) {
      if (this.workers.size >= this.maxWorkers) {
        // Make room: stop an idle worker of another GPU set.
        const victim = this.idle.shift();
        if (victim) this.stopWorker(victim);
        else {
          pool.resources.release(allocation);
          return undefined;
        }
      }
      w = this.startWorker(gpuKey, allocation.gpuIds, python);
    }
    const lease: Lease = { key, pool, request, allocation, gpuIds: allocation.gpuIds, worker: w };
    w.lease = lease;
    return lease;
  }

  private releaseLease(w: WorkerHandle): void {
    const l = w.lease;
    if (!l) return;
    w.lease = undefined;
    if (l.allocation && l.pool.pg?.state !== 'removed') l.pool.resources.release(l.allocation);
    const list = this.leasesByKey.get(l.key);
    if (list) {
      const i = list.indexOf(l);
      if (i !== -1) list.splice(i, 1);
    }
    if (w.state !== 'dead') {
      w.idleSince = Date.now();
      this.idle.push(w);
    }
    this.scheduleDispatch();
  }

  private assign(t: TaskRecord, w: WorkerHandle): void {
    t.state = 'dispatched';
    t.worker = w;
    t.startedAt = performance.now();
    w.pipeline.push(t);
    w.unsent.push(t);
    this.dirtyWorkers.add(w);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.dirtyWorkers.size === 0) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    for (const w of this.dirtyWorkers) {
      if (w.state !== 'ready') continue;
      this.dirtyWorkers.delete(w);
      if (w.unsent.length > 0) {
        const fb = new FrameBuilder();
        const tasks: tsray.v1.ITaskExecution[] = [];
        for (const t of w.unsent) {
          if (t.state !== 'dispatched' || t.worker !== w) continue;
          tasks.push(this.execution(t, w, fb));
        }
        w.unsent = [];
        if (tasks.length > 0) this.send(w, { executeTasks: { tasks } }, fb);
      }
      if (w.readyOut.length > 0) {
        const fb = new FrameBuilder();
        const objects = w.readyOut.map((e) => this.deliver(e, w, fb));
        w.readyOut = [];
        this.send(w, { objectsReady: { objects } }, fb);
      }
    }
  }

  /** ObjectData for sending an object to a worker; arena objects get a delivery pin owned by the worker. */
  private deliver(e: ObjectEntry, w: WorkerHandle, fb: FrameBuilder): tsray.v1.IObjectData {
    const d = e.data!;
    if (d.shm) {
      this.objects.pin(e.id);
      w.pins.set(e.id, (w.pins.get(e.id) ?? 0) + 1);
    }
    return storedToWire(e.id, d, fb);
  }

  private execution(t: TaskRecord, w: WorkerHandle, fb: FrameBuilder): tsray.v1.ITaskExecution {
    const args: tsray.v1.IObjectData[] = [];
    for (const a of t.spec.args) {
      if (a.kind === 'ref') args.push(this.deliver(this.objects.get(a.id)!, w, fb));
      else args.push(this.argValueToWire(a, fb));
    }
    return {
      taskId: t.spec.taskId,
      function: { moduleUrl: t.spec.fn.moduleUrl, key: t.spec.fn.key, name: t.spec.fn.name },
      args,
      returnIds: t.spec.returnIds,
      streaming: t.spec.streaming,
      attempt: t.attempt,
      name: t.spec.name,
      jobId: this.jobId,
      nodeId: this.nodeId,
      gpuIds: w.lease ? [...w.lease.gpuIds] : w.actor?.allocation ? [...w.actor.allocation.gpuIds] : [],
      ...(t.spec.actorCreation ? { actorCreation: creationToWire(t.spec.actorCreation), actorId: t.spec.actorCreation.actorId } : {}),
      ...(t.spec.actorId ? { actorId: t.spec.actorId, method: t.spec.method ?? '', concurrencyGroup: t.spec.concurrencyGroup ?? '' } : {}),
      ...(t.spec.scheduling ? { scheduling: schedulingToWire(t.spec.scheduling) } : {}),
      ...(t.spec.xlang ? { xlang: true } : {}),
    };
  }

  private argValueToWire(a: Extract<SubmitArg, { kind: 'value' }>, fb: FrameBuilder): tsray.v1.IObjectData {
    const v = a.value;
    return {
      encoding: encodingToWire(v.encoding),
      rawKind: v.rawKind,
      inline: fb.add(v.bytes),
      containedRefs: v.containedRefs,
      size: v.bytes.byteLength,
    };
  }

  private sealReturns(t: TaskRecord, data: StoredObject): void {
    for (const id of t.spec.returnIds) {
      if (this.objects.get(id)?.data !== undefined) continue;
      this.objects.seal(id, cloneStored(data));
    }
  }

  /** A task reached its final state: seal its returns with `data` (if given) and drop its holds. */
  private finishTask(t: TaskRecord, data: StoredObject | undefined): void {
    if (t.state === 'done') return;
    t.state = 'done';
    if (t.actor && !t.spec.actorCreation) {
      const i = t.actor.calls.indexOf(t);
      if (i !== -1) t.actor.calls.splice(i, 1);
    }
    if (data) this.sealReturns(t, data);
    this.tasks.delete(t.spec.taskId);
    for (const id of t.holds) this.objects.decRef(id);
    t.holds = [];
    for (const id of t.items) this.objects.decRef(id);
    t.items = [];
  }


  // ---------------------------------------------------------------- actors

  private namespaceOf(w: WorkerHandle): string {
    if (w.kind === 'driver') return w.namespace || this.namespace;
    return w.pipeline[0]?.namespace ?? w.actor?.namespace ?? this.namespace;
  }

  createActor(spec: SubmitSpec): string {
    const c = spec.actorCreation!;
    const ns = c.namespace || this.namespace;
    if (c.name) {
      const existing = this.liveActorByName(ns, c.name);
      if (existing) {
        if (c.getIfExists) return existing.id;
        throw new ActorNameTakenError(c.name, ns);
      }
    }
    this.submit(spec, undefined);
    return c.actorId;
  }

  private liveActorByName(ns: string, name: string): ActorRecord | undefined {
    const id = this.names.get(`${ns}\0${name}`);
    const rec = id ? this.actors.get(id) : undefined;
    return rec && rec.state !== 'dead' ? rec : undefined;
  }

  /** Record an actor for its creation task; undefined if the task already failed (name taken). */
  private registerActor(t: TaskRecord, owner: WorkerHandle | undefined): ActorRecord | undefined {
    const c = t.spec.actorCreation!;
    const ns = c.namespace || (owner ? this.namespaceOf(owner) : this.namespace);
    const death = (reason: string, detail: string): ActorDeathInfo => ({ actorId: c.actorId, className: c.className, reason, detail });
    if (c.name) {
      const existing = this.liveActorByName(ns, c.name);
      if (existing) {
        if (c.getIfExists) {
          this.aliases.set(c.actorId, existing.id);
          this.finishTask(t, errorObject({ type: 'Other', name: 'Alias', message: 'getIfExists: existing actor used' }));
          return undefined;
        }
        const dead: ActorRecord = this.newActorRecord(t, ns);
        dead.state = 'dead';
        dead.death = death('name_taken', new ActorNameTakenError(c.name, ns).message);
        this.actors.set(c.actorId, dead);
        this.finishTask(t, errorObject({ type: 'ActorDiedError', info: dead.death }));
        return undefined;
      }
    }
    const rec = this.newActorRecord(t, ns);
    this.actors.set(rec.id, rec);
    if (c.name) {
      rec.nameKey = `${ns}\0${c.name}`;
      this.names.set(rec.nameKey, rec.id);
    }
    // Constructor arguments are kept for restarts.
    rec.ctorHolds = [...t.holds];
    for (const id of rec.ctorHolds) this.objects.incRef(id);
    return rec;
  }

  private newActorRecord(t: TaskRecord, ns: string): ActorRecord {
    const c = t.spec.actorCreation!;
    return {
      id: c.actorId,
      creation: c,
      spec: t.spec,
      schedule: t.request,
      hold: c.holdRequest ?? ResourceRequest.fromUnits(c.hold),
      namespace: ns,
      state: 'pending',
      worker: undefined,
      allocation: undefined,
      restartsLeft: c.maxRestarts,
      pool: undefined,
      calls: [],
      death: undefined,
      terminating: false,
      killed: false,
      ctorHolds: [],
      nameKey: undefined,
    };
  }

  private queueActorStart(rec: ActorRecord): void {
    if (rec.state === 'dead') return;
    if (!this.pendingActors.includes(rec)) this.pendingActors.push(rec);
    this.warnIfInfeasible(`actor:${rec.schedule.key}|${rec.pool?.key ?? ''}`, `actor ${rec.creation.className}`, rec.schedule, rec.pool ?? this.nodePool);
    this.scheduleDispatch();
  }

  /** Start pending actors whose resources fit (called from dispatch). */
  private startActors(): void {
    for (let i = 0; i < this.pendingActors.length; ) {
      const rec = this.pendingActors[i]!;
      if (rec.state === 'dead') {
        this.pendingActors.splice(i, 1);
        continue;
      }
      const pool = rec.pool ?? this.nodePool;
      if (!pool.resources.canFit(rec.schedule)) {
        i++;
        continue;
      }
      const allocation = pool.resources.allocate(rec.hold);
      if (!allocation) {
        i++;
        continue;
      }
      this.pendingActors.splice(i, 1);
      rec.allocation = allocation;
      const w = this.startWorker(`actor:${rec.id}`, allocation.gpuIds, isPython(rec.spec.fn.moduleUrl));
      w.actor = rec;
      rec.worker = w;
      rec.state = rec.state === 'restarting' ? 'restarting' : 'starting';
      // The creation task runs first on the new worker.
      const t = this.creationTask(rec);
      t.state = 'dispatched';
      t.worker = w;
      t.startedAt = performance.now();
      w.pipeline.push(t);
      w.unsent.push(t);
      this.dirtyWorkers.add(w);
    }
  }

  /** The creation task of an actor (the original one, or a new one for a restart). */
  private creationTask(rec: ActorRecord): TaskRecord {
    const existing = this.tasks.get(rec.spec.taskId);
    if (existing && existing.state !== 'done') return existing;
    const taskId = `${rec.spec.taskId}r${rec.creation.maxRestarts - rec.restartsLeft}`;
    const t: TaskRecord = {
      spec: { ...rec.spec, taskId, returnIds: [] },
      request: rec.schedule,
      owner: undefined,
      state: 'queued',
      depsLeft: 0,
      holds: [],
      attempt: 0,
      retriesLeft: 0,
      worker: undefined,
      cancelled: undefined,
      items: [],
      startedAt: 0,
      namespace: rec.namespace,
      actor: rec,
      pool: rec.pool,
    };
    this.tasks.set(taskId, t);
    return t;
  }

  private onActorCreated(t: TaskRecord, status: tsray.v1.TaskStatus, datas: { id: string; d: StoredObject }[]): void {
    const rec = t.actor!;
    const w = rec.worker;
    if (status === tsray.v1.TaskStatus.TASK_STATUS_OK) {
      for (const { id, d } of datas) this.objects.seal(id, d);
      this.finishTask(t, undefined);
      if (rec.state === 'dead') return;
      rec.state = 'alive';
      this.pumpActor(rec);
      this.maybeStopActor(rec);
      return;
    }
    // The constructor threw: the actor is dead (no restart), with that error as the cause.
    let cause: ActorDeathInfo['cause'];
    try {
      const d = datas[0]!.d;
      const bytes = this.store.bytes(d);
      const p = (d.rawKind === 'msgpack' ? xlangDecode(bytes) : v8deserialize(bytes)) as ErrorPayload;
      if (p.type === 'TaskError') cause = p.info;
    } catch {
      /* no cause */
    }
    for (const { d } of datas) this.store.release(d);
    const info: ActorDeathInfo = {
      actorId: rec.id,
      className: rec.creation.className,
      reason: 'constructor',
      detail: `its constructor threw ${cause ? `${cause.name}: ${cause.message}` : 'an error'}`,
      cause,
    };
    this.finishTask(t, errorObject({ type: 'ActorDiedError', info }));
    this.actorDead(rec, info);
    if (w) this.stopWorker(w);
  }

  /** Send the actor's calls whose arguments are ready, in submission order. */
  private pumpActor(rec: ActorRecord): void {
    if (rec.state !== 'alive' || !rec.worker || rec.worker.state === 'dead') return;
    const w = rec.worker;
    while (rec.calls.length > 0) {
      const t = rec.calls[0]!;
      if (t.state !== 'queued') break;
      rec.calls.shift();
      this.assign(t, w);
    }
    this.scheduleFlush();
  }

  /** No handle to a non-detached actor is left: stop it once its submitted calls are done. */
  private onUnreferenced(id: string): void {
    const rec = this.actors.get(id);
    if (!rec || rec.creation.detached || rec.state === 'dead') return;
    rec.terminating = true;
    this.maybeStopActor(rec);
  }

  private maybeStopActor(rec: ActorRecord): void {
    if (!rec.terminating || rec.state === 'dead') return;
    if (rec.calls.length > 0) return;
    const w = rec.worker;
    if (w && w.pipeline.length > 0) return;
    this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'out_of_scope', detail: 'all handles to it are gone (non-detached actors stop then)' });
    if (w) this.stopWorker(w);
  }

  /** The actor is dead for good: fail its pending calls, free its name and resources. */
  private actorDead(rec: ActorRecord, info: ActorDeathInfo): void {
    if (rec.state === 'dead') return;
    rec.state = 'dead';
    rec.death = info;
    const err = errorObject({ type: 'ActorDiedError', info });
    for (const t of rec.calls.splice(0)) this.finishTask(t, err);
    const i = this.pendingActors.indexOf(rec);
    if (i !== -1) this.pendingActors.splice(i, 1);
    if (rec.nameKey && this.names.get(rec.nameKey) === rec.id) this.names.delete(rec.nameKey);
    if (rec.allocation) {
      if (rec.pool?.pg?.state !== 'removed') (rec.pool ?? this.nodePool).resources.release(rec.allocation);
      rec.allocation = undefined;
    }
    for (const id of rec.ctorHolds) this.objects.decRef(id);
    rec.ctorHolds = [];
    this.scheduleDispatch();
  }

  /** The actor's process died: restart it if allowed, retry or fail the calls in flight. */
  private actorWorkerDied(rec: ActorRecord, w: WorkerHandle, detail: string): void {
    rec.worker = undefined;
    if (rec.allocation) {
      if (rec.pool?.pg?.state !== 'removed') (rec.pool ?? this.nodePool).resources.release(rec.allocation);
      rec.allocation = undefined;
    }
    const inflight = w.pipeline.filter((t) => t.state === 'dispatched' && t.worker === w);
    w.pipeline = [];
    const creating = inflight.find((t) => t.spec.actorCreation);
    const calls = inflight.filter((t) => !t.spec.actorCreation);
    const killed = rec.killed;
    const canRestart = !killed && rec.state !== 'dead' && !rec.terminating && rec.restartsLeft !== 0;
    const info: ActorDeathInfo = {
      actorId: rec.id,
      className: rec.creation.className,
      reason: killed ? 'killed' : 'crashed',
      detail: killed ? 'it was killed with kill()' : `its process (pid ${w.proc?.pid}) died: ${detail}`,
    };
    const err = errorObject({ type: 'ActorDiedError', info });
    // Calls in flight: retried after the restart (maxTaskRetries), else they fail.
    const retry: TaskRecord[] = [];
    for (const t of calls) {
      t.worker = undefined;
      if (canRestart && t.retriesLeft !== 0) {
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        t.state = 'queued';
        retry.push(t);
      } else {
        this.finishTask(t, err);
      }
    }
    if (creating) {
      creating.worker = undefined;
      if (!canRestart) this.finishTask(creating, err);
    }
    if (canRestart) {
      if (rec.restartsLeft > 0) rec.restartsLeft--;
      rec.state = 'restarting';
      rec.calls.unshift(...retry);
      if (creating) this.tasks.delete(creating.spec.taskId);
      logger().warn({ actor: rec.creation.className, detail }, 'actor process died; restarting it');
      this.queueActorStart(rec);
    } else {
      this.actorDead(rec, info);
    }
  }

  getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> {
    try {
      return Promise.resolve(this.lookupActor(name, namespace || this.namespace));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private lookupActor(name: string, ns: string): ActorInfoData {
    const rec = this.liveActorByName(ns, name);
    if (!rec) throw new ActorNotFoundError(name, ns);
    return { actorId: rec.id, className: rec.creation.className, methods: rec.creation.methods, module: rec.spec.fn.moduleUrl, key: rec.spec.fn.key };
  }

  killActor(actorId: string, noRestart: boolean): void {
    const rec = this.actors.get(this.aliases.get(actorId) ?? actorId);
    if (!rec) throw new ActorNotFoundError(actorId, '(by id)');
    if (rec.state === 'dead') {
      throw new ActorDiedError(rec.death!);
    }
    if (noRestart) rec.killed = true;
    const w = rec.worker;
    if (w && w.state !== 'dead') w.kill('SIGKILL');
    else if (noRestart) {
      this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: 'it was killed with kill() before it started' });
    }
  }


  // ---------------------------------------------------------------- placement groups

  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean): void {
    const reqs = validateBundles(bundles);
    const pg: PgRecord = {
      id,
      name,
      strategy: validateStrategy(strategy),
      bundles: reqs,
      raw: bundles,
      state: 'pending',
      reservation: undefined,
      pools: [],
      waiting: [],
      detached,
      warned: false,
    };
    this.pgs.set(id, pg);
    // The group holds its ready object, so pg.ready() can be asked for at any time.
    this.objects.incRef(`${id}.ready`);
    this.pendingPgs.push(pg);
    this.scheduleDispatch();
  }

  /** Try to reserve pending groups, in creation order (atomic: all bundles or none). */
  private placePending(): void {
    for (let i = 0; i < this.pendingPgs.length; ) {
      const pg = this.pendingPgs[i]!;
      if (pg.state !== 'pending') {
        this.pendingPgs.splice(i, 1);
        continue;
      }
      const r = reserve(pg.bundles, pg.strategy, this.cluster);
      if (r.kind !== 'reserved') {
        if (r.kind === 'infeasible' && !pg.warned) {
          pg.warned = true;
          const msg = `tsray: placement group ${pg.name || pg.id} (${pg.strategy}, bundles ${JSON.stringify(pg.raw)}) cannot be placed on this cluster: ${r.reason}; it stays pending until nodes that can hold it join`;
          logger().warn({ pg: pg.id }, msg);
          process.stderr.write(`${msg}\n`);
        }
        i++;
        continue;
      }
      this.pendingPgs.splice(i, 1);
      pg.reservation = r.reservation;
      pg.state = 'created';
      pg.pools = pg.bundles.map((_, b) => ({ key: `pg:${pg.id}:${b}`, resources: r.reservation.bundleView(b), pg, bundleIndex: b }));
      const info = {
        id: pg.id,
        strategy: pg.strategy,
        bundles: pg.bundles.map((req, b) => ({ nodeId: r.reservation.nodeIds[b]!, gpuIds: [...r.reservation.gpuIds(b)], resources: req.toJSON() })),
      };
      this.objects.seal(`${pg.id}.ready`, this.store.store(serialize(info)));
      for (const t of pg.waiting.splice(0)) this.enqueue(t);
    }
  }

  removePlacementGroup(id: string): void {
    const pg = this.pgs.get(id);
    if (!pg) throw new PlacementGroupError(`placement group ${id} does not exist`);
    if (pg.state === 'removed') throw new PlacementGroupError(`placement group ${pg.name || id} was already removed`);
    const wasCreated = pg.state === 'created';
    pg.state = 'removed';
    const err = (what: string) => errorObject({ type: 'Other', name: 'PlacementGroupError', message: `${what}: its placement group ${pg.name || id} was removed` });
    for (const t of pg.waiting.splice(0)) this.finishTask(t, err(`task ${t.spec.name}`));
    // Actors in the group die; tasks in it are cancelled (running ones with their worker).
    for (const rec of this.actors.values()) {
      if (rec.pool?.pg === pg && rec.state !== 'dead') {
        rec.killed = true;
        const w = rec.worker;
        this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: `its placement group ${pg.name || id} was removed` });
        if (w) w.kill('SIGKILL');
      }
    }
    for (const t of [...this.tasks.values()]) {
      if (t.pool?.pg !== pg || t.actor) continue;
      if (t.state === 'queued') {
        for (const q of this.queues.values()) if (q.remove(t)) break;
        this.finishTask(t, err(`task ${t.spec.name}`));
      } else if (t.state === 'dispatched' && t.worker) {
        t.cancelled = { forced: true };
        this.sealReturns(t, err(`task ${t.spec.name}`));
        t.worker.kill('SIGKILL');
      }
    }
    if (wasCreated) pg.reservation!.release();
    const pi = this.pendingPgs.indexOf(pg);
    if (pi !== -1) this.pendingPgs.splice(pi, 1);
    this.objects.seal(`${id}.ready`, errorObject({ type: 'Other', name: 'PlacementGroupError', message: `placement group ${pg.name || id} was removed` }));
    this.scheduleDispatch();
  }

  // ---------------------------------------------------------------- state API

  clusterResources(): Record<string, number> {
    return Object.fromEntries([...this.resources.total].map(([k, v]) => [k, v / 10_000]));
  }

  availableResources(): Record<string, number> {
    return Object.fromEntries([...this.resources.available()].map(([k, v]) => [k, v / 10_000]));
  }

  pendingDemand(): PendingDemand[] {
    const out: PendingDemand[] = [];
    const byShape = new Map<string, PendingDemand>();
    for (const q of this.queues.values()) {
      for (let t = q.peek(), k = 0; t && k < 1; k++) {
        const pool = t.pool ?? this.nodePool;
        const key = `task|${t.spec.name}|${t.request.key}`;
        const d = byShape.get(key) ?? { kind: 'task' as const, name: t.spec.name, resources: t.request.toJSON(), count: 0, infeasible: !pool.resources.isFeasible(t.request), missing: pool.resources.missing(t.request) };
        d.count += q.length;
        byShape.set(key, d);
      }
    }
    out.push(...byShape.values());
    for (const rec of this.pendingActors) {
      const pool = rec.pool ?? this.nodePool;
      out.push({ kind: 'actor', name: rec.creation.className, resources: rec.schedule.toJSON(), count: 1, infeasible: !pool.resources.isFeasible(rec.schedule), missing: pool.resources.missing(rec.schedule) });
    }
    for (const pg of this.pendingPgs) {
      out.push({ kind: 'placement_group', name: pg.name || pg.id, resources: pg.raw, count: 1, infeasible: pg.warned, missing: [] });
    }
    return out;
  }

  // ---------------------------------------------------------------- workers

  private startWorker(gpuKey: string, gpuIds: readonly string[], python = false): WorkerHandle {
    const id = `w${this.workerSeq++}-${process.pid}`;
    const env: Record<string, string> = {};
    if (gpuIds.length > 0 || (this.opts.resources['GPU'] ?? 0) > 0) env['CUDA_VISIBLE_DEVICES'] = gpuIds.join(',');
    const proc = new WorkerProcess({
      workerId: id,
      nodeAddress: this.address,
      nodeId: this.nodeId,
      jobId: this.jobId,
      sessionDir: this.opts.sessionDir,
      arenaFd: this.store.arenaFd,
      arenaSize: this.store.capacity,
      env,
      logToDriver: this.opts.logToDriver,
      defaultName: python ? 'python-worker' : 'worker',
      python: python ? this.opts.python : undefined,
    });
    const w = new WorkerHandle(id, proc, gpuKey);
    this.workers.set(id, w);
    proc.proc.on('exit', (code, signal) => this.workerExited(w, code, signal));
    proc.proc.on('error', (err) => logger().error({ err, worker: id }, 'worker process error'));
    // Workers must not keep the driver alive on their own.
    proc.proc.unref();
    return w;
  }

  private stopWorker(w: WorkerHandle): void {
    if (w.state === 'dead') return;
    if (w.state === 'ready') this.send(w, { shutdown: { reason: 'idle' } });
    else w.kill('SIGTERM');
  }

  /** A client driver left (goodbye or silence): drop what it held; its non-detached actors lose its handles. */
  private clientGone(w: WorkerHandle, why: string): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    this.workers.delete(w.id);
    logger().info({ client: w.id, why }, 'client driver left');
    this.releaseWorkerHolds(w);
  }

  private reapIdle(): void {
    const limit = this.opts.idleWorkerTimeoutMs ?? 1000;
    const now = Date.now();
    const clientLimit = this.opts.clientTimeoutMs ?? 10_000;
    for (const w of this.workers.values()) {
      if (w.kind === 'driver' && now - w.lastSeen > clientLimit) this.clientGone(w, `silent for ${now - w.lastSeen} ms`);
    }
    while (this.idle.length > this.cpuSlots && now - this.idle[0]!.idleSince > limit) {
      this.stopWorker(this.idle.shift()!);
    }
  }

  private workerExited(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    this.workers.delete(w.id);
    const i = this.idle.indexOf(w);
    if (i !== -1) this.idle.splice(i, 1);
    this.dirtyWorkers.delete(w);
    if (this.closed) return;
    const detail = signal ? `killed by ${signal}` : `exit code ${code}`;
    if (w.actor) {
      this.releaseWorkerHolds(w);
      this.actorWorkerDied(w.actor, w, detail);
      this.scheduleDispatch();
      return;
    }
    const pipeline = w.pipeline;
    w.pipeline = [];
    for (let k = 0; k < pipeline.length; k++) {
      const t = pipeline[k]!;
      if (t.state !== 'dispatched' || t.worker !== w) continue;
      t.worker = undefined;
      if (k === 0) {
        if (t.cancelled) {
          this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: t.cancelled.forced }));
        } else if (t.retriesLeft !== 0) {
          if (t.retriesLeft > 0) t.retriesLeft--;
          t.attempt++;
          logger().warn({ task: t.spec.name, attempt: t.attempt, detail }, 'worker died while running a task; retrying');
          this.releaseItems(t);
          this.enqueue(t, true);
        } else {
          this.finishTask(t, errorObject({ type: 'WorkerCrashedError', taskName: t.spec.name, detail: `pid ${w.proc?.pid}, ${detail}`, attempts: t.attempt + 1 }));
        }
      } else if (t.cancelled) {
        this.finishTask(t, undefined);
      } else {
        this.enqueue(t, true);
      }
    }
    this.releaseWorkerHolds(w);
    // Tasks this worker submitted keep running (their refs are released above).
    if (w.lease) {
      const l = w.lease;
      w.lease = undefined;
      if (l.allocation && l.pool.pg?.state !== 'removed') l.pool.resources.release(l.allocation);
      const list = this.leasesByKey.get(l.key);
      if (list) list.splice(list.indexOf(l), 1);
    }
    this.scheduleDispatch();
  }

  /** Release what a dead worker or client held: refs, pins, unfinished arena allocations. */
  private releaseWorkerHolds(w: WorkerHandle): void {
    for (const id of w.heldRefs) this.objects.decRef(id);
    w.heldRefs.clear();
    for (const [id, n] of w.pins) for (let k = 0; k < n; k++) this.objects.unpin(id);
    w.pins.clear();
    for (const off of w.allocs) this.store.allocator.free(off);
    w.allocs.clear();
  }

  private releaseItems(t: TaskRecord): void {
    for (const id of t.items) this.objects.decRef(id);
    t.items = [];
  }

  // ---------------------------------------------------------------- socket

  private send(w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder): void {
    if (w.state === 'dead') return;
    const frames = encodeMessage(body, fb && !fb.empty ? fb.frames() : undefined);
    if (TRACE) process.stderr.write(`node -> ${w.id} ${JSON.stringify(body).slice(0, 300)}\n`);
    this.outbox.send([w.identity, ...frames]);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.router) {
        const identity = frames[0]!;
        try {
          this.handle(identity, frames.slice(1));
        } catch (err) {
          logger().error({ err, peer: identity.toString() }, 'rejected a message from a worker');
          const w = this.workers.get(identity.toString());
          if (w) this.send(w, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, message: String((err as Error).message) } });
        }
      }
    } catch (err) {
      if (!this.closed) logger().error({ err }, 'node socket receive loop ended');
    }
  }

  private handle(identity: Buffer, frames: Buffer[]): void {
    const { envelope, kind, payloads } = decodeMessage(frames);
    if (TRACE) process.stderr.write(`node <- ${identity.toString()} ${kind} ${JSON.stringify(envelope.toJSON()).slice(0, 300)}\n`);
    let w = this.workers.get(identity.toString());
    if (!w && kind === 'registerWorker' && envelope.registerWorker!.kind === 'driver') {
      // A client driver (init({address})) joins.
      const r = envelope.registerWorker!;
      w = new WorkerHandle(identity.toString(), undefined, '', 'driver');
      w.namespace = r.namespace || `anon-${r.jobId}`;
      w.jobId = r.jobId ?? '';
      this.workers.set(w.id, w);
      logger().info({ client: w.id, pid: r.pid, namespace: w.namespace }, 'client driver connected');
    }
    if (!w) {
      logger().warn({ peer: identity.toString(), kind }, 'message from an unknown worker; dropped');
      return;
    }
    switch (kind) {
      case 'registerWorker': {
        w.state = 'ready';
        this.send(w, {
          workerAccepted: {
            nodeId: this.nodeId,
            shmPath: w.kind === 'driver' ? `/proc/${process.pid}/fd/${this.store.arenaFd}` : '',
            shmSize: this.store.capacity,
            inlineThreshold: 100 * 1024,
            jobId: w.kind === 'driver' ? w.jobId : this.jobId,
            namespace: w.kind === 'driver' ? w.namespace : this.namespace,
          },
        });
        this.dirtyWorkers.add(w);
        this.scheduleFlush();
        return;
      }
      case 'taskResults':
        for (const r of envelope.taskResults!.results ?? []) this.onResult(w, r, payloads);
        this.scheduleDispatch();
        return;
      case 'generatorItems':
        for (const it of envelope.generatorItems!.items ?? []) {
          const t = this.tasks.get(it.taskId ?? '');
          const data = storedFromWire(it.item!, payloads);
          if (data.shm) w.allocs.delete(data.shm.offset);
          if (!t || t.state !== 'dispatched' || t.worker !== w) {
            this.store.release(data);
            continue;
          }
          const id = it.item!.objectId!;
          this.objects.incRef(id);
          t.items.push(id);
          this.objects.seal(id, data);
        }
        return;
      case 'submitTasks':
        for (const s of envelope.submitTasks!.tasks ?? []) this.submit(specFromWire(s, payloads), w);
        return;
      case 'putObjects':
        for (const od of envelope.putObjects!.objects ?? []) {
          const data = storedFromWire(od, payloads);
          if (data.shm) w.allocs.delete(data.shm.offset);
          this.objects.seal(od.objectId!, data);
        }
        return;
      case 'subscribeObjects':
        for (const id of envelope.subscribeObjects!.objectIds ?? []) {
          this.objects.whenReady(id, (e) => {
            if (w.state === 'dead') return;
            w.readyOut.push(e);
            this.dirtyWorkers.add(w);
            this.scheduleFlush();
          });
        }
        return;
      case 'allocRequest': {
        const req = envelope.allocRequest!;
        let reply: tsray.v1.IAllocReply;
        try {
          const off = this.store.allocate(Number(req.size));
          w.allocs.add(off);
          reply = { requestId: req.requestId, slice: { offset: off, length: Number(req.size) } };
        } catch (e) {
          reply = { requestId: req.requestId, error: e instanceof ObjectStoreFullError ? JSON.stringify({ requested: e.requested, capacity: e.capacity, used: e.used }) : String(e) };
        }
        this.send(w, { allocReply: reply });
        return;
      }
      case 'refUpdates': {
        const u = envelope.refUpdates!;
        for (const id of u.add ?? []) {
          if (!w.heldRefs.has(id)) {
            w.heldRefs.add(id);
            this.objects.incRef(id);
          }
        }
        for (const id of u.pin ?? []) {
          w.pins.set(id, (w.pins.get(id) ?? 0) + 1);
          this.objects.pin(id);
        }
        for (const id of u.unpin ?? []) {
          const n = w.pins.get(id) ?? 0;
          if (n <= 0) continue;
          if (n === 1) w.pins.delete(id);
          else w.pins.set(id, n - 1);
          this.objects.unpin(id);
        }
        for (const id of u.remove ?? []) {
          if (w.heldRefs.delete(id)) this.objects.decRef(id);
        }
        return;
      }
      case 'workerBlocked':
        this.onBlocked(w, envelope.workerBlocked!);
        return;
      case 'getActorRequest': {
        const q = envelope.getActorRequest!;
        let reply: tsray.v1.IGetActorReply;
        try {
          const info = this.lookupActor(q.name ?? '', q.namespace || this.namespaceOf(w));
          reply = { requestId: q.requestId, actorId: info.actorId, className: info.className, methods: [...info.methods], error: '' };
          // The reply carries a handle: count the requester as a holder until it says otherwise.
        } catch (e) {
          reply = { requestId: q.requestId, error: (e as Error).message };
        }
        this.send(w, { getActorReply: reply });
        return;
      }
      case 'killActor': {
        const k = envelope.killActor!;
        let error = '';
        try {
          this.killActor(k.actorId ?? '', k.noRestart !== false);
        } catch (e) {
          error = (e as Error).message;
        }
        if (k.requestId) this.send(w, { getActorReply: { requestId: k.requestId, actorId: k.actorId, error } });
        return;
      }
      case 'placementGroupRequest': {
        const q = envelope.placementGroupRequest!;
        let error = '';
        try {
          if (q.remove) this.removePlacementGroup(q.placementGroupId ?? '');
          else {
            const bundles = (q.bundles ?? []).map((b) => Object.fromEntries((b.resources ?? []).map((r) => [r.name ?? '', Number(r.units ?? 0) / 10_000])));
            this.createPlacementGroup(q.placementGroupId ?? '', bundles, q.strategy ?? 'PACK', q.name ?? '', q.detached === true);
          }
        } catch (e) {
          error = (e as Error).message;
          if (!q.remove) this.objects.seal(`${q.placementGroupId}.ready`, errorObject({ type: 'Other', name: 'PlacementGroupError', message: error }));
        }
        if (q.requestId) this.send(w, { getActorReply: { requestId: q.requestId, error } });
        return;
      }
      case 'heartbeat':
        w.lastSeen = Date.now();
        if (envelope.heartbeat!.goodbye) this.clientGone(w, 'said goodbye');
        return;
      case 'cancelRequest':
        this.cancel(envelope.cancelRequest!.objectId ?? '', envelope.cancelRequest!.force === true);
        return;
      case 'error':
        logger().error({ worker: w.id, error: envelope.error }, 'worker reported a protocol error');
        return;
      default:
        logger().warn({ worker: w.id, kind }, 'unexpected message kind from a worker; ignored');
    }
  }

  private onResult(w: WorkerHandle, r: tsray.v1.ITaskResult, payloads: Buffer[]): void {
    const t = this.tasks.get(r.taskId ?? '');
    const head = w.pipeline[0];
    if (head && head.spec.taskId === r.taskId) w.pipeline.shift();
    else {
      const i = w.pipeline.findIndex((x) => x.spec.taskId === r.taskId);
      if (i !== -1) w.pipeline.splice(i, 1);
    }
    const datas = (r.returns ?? []).map((od) => {
      const d = storedFromWire(od, payloads);
      if (d.shm) w.allocs.delete(d.shm.offset);
      return { id: od.objectId ?? '', d };
    });
    if (!t || t.worker !== w || t.state !== 'dispatched' || (r.attempt ?? 0) !== t.attempt) {
      for (const { d } of datas) this.store.release(d);
      this.afterWorkerProgress(w);
      return;
    }
    t.worker = undefined;
    const now = performance.now();
    const dur = now - Math.max(t.startedAt, w.lastResultAt);
    w.lastResultAt = now;
    const key = fnKey(t);
    const prev = this.avgDuration.get(key);
    this.avgDuration.set(key, prev === undefined ? dur : prev * 0.8 + dur * 0.2);
    const status = r.status ?? tsray.v1.TaskStatus.TASK_STATUS_OK;
    if (t.spec.actorCreation) {
      this.onActorCreated(t, status, datas);
      return;
    }
    if (t.cancelled) {
      for (const { d } of datas) this.store.release(d);
      this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: t.cancelled.forced }));
    } else if (status === tsray.v1.TaskStatus.TASK_STATUS_OK) {
      if (t.spec.streaming) {
        // The end object holds the items; then the task's own holds are dropped.
        const end = datas[0]!.d;
        end.contained = [...t.items];
        this.objects.seal(t.spec.returnIds[0]!, end);
        this.finishTask(t, undefined);
      } else {
        for (const { id, d } of datas) this.objects.seal(id, d);
        this.finishTask(t, undefined);
      }
    } else if (status === tsray.v1.TaskStatus.TASK_STATUS_ERROR) {
      const re = t.spec.retryExceptions;
      const name = r.errorName ?? '';
      const retry = t.retriesLeft !== 0 && (re === true || (Array.isArray(re) && re.includes(name)));
      if (retry) {
        for (const { d } of datas) this.store.release(d);
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        this.releaseItems(t);
        this.enqueue(t, true);
      } else {
        const err = datas[0]?.d ?? errorObject({ type: 'Other', name: 'TaskError', message: `task ${t.spec.name} failed without an error object` });
        if (t.spec.streaming) err.contained = [...t.items];
        this.finishTask(t, err);
        for (const { d } of datas.slice(1)) this.store.release(d);
      }
    } else {
      for (const { d } of datas) this.store.release(d);
      this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: false }));
    }
    if (t.actor) this.maybeStopActor(t.actor);
    this.afterWorkerProgress(w);
  }

  /**
   * The worker's running task waits in get/wait. As Ray does, its CPUs are given back while it waits
   * (so the tasks it waits for can run even on a full node) and the tasks queued behind it come back.
   */
  private onBlocked(w: WorkerHandle, b: tsray.v1.IWorkerBlocked): void {
    const returned = b.returnedTaskIds ?? [];
    for (let k = returned.length - 1; k >= 0; k--) {
      const t = this.tasks.get(returned[k]!);
      const i = t ? w.pipeline.indexOf(t) : -1;
      if (!t || i === -1) continue;
      w.pipeline.splice(i, 1);
      t.worker = undefined;
      if (t.cancelled) this.finishTask(t, undefined);
      else this.enqueue(t, true);
    }
    const l = w.lease;
    if (b.blocked) {
      w.blocked = true;
      if (l?.allocation && l.request.gpu === 0) {
        l.pool.resources.release(l.allocation);
        l.allocation = undefined;
      }
    } else {
      w.blocked = false;
      if (l && !l.allocation && l.request.gpu === 0) {
        // Take the CPUs again; if they are gone meanwhile, run on unaccounted (as Ray may oversubscribe).
        l.allocation = l.pool.resources.allocate(l.request) ?? undefined;
      }
    }
    this.scheduleDispatch();
  }

  private afterWorkerProgress(w: WorkerHandle): void {
    if (w.pipeline.length > 0 || !w.lease) return;
    const q = this.queues.get(w.lease.key);
    if (q && q.length > 0) return; // dispatch will feed it
    this.releaseLease(w);
  }

  // ---------------------------------------------------------------- stats / shutdown

  /** Numbers for tests and the state API. */
  stats(): { objects: number; sealed: number; storeUsed: number; storeCapacity: number; spilledBytes: number; workers: number; tasks: number } {
    return {
      objects: this.objects.size,
      sealed: this.objects.sealedCount,
      storeUsed: this.store.used,
      storeCapacity: this.store.capacity,
      spilledBytes: this.store.spilledBytes,
      workers: this.workers.size,
      tasks: this.tasks.size,
    };
  }

  /** Pids of live workers (for tests). */
  workerPids(): number[] {
    return [...this.workers.values()].filter((w) => w.proc).map((w) => w.proc!.pid);
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reaper);
    this.abort.abort();
    const procs = [...this.workers.values()].filter((w) => w.proc);
    for (const w of procs) {
      try {
        w.proc!.proc.stdin?.end();
      } catch {
        /* gone */
      }
      w.kill('SIGTERM');
    }
    const killer = setTimeout(() => {
      for (const w of procs) w.kill('SIGKILL');
    }, 2000);
    await Promise.all(procs.map((w) => w.proc!.exited()));
    clearTimeout(killer);
    this.outbox.close();
    this.router.close();
    await this.receiving?.catch(() => undefined);
    this.objects.clear();
    this.store.close();
  }
}

const viewRegistry = new FinalizationRegistry<{ node: NodeRuntime; id: string }>((h) => h.node.unpinView(h.id));

function storeErrorPayload(err: unknown): ErrorPayload {
  if (err instanceof ObjectStoreFullError) return { type: 'ObjectStoreFullError', requested: err.requested, capacity: err.capacity, used: err.used };
  return { type: 'Other', name: (err as Error).name ?? 'Error', message: String((err as Error).message ?? err) };
}

/** Python functions and classes are named `py:<module>`. */
function isPython(moduleUrl: string): boolean {
  return moduleUrl.startsWith('py:');
}

function unknownActor(actorId: string, className: string): ActorDeathInfo {
  return { actorId, className, reason: 'unknown_actor', detail: 'no such actor on this node (it never existed here, or its record is gone)' };
}

/** Protocol form of an actor creation. */
export function creationToWire(c: ActorCreation): tsray.v1.IActorCreationSpec {
  return {
    actorId: c.actorId,
    className: c.className,
    methods: c.methods,
    name: c.name,
    namespace: c.namespace,
    detached: c.detached,
    getIfExists: c.getIfExists,
    maxRestarts: c.maxRestarts,
    maxTaskRetries: c.maxTaskRetries,
    maxConcurrency: c.maxConcurrency,
    concurrencyGroups: c.concurrencyGroups,
    holdResources: [...c.hold].map(([name, units]) => ({ name, units })),
    isAsync: c.isAsync,
  };
}

/** Actor creation from its protocol form. */
export function creationFromWire(c: tsray.v1.IActorCreationSpec): ActorCreation {
  const hold = new Map<string, number>();
  for (const r of c.holdResources ?? []) hold.set(r.name ?? '', Number(r.units ?? 0));
  return {
    actorId: c.actorId ?? '',
    className: c.className ?? '',
    methods: c.methods ?? [],
    name: c.name ?? '',
    namespace: c.namespace ?? '',
    detached: c.detached === true,
    getIfExists: c.getIfExists === true,
    maxRestarts: c.maxRestarts ?? 0,
    maxTaskRetries: c.maxTaskRetries ?? 0,
    maxConcurrency: c.maxConcurrency ?? 1,
    concurrencyGroups: (c.concurrencyGroups ?? []).map((g) => ({ name: g.name ?? '', maxConcurrency: g.maxConcurrency ?? 1, methods: g.methods ?? [] })),
    hold,
    isAsync: c.isAsync === true,
  };
}

function fnKey(t: TaskRecord): string {
  return `${t.spec.fn.moduleUrl}#${t.spec.fn.key}`;
}

function errorObject(p: ErrorPayload): StoredObject {
  const inline = encodeErrorPayload(p);
  return { encoding: 'error', rawKind: '', inline, size: inline.length, contained: [] };
}

function cloneStored(d: StoredObject): StoredObject {
  return { ...d, contained: [...d.contained] };
}

/** Task id of a return / generator object id (`<taskId>.<n>` or `<taskId>.g<n>`). */
function taskIdOf(objectId: string): string | undefined {
  const i = objectId.lastIndexOf('.');
  return i > 0 ? objectId.slice(0, i) : undefined;
}

function specFromWire(s: tsray.v1.ITaskSpec, payloads: Buffer[]): SubmitSpec {
  const resources = new Map<string, number>();
  for (const r of s.resources ?? []) resources.set(r.name ?? '', Number(r.units ?? 0));
  const args: SubmitArg[] = (s.args ?? []).map((a) => {
    if (a.ref) return { kind: 'ref', id: a.ref };
    const d = storedFromWire(a.value!, payloads);
    return {
      kind: 'value',
      value: { encoding: d.encoding, rawKind: d.rawKind, bytes: d.inline ?? Buffer.alloc(0), containedRefs: d.contained },
    };
  });
  return {
    taskId: s.taskId ?? '',
    fn: { moduleUrl: s.function?.moduleUrl ?? '', key: s.function?.key ?? '', name: s.function?.name ?? '' },
    args,
    resources,
    numReturns: s.numReturns ?? 1,
    streaming: s.streaming === true,
    maxRetries: s.maxRetries ?? 3,
    retryExceptions: s.retryExceptions ? true : (s.retryExceptionNames ?? []).length > 0 ? [...s.retryExceptionNames!] : false,
    returnIds: s.returnIds ?? [],
    name: s.name ?? '',
    ...(s.actorCreation ? { actorCreation: creationFromWire(s.actorCreation) } : {}),
    ...(s.actorId ? { actorId: s.actorId, method: s.method ?? '', concurrencyGroup: s.concurrencyGroup ?? '' } : {}),
    ...(s.scheduling?.kind ? { scheduling: schedulingFromWire(s.scheduling) } : {}),
    ...(s.xlang ? { xlang: true } : {}),
  };
}

/** Protocol form of a scheduling strategy. */
export function schedulingToWire(sc: SchedulingSpec): tsray.v1.ISchedulingStrategy {
  return { kind: sc.kind, placementGroupId: sc.pgId, bundleIndex: sc.bundleIndex, captureChildTasks: sc.capture, nodeId: sc.nodeId, soft: sc.soft };
}

/** Scheduling strategy from its protocol form. */
export function schedulingFromWire(w: tsray.v1.ISchedulingStrategy): SchedulingSpec {
  return {
    kind: (w.kind ?? 'SPREAD') as SchedulingSpec['kind'],
    pgId: w.placementGroupId ?? '',
    bundleIndex: w.bundleIndex ?? -1,
    capture: w.captureChildTasks === true,
    nodeId: w.nodeId ?? '',
    soft: w.soft === true,
  };
}
