/**
 * The node's task manager: task records, dependency tracking, the per-shape queues, dispatch onto
 * leased workers (pipelined), results, retries and cancellation. Workers, actors, placement groups and
 * other nodes are reached through {@link TaskManagerHost}.
 * @internal
 */
import { pythonView } from '../python-view.js';
import { PythonInterpreterCheck } from './python-check.js';
import { type PlacementGroupStrategy, ResourceRequest } from '@tsray/scheduler';
import { tsray, type EnvelopeBody } from '@tsray/protocol';
import type { ErrorPayload } from '../error-payload.js';
import { RuntimeStateError, type ActorDeathInfo } from '../errors.js';
import { logger, warnUser } from '../logger.js';
import type { SubmitArg, SubmitSpec } from '../runtime.js';
import type { ResolvedScheduling } from '../scheduling-strategy.js';
import { encodingToWire, FrameBuilder, storedFromWire, storedToWire } from '../wire.js';
import { type ObjectEntry, type ObjectTable, type StoredObject, storedObject } from './object-table.js';
import { Deque } from '../deque.js';
import { INLINE_THRESHOLD, type NodeStore } from './store.js';
import type { EnvEntry, NodeRuntimeEnvs } from './runtime-envs.js';
import type { ActorRecord, Lease, PgRecord, Pool, TaskRecord, WorkerHandle } from './records.js';
import { cloneStored, crashDetail, ENC_ERROR, errorObject, isPython, storeErrorPayload, taskIdOf, unknownActor } from './node-support.js';
import { creationToWire, schedulingToWire } from './task-codec.js';
import { TaskTimeline } from './task-timeline.js';

/** What the task manager needs from the rest of the node (NodeRuntime in production, fakes in tests). */
export interface TaskManagerHost {
  readonly nodeId: string;
  /** The embedded driver's job (tasks of other jobs get queues and workers of their own). */
  readonly jobId: string;
  /** The embedded driver's namespace. */
  readonly namespace: string;
  /** Python interpreter for Python workers (checked once before the first Python task). */
  readonly python: string;
  readonly objects: ObjectTable;
  readonly store: Pick<NodeStore, 'bytes' | 'store' | 'release'>;
  /** The node was shut down. */
  readonly closed: boolean;
  /** The node belongs to a multi-node cluster (it has a link to the GCS). */
  readonly inCluster: boolean;
  /** The node's own resources (tasks outside placement groups take from it). */
  readonly nodePool: Pool;
  readonly runtimeEnvs: Pick<NodeRuntimeEnvs, 'request' | 'hold' | 'drop'>;

  // ---- workers (WorkerPool)
  /** Leases by queue key (the worker pool adds and removes them; dispatch reads and extends them). */
  readonly leasesByKey: Map<string, Lease[]>;
  /** Workers, drivers and peers connected now. */
  readonly workerCount: number;
  /** Whole CPUs of the node: tasks that hold no CPU open new workers only up to this count. */
  readonly cpuSlots: number;
  /** A lease for the queue `key` whose head is `head`, or undefined when resources or workers are short. */
  newLease(key: string, head: TaskRecord): Lease | undefined;
  /** Give a worker's lease back (the worker goes idle). */
  releaseLease(w: WorkerHandle): void;
  send(w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder): void;
  /** Send objects to a worker that cannot map this node's shared memory. */
  sendObjectsRemote(w: WorkerHandle, entries: ObjectEntry[]): void;
  /** The job ended on this node (its late tasks are cancelled). */
  jobEnded(jobId: string): boolean;

  // ---- actors (ActorManager)
  namespaceOf(owner: WorkerHandle): string;
  /** Register the actor of a creation task (undefined: the task was answered already). */
  registerActor(t: TaskRecord, owner: WorkerHandle | undefined): ActorRecord | undefined;
  /** The local actor record for an actor or alias id. */
  actorFor(actorId: string): ActorRecord | undefined;
  queueActorStart(rec: ActorRecord): void;
  pumpActor(rec: ActorRecord): void;
  /** Start actors waiting for resources (if any). */
  startPendingActors(): void;
  actorDead(rec: ActorRecord, info: ActorDeathInfo): void;
  onActorCreated(t: TaskRecord, status: tsray.v1.TaskStatus, datas: { id: string; d: StoredObject }[]): void;
  maybeStopActor(rec: ActorRecord): void;

