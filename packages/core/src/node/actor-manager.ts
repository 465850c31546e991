/**
 * The node's actor manager: actor records, creation (a dedicated worker per actor, or another node),
 * call ordering, restarts, names per namespace, out-of-scope stops and kills, and this node's part of
 * the GCS actor directory (registration, state updates, lookups of actors other nodes own). Actors
 * other nodes own are called through proxies that send straight to the host node (direct calls,
 * numbered per caller; see docs/architecture.md "Direct actor calls").
 * @internal
 */
import { ResourceRequest } from '@tsray/scheduler';
import { tsray, type EnvelopeBody } from '@tsray/protocol';
import { Deque } from '../deque.js';
import { decodeErrorPayload } from '../error-payload.js';
import { ActorDiedError, ActorNameTakenError, ActorNotFoundError, GcsUnavailableError, type ActorDeathInfo } from '../errors.js';
import { logger } from '../logger.js';
import type { ActorCreation, ActorInfoData, SubmitSpec } from '../runtime.js';
import type { ObjectTable, StoredObject } from './object-table.js';
import type { ActorCallCounters, ActorRecord, Pool, TaskRecord, WorkerHandle } from './records.js';
import type { EnvEntry } from './runtime-envs.js';
import type { NodeStore } from './store.js';
import { errorObject, isPython, restartingError, restartTaskId, stderrHint, unknownActor } from './node-support.js';
import type { ActorDirectoryEntry, ActorUpdateFields } from '../cluster/control-plane.js';
import type { GcsClient } from '../cluster/gcs-client.js';

/** A connection to another node, as far as actors use it. */
export interface ActorPeer {
  send(body: EnvelopeBody): void;
}

/** What the actor manager needs from the rest of the node (NodeRuntime in production, fakes in tests). */
export interface ActorManagerHost {
  readonly nodeId: string;
  /** Namespace of the node's embedded driver (the default). */
  readonly namespace: string;
  readonly objects: Pick<ObjectTable, 'incRef' | 'decRef' | 'seal'>;
  readonly store: Pick<NodeStore, 'bytes' | 'release'>;
  /** The node's own resource pool (actors not in a placement group). */
  readonly nodePool: Pool;
  /** The node's live task records by task id (creation tasks of restarts are added here). */
  readonly tasks: Map<string, TaskRecord>;
  /** The link to the GCS and peer nodes (multi-node only). */
  readonly link:
    | { readonly gcs: Pick<GcsClient, 'registerActor' | 'updateActor' | 'lookupActor'>; existingPeer(nodeId: string): ActorPeer | undefined }
    | undefined;
  /** The cluster view (an actor that does not fit here may be placed on another node). */
  readonly cluster: { readonly aliveCount: number };
  readonly runtimeEnvs: { drop(entry: EnvEntry): void };
  /** Submit a task (creation or call) as if it came from `owner`. */
  submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void;
  /** A task reached its final state: seal its returns with `data` (if given) and drop its holds. */
  finishTask(t: TaskRecord, data: StoredObject | undefined): void;
  enqueue(t: TaskRecord, front?: boolean): void;
  warnIfInfeasible(key: string, what: string, request: ResourceRequest, pool: Pool): void;
  scheduleDispatch(): void;
  scheduleFlush(): void;
  /** Put a task on a worker's pipeline (sent at the next flush). */
  assign(t: TaskRecord, w: WorkerHandle): void;
  startWorker(gpuKey: string, gpuIds: readonly string[], jobId: string, python?: boolean, runtimeEnv?: EnvEntry): WorkerHandle;
  stopWorker(w: WorkerHandle): void;
  /** Another node that can run `t` now, if any. */
  placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined;
  forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void;
  forwardTask(t: TaskRecord, target: string): void;
  /** A connection to another node (made if needed). */
  peerFor(nodeId: string): ActorPeer;
  /** True when `nodeId` is another node of the cluster that this node sees alive. */
  isAliveNode(nodeId: string): boolean;
}

/** Actors of one node: their records, names and aliases, and the actors waiting to start. */
export class ActorManager {
  /** Actor records by id (owned here, placed elsewhere, or proxies of actors other nodes own). */
  readonly actors = new Map<string, ActorRecord>();
  /** `${namespace}\0${name}` -> actor id. */
  readonly names = new Map<string, string>();
  /** Handle ids created with getIfExists -> the existing actor's id. */
  readonly aliases = new Map<string, string>();
  /** Actors waiting for resources to start on this node, in order. */
  readonly pendingActors: ActorRecord[] = [];
  /** Calls to actors not known here yet (resolving through the GCS), in order. */
  readonly unresolvedCalls = new Map<string, TaskRecord[]>();
  /** Named actors whose registration the GCS has not answered yet: they start after it did. */
  private readonly registering = new Set<string>();
  /** Actor-call counters of this node (state API `nodeCounters()`). */
  readonly counters: ActorCallCounters = { actorCallsRelayed: 0, actorCallsSentDirect: 0, actorCallsFromPeers: 0, actorCallsOutOfOrder: 0 };

  constructor(private readonly host: ActorManagerHost) {}

  /** Namespace of a connection: a client driver's own, else the running task's or hosted actor's. */
  namespaceOf(w: WorkerHandle): string {
    if (w.kind !== 'worker') return w.namespace || this.host.namespace;
    return w.pipeline.peek()?.namespace ?? w.actor?.namespace ?? this.host.namespace;
  }

  /** Create an actor from the embedded driver; the id of the new (or, with getIfExists, existing) actor. */
  createActor(spec: SubmitSpec): string {
    const c = spec.actorCreation!;
    const ns = c.namespace || this.host.namespace;
    if (c.name) {
      const existing = this.liveActorByName(ns, c.name);
      if (existing) {
        if (c.getIfExists) return existing.id;
        throw new ActorNameTakenError(c.name, ns);
      }
    }
    this.host.submit(spec, undefined);
    return c.actorId;
  }

  private liveActorByName(ns: string, name: string): ActorRecord | undefined {
    const id = this.names.get(`${ns}\0${name}`);
    const rec = id ? this.actors.get(id) : undefined;
    return rec && rec.state !== 'dead' ? rec : undefined;
  }