  // ---- placement groups (PlacementGroupManager)
  placementGroup(id: string): PgRecord | undefined;
  /** Place groups waiting for resources (if any). */
  placePendingGroups(): void;

  // ---- other nodes (ClusterForwarder)
  /** Why no node can ever take work of this strategy (hard affinity to a lost node, no node with the hard labels); undefined: some can. */
  unschedulable(s: ResolvedScheduling): string | undefined;
  /** A call to an actor unknown here: resolve its owner through the GCS, then submit. */
  resolveRemoteActor(spec: SubmitSpec, owner: WorkerHandle | undefined): void;
  /** Another node to run a task on (undefined: run it here). */
  placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined;
  /** True when `t`'s ref arguments are all here; else pulls those located on other nodes and calls `then` once they are. */
  argsHere(t: TaskRecord, then: () => void): boolean;
  forwardTask(t: TaskRecord, target: string): void;
  forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void;
  /** Offer what is left of a queue to other nodes (nothing on a single node). */
  spillQueue(q: Deque<TaskRecord>): void;
  /** Ask the node a task was forwarded to to cancel it. */
  cancelRemote(nodeId: string, objectId: string, force: boolean): void;
}

/** Task records, queues and dispatch of one node. */
export class TaskManager {
  /** Live tasks by id (done tasks are dropped). */
  readonly tasks = new Map<string, TaskRecord>();
  /** Queued tasks by key: request shape, pool, language, runtime env and job. */
  readonly queues = new Map<string, Deque<TaskRecord>>();
  /** Queue keys already checked for feasibility (cleared when the cluster changes). */
  readonly feasibilityChecked = new Set<string>();
  /** Workers with tasks or objects to send at the next flush. */
  readonly dirtyWorkers = new Set<WorkerHandle>();
  private readonly requestCache = new Map<string, ResourceRequest>();
  /**
   * Average run time (ms) of each function's tasks, for the pipelining depth: by module URL, then
   * export key (two lookups of the decoded strings instead of a key string built, flattened and hashed
   * per result). Actor calls are not pipelined by it and not measured.
   */
  private readonly avgDuration = new Map<string, Map<string, number>>();
  private dispatchScheduled = false;
  private flushScheduled = false;
  private readonly pythonCheck = new PythonInterpreterCheck(() => this.host.python);

  readonly timeline = new TaskTimeline(() => this.host.nodeId); // recent finished tasks (`tsray timeline`)
  constructor(private readonly host: TaskManagerHost) {}

  private requestFor(spec: SubmitSpec): ResourceRequest {
    if (spec.request) return spec.request;
    let key = '';
    for (const [k, v] of spec.resources) key += `${k}:${v};`;
    let r = this.requestCache.get(key);
    if (!r) this.requestCache.set(key, (r = ResourceRequest.fromUnits(spec.resources)));
    return r;
  }

  /** A new task from the driver (owner undefined), a worker, a client driver or a peer node. */
  submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void {
    if (this.host.closed) throw new RuntimeStateError('the node runtime was shut down');
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
      ranOn: undefined,
      namespace: owner ? this.host.namespaceOf(owner) : this.host.namespace,
      jobId: spec.jobId || (owner && owner.kind !== 'peer' ? owner.jobId : '') || this.host.jobId,
      actor: undefined,
      pool: undefined,
      remote: undefined,
      remoteLeft: 0,
    };
    this.tasks.set(spec.taskId, t);
    if (spec.actorCreation) {
      const rec = this.host.registerActor(t, owner);
      if (!rec) return;
      t.actor = rec;
    } else if (spec.actorId) {
      const rec = this.host.actorFor(spec.actorId);
      if (!rec && this.host.inCluster) {
        // A handle from another node: find its owner through the GCS, then submit in order.
        this.tasks.delete(spec.taskId);
        this.host.resolveRemoteActor(spec, owner);
        return;
      }
      if (!rec || rec.state === 'dead') {
        this.finishTask(t, errorObject({ type: 'ActorDiedError', info: rec?.death ?? unknownActor(spec.actorId, spec.fn.name) }));
        return;
      }
      t.actor = rec;
      t.retriesLeft = rec.creation.maxTaskRetries;
      rec.calls.push(t);
    }
    if (this.holdArgs(t) && t.depsLeft === 0) this.enqueue(t);
  }

  /**
   * Hold the task's arguments and count the refs not sealed yet (each calls depReady when it is).
   * False: the task was finished already (an upstream error, or a large argument did not fit the store).
   */
  private holdArgs(t: TaskRecord): boolean {
    const { objects, store } = this.host;
    const args = t.spec.args;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a.kind === 'ref') {
        objects.incRef(a.id);
        t.holds.push(a.id);
        const e = objects.get(a.id)!;
        if (e.data === undefined && !e.located) {
          t.depsLeft++;
          // Located on other nodes is enough: the task may run there (a local run pulls first: argsHere).
          objects.whenAvailable(a.id, (entry) => this.depReady(t, entry));
        } else if (e.data?.encoding === ENC_ERROR) {
          this.failFromUpstream(t, e.data);
          return false;
        }
      } else if (a.value.bytes.byteLength > INLINE_THRESHOLD) {
        // Large arguments go to the object store (as Ray puts them into plasma) and travel as refs.
        const id = `${t.spec.taskId}.a${i}`;
        objects.incRef(id);
        t.holds.push(id);
        try {
          objects.seal(id, store.store(a.value));
        } catch (err) {
          this.finishTask(t, errorObject(storeErrorPayload(err)));
          return false;
        }
        args[i] = { kind: 'ref', id };
      } else {
        for (const c of a.value.containedRefs) {
          objects.incRef(c);
          t.holds.push(c);
        }
      }
    }
    return true;
  }

  private depReady(t: TaskRecord, e: ObjectEntry): void {
    if (t.state !== 'deps') return;
    if (e.data?.encoding === ENC_ERROR) {
      this.failFromUpstream(t, e.data);
      return;
    }
    if (--t.depsLeft === 0) this.enqueue(t);
  }

  private failFromUpstream(t: TaskRecord, errData: StoredObject): void {
    const bytes = this.host.store.bytes(errData);
    this.finishTask(t, storedObject('error', '', bytes.length, [], Buffer.from(bytes), undefined, undefined));
  }

  /** Cancel the task that returns object `id` (force: kill its worker if it is running). */
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
      if (sc?.type === 'PLACEMENT_GROUP') {
        const pg = this.host.placementGroup(sc.placementGroupId);
        const i = pg ? pg.waiting.indexOf(t) : -1;
        if (i !== -1) pg!.waiting.splice(i, 1);
      }
      this.finishTask(t, errorObject(payload));
      return;
    }
    if (t.remote) {
      this.host.cancelRemote(t.remote, id, force);
      this.sealReturns(t, errorObject(payload));
      return;
    }
    // Dispatched to a worker.
    const w = t.worker!;
    const running = w.pipeline.peek() === t;
    if (force && running) {
      w.kill('SIGKILL');
      return;
    }
    // The worker drops it (queued there) or aborts its signal (running); its result will be ignored.
    this.host.send(w, { cancelTask: { taskId: t.spec.taskId, force } });
    this.sealReturns(t, errorObject(payload));
  }

  /**
   * The pool a task or actor takes resources from, per its strategy. Undefined: it must wait (its
   * placement group is not created yet; it was parked on the group) or it failed.
   */
  private poolFor(t: TaskRecord): Pool | undefined {
    const sc = t.spec.scheduling;
    if (!sc || sc.type !== 'PLACEMENT_GROUP') {
      const why = sc ? this.host.unschedulable(sc) : undefined;
      if (why) {
        this.finishTask(t, errorObject({ type: 'Other', name: 'TaskUnschedulableError', message: `task ${t.spec.name} ${why}` }));
        // An actor that can never be placed is dead: its calls reject instead of waiting forever.
        if (t.actor && t.spec.actorCreation)
          this.host.actorDead(t.actor, { actorId: t.actor.id, className: t.actor.creation.className, reason: 'unschedulable', detail: why });
        return undefined;
      }
      return this.host.nodePool;
    }
    const bundleIndex = sc.bundleIndex ?? -1;
    const pg = this.host.placementGroup(sc.placementGroupId);
    if (!pg || pg.state === 'removed') {
      this.finishTask(
        t,
        errorObject({
          type: 'Other',
          name: 'PlacementGroupError',
          message: `task ${t.spec.name} targets placement group ${sc.placementGroupId}, which ${pg ? 'was removed' : 'does not exist'}`,
        }),
      );
      return undefined;
    }
    if (pg.state === 'pending' || pg.state === 'rescheduling') {
      pg.waiting.push(t);
      return undefined;
    }
    const req = t.spec.actorCreation ? (t.actor?.schedule ?? t.request) : t.request;
    if (bundleIndex >= pg.pools.length) {
      this.finishTask(
        t,
        errorObject({
          type: 'Other',
          name: 'PlacementGroupError',
          message: `bundleIndex ${bundleIndex} is out of range: placement group ${pg.id} has ${pg.pools.length} bundle(s)`,
        }),
      );
      return undefined;
    }
    if (bundleIndex >= 0) return pg.pools[bundleIndex];
    return pg.pools.find((p) => p.resources.canFit(req)) ?? pg.pools.find((p) => p.resources.isFeasible(req)) ?? pg.pools[0];
  }

  /**
   * True when the task's runtime env is ready (it is held for the task). Else the task waits for the
   * build and is enqueued again; a failed build fails the task (an actor creation: the actor dies)
   * with RuntimeEnvSetupError.
   */
  private awaitRuntimeEnv(t: TaskRecord, front: boolean): boolean {
    const ready = this.host.runtimeEnvs.request(t.spec.runtimeEnv!, t.jobId, (entry, error) => {
      if (t.state === 'done' || this.host.closed) {
        if (entry) this.host.runtimeEnvs.drop(entry);
        return;
      }
      if (entry) {
        this.useRuntimeEnv(t, entry);
        this.enqueue(t, front);
        return;
      }
      const err = errorObject(error!);
      if (t.actor && t.spec.actorCreation) {
        this.finishTask(t, err);
        this.host.actorDead(t.actor, {
          actorId: t.actor.id,
          className: t.actor.creation.className,
          reason: 'runtime_env',
          detail: `its runtime env could not be set up: ${error!.type === 'RuntimeEnvSetupError' ? `${error!.message}${error!.output ? `: ${error!.output.trim().split('\n').slice(-3).join(' | ')}` : ''}` : ''}`,
        });
      } else this.finishTask(t, err);
    });
    if (ready) this.useRuntimeEnv(t, ready);
    return ready !== undefined;
  }

  private useRuntimeEnv(t: TaskRecord, entry: EnvEntry): void {
    t.env = entry;
    if (t.actor && t.spec.actorCreation && !t.actor.env) {
      this.host.runtimeEnvs.hold(entry);
      t.actor.env = entry;
    }
  }

  /**
   * A task whose arguments are ready: place it (its pool, another node, its actor) or queue it for a
   * worker. `front`: a retried or returned task goes before the others of its queue.
   */
  enqueue(t: TaskRecord, front = false): void {
    const host = this.host;
    if (host.jobEnded(t.jobId)) {
      this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: true }));
      return;
    }
    if (isPython(t.spec.fn.moduleUrl) && t.state === 'deps') {
      // The first Python task starts the node's one interpreter check; tasks wait for it, then come back here.
      const check = this.pythonCheck.result(() => {
        if (!host.closed && t.state !== 'done') this.enqueue(t, front);
      });
      if (!check) return;
      const problem = check.problem;
      if (problem) {
        const err = errorObject({ type: 'Other', name: 'PythonEnvironmentError', message: `task ${t.spec.name}: ${problem}` });
        if (t.actor && t.spec.actorCreation) {
          this.finishTask(t, err);
          host.actorDead(t.actor, { actorId: t.actor.id, className: t.actor.creation.className, reason: 'crashed', detail: problem });
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
    if (t.pool.remoteNode !== undefined && (!t.actor || t.spec.actorCreation)) {
      // A bundle reserved on another node: the work runs there, in that node's part of the group.
      const sc = t.spec.scheduling as PlacementGroupStrategy;
      t.spec = { ...t.spec, scheduling: { ...sc, bundleIndex: t.pool.remoteIndex ?? 0 } };
      if (t.actor) host.forwardActorCreation(t.actor, t, t.pool.remoteNode);
      else host.forwardTask(t, t.pool.remoteNode);
      return;
    }
    if (host.inCluster && !t.pool.pg && (!t.actor || t.spec.actorCreation)) {
      const target = host.placeRemote(t, t.actor ? t.actor.schedule : t.request);
      if (target) {
        if (t.actor) host.forwardActorCreation(t.actor, t, target);
        else host.forwardTask(t, target);
        return;
      }
    }
    if (host.inCluster && t.actor?.remoteNode === undefined && !host.argsHere(t, () => this.enqueue(t, front))) return;
    // The task's runtime env is built (once per node) before a worker starts for it; the task waits, not the node.
    if (t.spec.runtimeEnv && !t.env && !this.awaitRuntimeEnv(t, front)) return;
    if (t.actor) {
      t.state = 'queued';
      if (t.spec.actorCreation) host.queueActorStart(t.actor);
      else host.pumpActor(t.actor);
      return;
    }
    t.state = 'queued';
    const key = this.queueKey(t, t.pool);
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = new Deque()));
    if (front) q.unshift(t);
    else q.push(t);
    this.warnIfInfeasible(key, `task ${t.spec.name}`, t.request, t.pool);
    this.scheduleDispatch();
  }

  /**
   * The queue of a task: tasks of one key share leases, so the key holds everything a worker is
   * chosen by — request shape, pool, language, runtime env and job (a job's tasks never run on
   * another job's worker).
   */
  private queueKey(t: TaskRecord, pool: Pool): string {
    const lang = (isPython(t.spec.fn.moduleUrl) ? '|py' : '') + (t.env ? `|env:${t.env.hash}` : '') + (t.jobId !== this.host.jobId ? `|job:${t.jobId}` : '');
    return (pool.key ? `${t.request.key}|${pool.key}` : t.request.key) + lang;
  }

  /**
   * Warn once per request shape and pool when the pool can never provide the request. Total
   * resources of a pool do not change, so each key is checked once (not on every enqueue).
   */
  warnIfInfeasible(key: string, what: string, request: ResourceRequest, pool: Pool): void {
    if (this.feasibilityChecked.has(key)) return;
    this.feasibilityChecked.add(key);
    if (pool.resources.isFeasible(request)) return;
    const where = pool.pg ? `bundle ${pool.bundleIndex} of placement group ${pool.pg.id}` : 'no node';
    const has = JSON.stringify(Object.fromEntries([...pool.resources.total].map(([k, v]) => [k, v / 10_000])));
    const msg =
      `tsray: ${what} needs ${JSON.stringify(request.toJSON())} but ${where} can ever provide ` +
      `${pool.resources.missing(request).join(', ')} (${pool.pg ? 'the bundle' : `node ${this.host.nodeId}`} has ${has}); ` +
      `it stays pending${pool.pg ? '' : ' until such a node joins'}`;
    warnUser(msg, { what, request: request.toJSON() });
  }

  /** Dispatch at the end of this turn (once, however many tasks arrive). */
  scheduleDispatch(): void {
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
    const avg = this.avgDuration.get(t.spec.fn.moduleUrl)?.get(t.spec.fn.key);
    if (avg === undefined || avg > 5) return 1;
    return avg > 1 ? 8 : 64;
  }

  private dispatch(): void {
    const host = this.host;
    if (host.closed) return;
    host.placePendingGroups();
    host.startPendingActors();
    for (const [key, q] of this.queues) {
      if (q.length === 0) continue;
      const request = q.peek()!.request;
      let leases = host.leasesByKey.get(key);
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
        if (best === undefined || (best.worker.pipeline.length > 0 && (request.cpu > 0 || host.workerCount < host.cpuSlots))) {
          const fresh = host.newLease(key, q.peek()!);
          if (fresh) {
            if (!leases) host.leasesByKey.set(key, (leases = []));
            leases.push(fresh);
            best = fresh;
          }
        }
        if (best === undefined) break;
        this.assign(q.shift()!, best.worker);
      }
      if (q.length > 0) host.spillQueue(q);
    }
    this.scheduleFlush();
  }

  /** Put a task into a worker's pipeline (sent at the next flush). */
  assign(t: TaskRecord, w: WorkerHandle): void {
    t.state = 'dispatched';
    t.worker = w;
    t.startedAt = performance.now();
    this.timeline.started(t, w);
    w.pipeline.push(t);
    w.unsent.push(t);
    this.dirtyWorkers.add(w);
  }

  /** Flush at the end of this turn when a worker has something to send. */
  scheduleFlush(): void {
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
        if (tasks.length > 0) this.host.send(w, { executeTasks: { tasks } }, fb);
      }
      if (w.readyOut.length > 0 && w.remote) {
        const out = w.readyOut;
        w.readyOut = [];
        this.host.sendObjectsRemote(w, out);
      } else if (w.readyOut.length > 0) {
        const fb = new FrameBuilder();
        const objects = w.readyOut.map((e) => this.deliver(e, w, fb));
        w.readyOut = [];
        this.host.send(w, { objectsReady: { objects } }, fb);
      }
    }
  }

  /** ObjectData for sending an object to a worker; arena objects get a delivery pin owned by the worker. */
  private deliver(e: ObjectEntry, w: WorkerHandle, fb: FrameBuilder): tsray.v1.IObjectData {
    const d = w.language === 'python' ? pythonView(e.id, e.data!, () => this.host.store.bytes(e.data!)) : e.data!;
    if (d.shm) {
      this.host.objects.pin(e.id);
      w.pins.set(e.id, (w.pins.get(e.id) ?? 0) + 1);
    }
    return storedToWire(e.id, d, fb);
  }

  private execution(t: TaskRecord, w: WorkerHandle, fb: FrameBuilder): tsray.v1.ITaskExecution {
    const args: tsray.v1.IObjectData[] = [];
    for (const a of t.spec.args) {
      if (a.kind === 'ref') args.push(this.deliver(this.host.objects.get(a.id)!, w, fb));
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
      jobId: this.host.jobId,
      nodeId: this.host.nodeId,
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

  /** Seal the task's returns not sealed yet with (copies of) `data`. */
  sealReturns(t: TaskRecord, data: StoredObject): void {
    for (const id of t.spec.returnIds) {
      if (this.host.objects.get(id)?.data !== undefined) continue;
      this.host.objects.seal(id, cloneStored(data));
    }
  }

  /** A task reached its final state: seal its returns with `data` (if given) and drop its holds. */
  finishTask(t: TaskRecord, data: StoredObject | undefined): void {
    if (t.state === 'done') return;
    t.state = 'done';
    this.timeline.record(t, data);
    if (t.actor && !t.spec.actorCreation) {
      t.actor.calls.remove(t);
    }
    if (data) this.sealReturns(t, data);
    if (t.env) {
      this.host.runtimeEnvs.drop(t.env);
      t.env = undefined;
    }
    this.tasks.delete(t.spec.taskId);
    const { objects } = this.host;
    for (const id of t.holds) objects.decRef(id);
    t.holds = [];
    for (const id of t.items) objects.decRef(id);
    t.items = [];
  }

  /** Drop the generator items a task sealed so far (it runs again from the start). */
  private releaseItems(t: TaskRecord): void {
    for (const id of t.items) this.host.objects.decRef(id);
    t.items = [];
  }

  /**
   * A task worker died: its running task is retried while retries are left (else it fails with
   * WorkerCrashedError, or TaskCancelledError when it was cancelled); the tasks queued behind it go
   * back to the front of their queues.
   */
  onWorkerDied(w: WorkerHandle, detail: string): void {
    const pipeline = w.pipeline.drain();
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
          this.finishTask(t, errorObject({ type: 'WorkerCrashedError', taskName: t.spec.name, detail: crashDetail(w, detail), attempts: t.attempt + 1 }));
        }
      } else if (t.cancelled) {
        this.finishTask(t, undefined);
      } else {
        this.enqueue(t, true);
      }
    }
  }

  /** A worker's result for a task: seal the returns, retry on a listed exception, or fail the task. */
  onResult(w: WorkerHandle, r: tsray.v1.ITaskResult, payloads: Buffer[]): void {
    const t = this.tasks.get(r.taskId ?? '');
    if (!t || !w.pipeline.remove(t)) w.pipeline.removeById(r.taskId ?? '');
    const datas = (r.returns ?? []).map((od) => {
      const d = storedFromWire(od, payloads);
      if (d.shm) w.allocs.delete(d.shm.offset);
      return { id: od.objectId ?? '', d };
    });
    if (!t || t.worker !== w || t.state !== 'dispatched' || (r.attempt ?? 0) !== t.attempt) {
      for (const { d } of datas) this.host.store.release(d);
      this.afterWorkerProgress(w);
      return;
    }
    t.worker = undefined;
    const now = performance.now();
    const dur = now - Math.max(t.startedAt, w.lastResultAt);
    w.lastResultAt = now;
    if (!t.spec.actorId && !t.spec.actorCreation) this.recordDuration(t, dur);
    const status = r.status ?? tsray.v1.TaskStatus.TASK_STATUS_OK;
    if (t.spec.actorCreation) {
      this.host.onActorCreated(t, status, datas);
      return;
    }
    this.settle(t, status, r.errorName ?? '', datas);
    if (t.actor) this.host.maybeStopActor(t.actor);
    this.afterWorkerProgress(w);
  }

  private recordDuration(t: TaskRecord, dur: number): void {
    const { moduleUrl, key } = t.spec.fn;
    let byKey = this.avgDuration.get(moduleUrl);
    if (!byKey) this.avgDuration.set(moduleUrl, (byKey = new Map()));
    const prev = byKey.get(key);
    byKey.set(key, prev === undefined ? dur : prev * 0.8 + dur * 0.2);
  }

  /** The end of a task run (not an actor creation) with its status and returned objects. */
  private settle(t: TaskRecord, status: tsray.v1.TaskStatus, errorName: string, datas: { id: string; d: StoredObject }[]): void {
    const { objects, store } = this.host;
    if (t.cancelled) {
      for (const { d } of datas) store.release(d);
      this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: t.cancelled.forced }));
    } else if (status === tsray.v1.TaskStatus.TASK_STATUS_OK) {
      if (t.spec.streaming) {
        // The end object holds the items; then the task's own holds are dropped.
        const end = datas[0]!.d;
        end.contained = [...t.items];
        objects.seal(t.spec.returnIds[0]!, end);
        this.finishTask(t, undefined);
      } else {
        for (const { id, d } of datas) objects.seal(id, d);
        this.finishTask(t, undefined);
      }
    } else if (status === tsray.v1.TaskStatus.TASK_STATUS_ERROR) {
      const re = t.spec.retryExceptions;
      const retry = t.retriesLeft !== 0 && (re === true || (Array.isArray(re) && re.includes(errorName)));
      if (retry) {
        for (const { d } of datas) store.release(d);
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        this.releaseItems(t);
        this.enqueue(t, true);
      } else {
        const err = datas[0]?.d ?? errorObject({ type: 'Other', name: 'TaskError', message: `task ${t.spec.name} failed without an error object` });
        if (t.spec.streaming) err.contained = [...t.items];
        this.finishTask(t, err);
        for (const { d } of datas.slice(1)) store.release(d);
      }
    } else {
      for (const { d } of datas) store.release(d);
      this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: false }));
    }
  }

  /**
   * The worker's running task waits in get/wait. As Ray does, its CPUs are given back while it waits
   * (so the tasks it waits for can run even on a full node) and the tasks queued behind it come back.
   */
  onBlocked(w: WorkerHandle, b: tsray.v1.IWorkerBlocked): void {
    const returned = b.returnedTaskIds ?? [];
    for (let k = returned.length - 1; k >= 0; k--) {
      const t = this.tasks.get(returned[k]!);
      if (!t || !w.pipeline.remove(t)) continue;
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
    this.host.releaseLease(w);
  }
}