  /** Record an actor for its creation task; undefined if the task already failed (name taken). */
  registerActor(t: TaskRecord, owner: WorkerHandle | undefined): ActorRecord | undefined {
    const c = t.spec.actorCreation!;
    const ns = c.namespace || (owner ? this.namespaceOf(owner) : this.host.namespace);
    const death = (reason: string, detail: string): ActorDeathInfo => ({ actorId: c.actorId, className: c.className, reason, detail });
    if (c.name) {
      const existing = this.liveActorByName(ns, c.name);
      if (existing) {
        if (c.getIfExists) {
          this.aliases.set(c.actorId, existing.id);
          this.host.finishTask(t, errorObject({ type: 'Other', name: 'Alias', message: 'getIfExists: existing actor used' }));
          return undefined;
        }
        const dead: ActorRecord = this.newActorRecord(t, ns);
        dead.state = 'dead';
        dead.death = death('name_taken', new ActorNameTakenError(c.name, ns).message);
        this.actors.set(c.actorId, dead);
        this.host.finishTask(t, errorObject({ type: 'ActorDiedError', info: dead.death }));
        return undefined;
      }
    }
    const rec = this.newActorRecord(t, ns);
    const proxy = this.actors.get(rec.id);
    this.actors.set(rec.id, rec);
    // The actor (re)starts on this node, which called it through a proxy: its queued calls come here, in order.
    if (proxy?.proxy) this.takeOverProxyCalls(proxy, rec);
    if (c.name) {
      rec.nameKey = `${ns}\0${c.name}`;
      this.names.set(rec.nameKey, rec.id);
    }
    // Constructor arguments are kept for restarts.
    rec.ctorHolds = [...t.holds];
    for (const id of rec.ctorHolds) this.host.objects.incRef(id);
    this.gcsActorRegister(rec, owner?.kind === 'peer');
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
      calls: new Deque(),
      death: undefined,
      terminating: false,
      killed: false,
      ctorHolds: [],
      nameKey: undefined,
      remoteNode: undefined,
      proxy: false,
      jobId: t.jobId,
    };
  }

  /** The actor waits for resources to start (on this node, or placed on another one). */
  queueActorStart(rec: ActorRecord): void {
    if (rec.state === 'dead') return;
    if (!this.pendingActors.includes(rec)) this.pendingActors.push(rec);
    this.host.warnIfInfeasible(
      `actor:${rec.schedule.key}|${rec.pool?.key ?? ''}`,
      `actor ${rec.creation.className}`,
      rec.schedule,
      rec.pool ?? this.host.nodePool,
    );
    this.host.scheduleDispatch();
  }

  /** Start pending actors whose resources fit (called from dispatch). */
  startActors(): void {
    for (let i = 0; i < this.pendingActors.length; ) {
      const rec = this.pendingActors[i]!;
      if (rec.state === 'dead') {
        this.pendingActors.splice(i, 1);
        continue;
      }
      // A named actor starts once the GCS took its name (cluster-wide unique; it waits while the head is down).
      if (this.registering.has(rec.id)) {
        i++;
        continue;
      }
      const pool = rec.pool ?? this.host.nodePool;
      if (!pool.resources.canFit(rec.schedule)) {
        if (this.host.link && !pool.pg && this.host.cluster.aliveCount > 1) {
          const t = this.creationTask(rec);
          const target = this.host.placeRemote(t, rec.schedule);
          if (target) {
            this.pendingActors.splice(i, 1);
            this.host.forwardActorCreation(rec, t, target);
            continue;
          }
        }
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
      const w = this.host.startWorker(`actor:${rec.id}`, allocation.gpuIds, rec.jobId, isPython(rec.spec.fn.moduleUrl), rec.env);
      w.actor = rec;
      rec.worker = w;
      rec.state = rec.state === 'restarting' ? 'restarting' : 'starting';
      // The creation task runs first on the new worker.
      this.host.assign(this.creationTask(rec), w);
    }
  }

  /** The creation task of an actor (the original one, or a new one for a restart). */
  private creationTask(rec: ActorRecord): TaskRecord {
    const existing = this.host.tasks.get(rec.spec.taskId);
    if (existing && existing.state !== 'done') return existing;
    const taskId = restartTaskId(rec.spec.taskId, rec.restarts ?? 0);
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
      ranOn: undefined,
      namespace: rec.namespace,
      jobId: rec.jobId,
      actor: rec,
      pool: rec.pool,
      remote: undefined,
      remoteLeft: 0,
    };
    this.host.tasks.set(taskId, t);
    return t;
  }

  /** The creation task ended: the actor is alive (its pending calls go out), or dead because its constructor threw. */
  onActorCreated(t: TaskRecord, status: tsray.v1.TaskStatus, datas: { id: string; d: StoredObject }[]): void {
    const rec = t.actor!;
    const w = rec.worker;
    if (status === tsray.v1.TaskStatus.TASK_STATUS_OK) {
      for (const { id, d } of datas) this.host.objects.seal(id, d);
      this.host.finishTask(t, undefined);
      if (rec.state === 'dead') return;
      rec.state = 'alive';
      this.gcsActorUpdate(rec, {
        state: 'ALIVE',
        hostNodeId: this.host.nodeId,
        pid: w?.proc?.pid ?? 0,
        numRestarts: rec.restarts ?? 0,
      });
      this.pumpActor(rec);
      this.maybeStopActor(rec);
      return;
    }
    // The constructor threw: the actor is dead (no restart), with that error as the cause.
    let cause: ActorDeathInfo['cause'];
    try {
      const d = datas[0]!.d;
      const bytes = this.host.store.bytes(d);
      const p = decodeErrorPayload(bytes);
      if (p.type === 'TaskError') cause = p.info;
    } catch {
      /* no cause */
    }
    for (const { d } of datas) this.host.store.release(d);
    const info: ActorDeathInfo = {
      actorId: rec.id,
      className: rec.creation.className,
      reason: 'constructor',
      detail: `its constructor threw ${cause ? `${cause.name}: ${cause.message}` : 'an error'}`,
      cause,
    };
    this.host.finishTask(t, errorObject({ type: 'ActorDiedError', info }));
    this.actorDead(rec, info);
    if (w) this.host.stopWorker(w);
  }

  /** Send the actor's calls whose arguments are ready, in submission order. */
  pumpActor(rec: ActorRecord): void {
    if (rec.remoteNode !== undefined && !rec.worker) {
      // Runs on another node (or is owned by one): calls go there in order; it queues them until alive.
      if (rec.state === 'dead') return;
      while (rec.calls.length > 0 && rec.calls.peek()!.state === 'queued') {
        const t = rec.calls.shift()!;
        // A call that came from another node and goes on to a third one is relayed (the old path).
        if (t.owner?.kind === 'peer') this.counters.actorCallsRelayed++;
        else if (rec.proxy) {
          this.counters.actorCallsSentDirect++;
          // Numbered on first send, in submission order; a resent call keeps its number.
          if (!t.spec.callerSeq) t.spec = { ...t.spec, callerSeq: (rec.lastCallerSeq = (rec.lastCallerSeq ?? 0) + 1) };
        }
        this.host.forwardTask(t, rec.remoteNode);
      }
      return;
    }
    if (rec.state !== 'alive' || !rec.worker || rec.worker.state === 'dead') return;
    const w = rec.worker;
    while (rec.calls.length > 0) {
      const t = rec.calls.peek()!;
      if (t.state !== 'queued') break;
      rec.calls.shift();
      if (t.owner?.kind === 'peer') {
        this.counters.actorCallsFromPeers++;
        if (!this.callerInOrder(rec, t)) continue;
      }
      this.host.assign(t, w);
    }
    this.host.scheduleFlush();
  }

  /**
   * A direct call from another node runs only after that node's earlier ones (its sequence number is
   * above the last one run here; a call retried here after a worker crash was checked on its first
   * run). One out of order (a duplicate, or one that overtook another) fails with ActorCallOrderError.
   */
  private callerInOrder(rec: ActorRecord, t: TaskRecord): boolean {
    const seq = t.spec.callerSeq;
    if (!seq || t.attempt > 0) return true;
    const caller = t.owner!.id;
    const last = (rec.callerSeqs ??= new Map()).get(caller) ?? 0;
    if (seq > last) {
      rec.callerSeqs.set(caller, seq);
      return true;
    }
    this.counters.actorCallsOutOfOrder++;
    logger().error({ actor: rec.id, caller, seq, last }, 'an actor call from another node arrived out of order; refused');
    const message = `call ${seq} of ${caller} to actor ${rec.id} arrived after call ${last}: refused (per-caller order)`;
    this.host.finishTask(t, errorObject({ type: 'Other', name: 'ActorCallOrderError', message }));
    return false;
  }

  /** No handle to a non-detached actor is left: stop it once its submitted calls are done. */
  onUnreferenced(id: string): void {
    const rec = this.actors.get(id);
    if (!rec || rec.creation.detached || rec.state === 'dead') return;
    rec.terminating = true;
    this.maybeStopActor(rec);
  }

  maybeStopActor(rec: ActorRecord): void {
    if (!rec.terminating || rec.state === 'dead') return;
    if (rec.calls.length > 0) return;
    if (rec.remoteNode !== undefined && !rec.worker) {
      // Let the node running it drop our hold; it stops the actor after the calls it has.
      if (!rec.proxy) this.host.link?.existingPeer(rec.remoteNode)?.send({ refUpdates: { remove: [rec.id] } });
      this.actorDead(rec, {
        actorId: rec.id,
        className: rec.creation.className,
        reason: 'out_of_scope',
        detail: 'all handles to it are gone (non-detached actors stop then)',
      });
      return;
    }
    const w = rec.worker;
    if (w && w.pipeline.length > 0) return;
    this.actorDead(rec, {
      actorId: rec.id,
      className: rec.creation.className,
      reason: 'out_of_scope',
      detail: 'all handles to it are gone (non-detached actors stop then)',
    });
    if (w) this.host.stopWorker(w);
  }

  /** The actor is dead for good: fail its pending calls, free its name and resources. */
  actorDead(rec: ActorRecord, info: ActorDeathInfo): void {
    if (rec.state === 'dead') return;
    rec.state = 'dead';
    rec.death = info;
    if (rec.env) {
      this.host.runtimeEnvs.drop(rec.env);
      rec.env = undefined;
    }
    const err = errorObject({ type: 'ActorDiedError', info });
    for (const t of rec.calls.drain()) this.host.finishTask(t, err);
    const i = this.pendingActors.indexOf(rec);
    if (i !== -1) this.pendingActors.splice(i, 1);
    if (rec.nameKey && this.names.get(rec.nameKey) === rec.id) this.names.delete(rec.nameKey);
    if (rec.allocation) {
      if (rec.pool?.pg?.state !== 'removed') (rec.pool ?? this.host.nodePool).resources.release(rec.allocation);
      rec.allocation = undefined;
    }
    for (const id of rec.ctorHolds) this.host.objects.decRef(id);
    rec.ctorHolds = [];
    this.gcsActorUpdate(rec, { state: 'DEAD', deathCause: `${info.reason}: ${info.detail}` });
    this.host.scheduleDispatch();
  }

  /** The actor's process died: restart it if allowed, retry or fail the calls in flight. */
  actorWorkerDied(rec: ActorRecord, w: WorkerHandle, detail: string): void {
    rec.worker = undefined;
    if (rec.allocation) {
      if (rec.pool?.pg?.state !== 'removed') (rec.pool ?? this.host.nodePool).resources.release(rec.allocation);
      rec.allocation = undefined;
    }
    const inflight = w.pipeline.drain().filter((t) => t.state === 'dispatched' && t.worker === w);
    const creating = inflight.find((t) => t.spec.actorCreation);
    const calls = inflight.filter((t) => !t.spec.actorCreation);
    const killed = rec.killed;
    const canRestart = !killed && rec.state !== 'dead' && !rec.terminating && rec.restartsLeft !== 0;
    const info: ActorDeathInfo = {
      actorId: rec.id,
      className: rec.creation.className,
      reason: killed ? 'killed' : 'crashed',
      detail: killed ? 'it was killed with kill()' : `its process (pid ${w.proc?.pid}) died: ${detail}${stderrHint(w)}`,
    };
    const err = errorObject({ type: 'ActorDiedError', info });
    // Calls in flight: retried after the restart (maxTaskRetries), else they fail: as unavailable
    // (ActorUnavailableError) when the actor restarts, as dead otherwise.
    const callErr = canRestart ? restartingError(info) : err;
    const retry: TaskRecord[] = [];
    for (const t of calls) {
      t.worker = undefined;
      if (canRestart && t.retriesLeft !== 0) {
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        t.state = 'queued';
        retry.push(t);
      } else {
        this.host.finishTask(t, callErr);
      }
    }
    if (creating) {
      creating.worker = undefined;
      if (!canRestart) this.host.finishTask(creating, err);
    }
    if (canRestart) {
      if (rec.restartsLeft > 0) rec.restartsLeft--;
      rec.restarts = (rec.restarts ?? 0) + 1;
      rec.state = 'restarting';
      rec.calls.unshiftAll(retry);
      if (creating) this.host.tasks.delete(creating.spec.taskId);
      logger().warn({ actor: rec.creation.className, detail }, 'actor process died; restarting it');
      this.queueActorStart(rec);
    } else {
      this.actorDead(rec, info);
    }
  }

  /** Look an actor up by name (this node first, then the GCS directory). */
  async getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> {
    const ns = namespace || this.host.namespace;
    if (this.liveActorByName(ns, name) || !this.host.link) return this.lookupActor(name, ns);
    const e = await this.host.link.gcs.lookupActor({ name, namespace: ns });
    if (!e) throw new ActorNotFoundError(name, ns);
    if (e.ownerNodeId !== this.host.nodeId) this.ensureProxy(e);
    return { actorId: e.actorId, className: e.className, methods: e.methods, module: e.module, key: e.key };
  }

  private lookupActor(name: string, ns: string): ActorInfoData {
    const rec = this.liveActorByName(ns, name);
    if (!rec) throw new ActorNotFoundError(name, ns);
    return { actorId: rec.id, className: rec.creation.className, methods: rec.creation.methods, module: rec.spec.fn.moduleUrl, key: rec.spec.fn.key };
  }

  /** Kill an actor (`noRestart`: for good); an actor not started yet dies at once. */
  killActor(actorId: string, noRestart: boolean): void {
    const rec = this.actors.get(this.aliases.get(actorId) ?? actorId);
    if (!rec) throw new ActorNotFoundError(actorId, '(by id)');
    if (rec.state === 'dead') {
      throw new ActorDiedError(rec.death!);
    }
    if (noRestart) rec.killed = true;
    if (rec.proxy && rec.ownerNode) {
      // The owner decides restarts and deaths: the kill goes there (it tells the host).
      (this.host.link?.existingPeer(rec.ownerNode) ?? this.host.peerFor(rec.ownerNode)).send({ killActor: { actorId: rec.id, noRestart } });
      if (noRestart) this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: 'it was killed with kill()' });
      return;
    }
    if (rec.remoteNode !== undefined && !rec.worker) {
      this.host.link?.existingPeer(rec.remoteNode)?.send({ killActor: { actorId: rec.id, noRestart } });
      if (!this.host.link?.existingPeer(rec.remoteNode)) this.host.peerFor(rec.remoteNode).send({ killActor: { actorId: rec.id, noRestart } });
      if (noRestart) this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: 'it was killed with kill()' });
      return;
    }
    const w = rec.worker;
    if (w && w.state !== 'dead') w.kill('SIGKILL');
    else if (noRestart) {
      this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: 'it was killed with kill() before it started' });
    }
  }

  // ---------------------------------------------------------------- multi-node (the GCS actor directory)

  /** An actor this node owns lost its node: restart it elsewhere if allowed. */
  remoteActorDied(rec: ActorRecord, inflight: TaskRecord[], detail: string): void {
    rec.remoteNode = undefined;
    const creating = inflight.find((t) => t.spec.actorCreation);
    const calls = inflight.filter((t) => !t.spec.actorCreation);
    const canRestart = !rec.killed && !rec.terminating && rec.restartsLeft !== 0;
    const info: ActorDeathInfo = { actorId: rec.id, className: rec.creation.className, reason: 'crashed', detail };
    const err = errorObject({ type: 'ActorDiedError', info });
    const retry: TaskRecord[] = [];
    for (const t of calls) {
      if (canRestart && t.retriesLeft !== 0) {
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        t.state = 'queued';
        retry.push(t);
      } else this.host.finishTask(t, canRestart ? restartingError(info) : err);
    }
    if (creating) {
      this.host.finishTask(creating, canRestart ? undefined : err);
      this.host.tasks.delete(creating.spec.taskId);
    }
    if (!canRestart) {
      this.actorDead(rec, info);
      return;
    }
    if (rec.restartsLeft > 0) rec.restartsLeft--;
    rec.restarts = (rec.restarts ?? 0) + 1;
    rec.state = 'restarting';
    rec.calls.unshiftAll(retry);
    logger().warn({ actor: rec.creation.className, detail }, 'actor lost its node; restarting it');
    this.gcsActorUpdate(rec, { state: 'RESTARTING' });
    const t = this.creationTask(rec);
    t.state = 'deps';
    t.pool = undefined;
    this.host.enqueue(t);
  }

  /** Tell the GCS about an actor's state (fire and forget). */
  gcsActorUpdate(rec: ActorRecord, fields: ActorUpdateFields): void {
    if (!this.host.link || rec.proxy) return;
    this.host.link.gcs.updateActor(rec.id, fields).catch((err: Error) => logger().debug({ actor: rec.id, err }, 'the GCS did not take an actor update'));
  }

  /** Register a new actor in the GCS directory; a name taken on another node kills it. */
  private gcsActorRegister(rec: ActorRecord, ownerIsPeer: boolean): void {
    if (!this.host.link || rec.proxy) return;
    if (ownerIsPeer) {
      this.gcsActorUpdate(rec, { hostNodeId: this.host.nodeId, state: 'STARTING' });
      return;
    }
    const c = rec.creation;
    if (c.name) this.registering.add(rec.id);
    this.host.link.gcs
      .registerActor({
        actorId: rec.id,
        name: c.name,
        namespace: rec.namespace,
        className: c.className,
        methods: c.methods,
        module: rec.spec.fn.moduleUrl,
        key: rec.spec.fn.key,
        ownerNodeId: this.host.nodeId,
        hostNodeId: this.host.nodeId,
        state: 'PENDING',
        pid: 0,
        numRestarts: 0,
        detached: c.detached,
        maxTaskRetries: c.maxTaskRetries,
      })
      .then(() => {
        if (this.registering.delete(rec.id)) this.host.scheduleDispatch();
      })
      .catch((e: Error) => {
        this.registering.delete(rec.id);
        if (rec.state === 'dead') return;
        const reason = e instanceof GcsUnavailableError ? 'gcs_unavailable' : 'name_taken';
        const info: ActorDeathInfo = { actorId: rec.id, className: c.className, reason, detail: e.message };
        const w = rec.worker;
        if (rec.remoteNode) this.host.link?.existingPeer(rec.remoteNode)?.send({ killActor: { actorId: rec.id, noRestart: true } });
        rec.killed = true;
        this.actorDead(rec, info);
        if (w) w.kill('SIGKILL');
      });
  }

  /** Calls on a handle from another node: look the actor up in the GCS (its host), then submit them in order. */
  resolveRemoteActor(spec: SubmitSpec, owner: WorkerHandle | undefined): void {
    const id = spec.actorId!;
    let list = this.unresolvedCalls.get(id);
    if (list) {
      list.push({ spec, owner } as unknown as TaskRecord);
      return;
    }
    this.unresolvedCalls.set(id, (list = [{ spec, owner } as unknown as TaskRecord]));
    const flush = () => {
      const calls = this.unresolvedCalls.get(id) ?? [];
      this.unresolvedCalls.delete(id);
      if (!this.actors.has(id)) {
        // Unknown everywhere: record it dead so these (and later) calls fail with ActorDiedError.
        this.ensureProxy({ actorId: id, className: spec.fn.name, methods: [], ownerNodeId: '', namespace: this.host.namespace });
        this.actors.get(id)!.state = 'dead';
        this.actors.get(id)!.death = unknownActor(id, spec.fn.name);
      }
      for (const c of calls) this.host.submit(c.spec, c.owner);
    };
    this.host.link!.gcs.lookupActor({ actorId: id }).then(
      (e) => {
        if (e && e.ownerNodeId !== this.host.nodeId) this.ensureProxy(e);
        flush();
      },
      () => flush(),
    );
  }

  /**
   * A stand-in for an actor another node owns: calls made here go straight to the node hosting it
   * (the directory's host while the actor is ALIVE; while it is not, they wait here and the host is
   * looked up again, see reresolveHost).
   */
  private ensureProxy(
    e: Pick<ActorDirectoryEntry, 'actorId' | 'className' | 'methods' | 'namespace' | 'ownerNodeId'> &
      Partial<Pick<ActorDirectoryEntry, 'hostNodeId' | 'state' | 'version' | 'maxTaskRetries' | 'module' | 'key'>>,
  ): void {
    const existing = this.actors.get(e.actorId);
    if (existing && existing.state !== 'dead') return;
    const creation: ActorCreation = {
      actorId: e.actorId,
      className: e.className,
      methods: e.methods,
      name: '',
      namespace: e.namespace,
      detached: true,
      getIfExists: false,
      maxRestarts: 0,
      maxTaskRetries: e.maxTaskRetries ?? 0,
      maxConcurrency: 1,
      concurrencyGroups: [],
      hold: new Map(),
      isAsync: false,
    };
    const spec: SubmitSpec = {
      taskId: `${e.actorId}.proxy`,
      fn: { moduleUrl: e.module ?? '', key: e.key ?? '', name: e.className },
      args: [],
      resources: new Map(),
      numReturns: 0,
      streaming: false,
      maxRetries: 0,
      retryExceptions: false,
      returnIds: [],
      name: e.className,
    };
    const hosted = e.state === 'ALIVE' && !!e.hostNodeId && e.hostNodeId !== this.host.nodeId;
    const rec: ActorRecord = {
      id: e.actorId,
      creation,
      spec,
      schedule: ResourceRequest.fromUnits(new Map()),
      hold: ResourceRequest.fromUnits(new Map()),
      namespace: e.namespace,
      state: hosted || !e.ownerNodeId ? 'alive' : 'restarting',
      worker: undefined,
      allocation: undefined,
      restartsLeft: 0,
      pool: this.host.nodePool,
      calls: new Deque(),
      death: undefined,
      terminating: false,
      killed: false,
      ctorHolds: [],
      nameKey: undefined,
      remoteNode: hosted ? e.hostNodeId : undefined,
      proxy: true,
      ownerNode: e.ownerNodeId,
      version: hosted ? (e.version ?? 0) : -1,
      jobId: '',
    };
    this.actors.set(e.actorId, rec);
    if (!hosted && e.ownerNodeId) this.reresolveHost(rec, RERESOLVE_FIRST_MS);
  }

  /**
   * A proxy's host or owner node died (`deadNode`), with these calls in flight there. Owner: the
   * actor dies with it. Host: the calls go back to the front of the queue (by maxTaskRetries), in
   * submission order, and wait until the directory shows the actor ALIVE in a newer incarnation.
   */
  proxyNodeDied(rec: ActorRecord, inflight: TaskRecord[], deadNode: string, reason: string): void {
    const now = this.actors.get(rec.id);
    const replaced = now !== undefined && now !== rec && !now.proxy;
    if (rec.state === 'dead' && !replaced) return;
    if (!replaced && (rec.ownerNode === deadNode || !rec.ownerNode)) {
      const info: ActorDeathInfo = {
        actorId: rec.id,
        className: rec.creation.className,
        reason: 'owner_died',
        detail: `its owner node ${deadNode} died (${reason})`,
      };
      for (const t of inflight) this.host.finishTask(t, errorObject({ type: 'ActorDiedError', info }));
      this.actorDead(rec, info);
      return;
    }
    const info: ActorDeathInfo = { actorId: rec.id, className: rec.creation.className, reason: 'crashed', detail: `its node ${deadNode} died (${reason})` };
    const retry: TaskRecord[] = [];
    for (const t of inflight) {
      if (t.retriesLeft !== 0) {
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        t.state = 'queued';
        retry.push(t);
      } else this.host.finishTask(t, restartingError(info));
    }
    if (replaced) {
      // Restarted on this node meanwhile: the real record took the queue over.
      for (const t of retry) t.actor = now;
      now.calls.unshiftAll(retry);
      this.pumpActor(now!);
      return;
    }
    rec.calls.unshiftAll(retry);
    if (rec.remoteNode !== deadNode) {
      this.pumpActor(rec);
      return;
    }
    rec.remoteNode = undefined;
    rec.state = 'restarting';
    logger().info({ actor: rec.id, node: deadNode }, "the node hosting an actor called from here died; waiting for the directory's next host");
    this.reresolveHost(rec, RERESOLVE_FIRST_MS);
  }

  /**
   * Look a proxy's actor up in the GCS until it is ALIVE on a live node in an incarnation newer than
   * the one cached (backoff {@link RERESOLVE_FIRST_MS} to {@link RERESOLVE_MAX_MS}); then its waiting
   * calls go there in order. Gone from the directory (dead): the calls fail with ActorDiedError.
   */
  private reresolveHost(rec: ActorRecord, delayMs: number): void {
    const timer = setTimeout(() => {
      const gcs = this.host.link?.gcs;
      if (!gcs || rec.state === 'dead' || this.actors.get(rec.id) !== rec) return;
      const again = () => this.reresolveHost(rec, Math.min(delayMs * 2, RERESOLVE_MAX_MS));
      gcs.lookupActor({ actorId: rec.id }).then((e) => {
        if (rec.state === 'dead' || this.actors.get(rec.id) !== rec) return;
        if (!e) {
          this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'crashed', detail: 'the GCS actor directory has it dead' });
          return;
        }
        const fresh = e.state === 'ALIVE' && (e.version ?? 0) > (rec.version ?? -1) && !!e.hostNodeId && e.hostNodeId !== this.host.nodeId;
        if (!fresh || !this.host.isAliveNode(e.hostNodeId)) {
          // Said once when the lookups reach their slowest pace (a restart that takes long, or a host this node cannot reach).
          if (delayMs < RERESOLVE_MAX_MS && delayMs * 2 >= RERESOLVE_MAX_MS) {
            const detail = { actor: rec.id, state: e.state, host: e.hostNodeId, version: e.version, cached: rec.version, calls: rec.calls.length };
            logger().warn(detail, 'calls to an actor wait here for its next host (the GCS directory has none usable yet)');
          }
          return again();
        }
        rec.remoteNode = e.hostNodeId;
        rec.version = e.version ?? 0;
        rec.state = 'alive';
        this.pumpActor(rec);
      }, again);
    }, delayMs);
    timer.unref();
  }

  /** A proxy's queued calls move to the actor's own record (it now runs on this node), in order. */
  private takeOverProxyCalls(proxy: ActorRecord, rec: ActorRecord): void {
    for (const t of proxy.calls.drain()) {
      t.actor = rec;
      rec.calls.push(t);
    }
    proxy.state = 'dead';
  }
}

/** First wait before a proxy looks its actor's host up again, ms (doubles up to RERESOLVE_MAX_MS). */
const RERESOLVE_FIRST_MS = 50;
/** Longest wait between two lookups of a proxy's host, ms. */
const RERESOLVE_MAX_MS = 1000;
