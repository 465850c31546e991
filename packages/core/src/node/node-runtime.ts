/**
 * The node runtime ("raylet"): task manager, worker pool, object table and store of one node. In an
 * embedded cluster it lives in the driver process and implements the driver's CoreRuntime directly.
 * @internal
 */
import { config } from '../config.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterView, NodeResources, ResourceRequest } from '@tsray/scheduler';
import { tsray, type DecodedMessage, type EnvelopeBody } from '@tsray/protocol';
import { errorFromPayload } from '../error-payload.js';
import { GetTimeoutError, RuntimeStateError, type ActorDeathInfo } from '../errors.js';
import { gcFunction } from '../gc.js';
import { logger } from '../logger.js';
import type { ActorInfoData, CoreRuntime, RuntimeContext, SubmitSpec } from '../runtime.js';
import type { PendingDemand } from '../state-api.js';
import { deserialize, type SerializedValue } from '../serialization.js';
import { FrameBuilder } from '../wire.js';
import { ObjectTable, type ObjectEntry, type StoredObject } from './object-table.js';
import { Deque } from './deque.js';
import { NodeStore } from './store.js';
import { WorkerProcess } from './worker-process.js';
import { NodeRuntimeEnvs, type EnvEntry } from './runtime-envs.js';
import { TokenVerifier } from '../auth.js';
import { PeerMemory } from '../peer-memory.js';
import { RouterServer } from '../router-server.js';
import type { PeerConnection } from '../cluster/link.js';
import type { ActorUpdateFields } from '../cluster/control-plane.js';
import { ClusterForwarder, type ClusterForwarderHost, type ClusterLinkApi } from './cluster-forwarder.js';
import { ObjectTransfer, type ObjectTransferHost } from './object-transfer.js';
import { nodeSocketAddress, removeSocketFile } from './socket-path.js';
import { WorkerHandle, type ActorRecord, type Lease, type PgRecord, type Pool, type TaskRecord } from './records.js';
import { ENC_ERROR, errorObject, isPython, processAlive } from './node-support.js';
import { NODE_MESSAGE_HANDLERS, type NodeMessageHost } from './node-messages.js';
import { TaskManager, type TaskManagerHost } from './task-manager.js';
import { ActorManager } from './actor-manager.js';
import { PlacementGroupManager, type PlacementGroupHost } from './placement-group-manager.js';
import { StateService, type StateServiceHost } from './state-service.js';

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
  /** Cluster token every connection must prove (default: a random one for this node's session). */
  token?: string;
  /**
   * Also listen on tcp for other nodes and remote drivers (port 0: a free one) on `host`; other nodes
   * are told `advertise` (default `host`): the address they reach this node on.
   */
  tcp?: { host: string; port: number; advertise?: string };
  /** Join the cluster whose head's GCS listens at `host:port`. */
  gcsAddress?: string;
  /** This node is the head's node. */
  isHead?: boolean;
  /** Node labels. */
  labels?: Record<string, string>;
  /** Largest accepted frame in bytes (default the protocol's 256 MiB); a bigger one is answered with ERROR_CODE_TOO_LARGE. */
  maxFrameBytes?: number;
  /** Called when the GCS refuses this node or declares it dead, or the head is lost for good (the daemon exits). */
  onFatal?: (message: string) => void;
  /** Give up (onFatal) after the head has been silent this long (default 60 s; see ClusterLink). */
  headLostTimeoutMs?: number;
}


/** TSRAY_TRACE=1 prints every message the node sends and receives (debugging). */
const TRACE = config().trace;

/** One node: tasks, workers, objects. */
export class NodeRuntime implements CoreRuntime, NodeMessageHost {
  readonly kind = 'driver' as const;
  readonly nodeId: string;
  readonly jobId: string;
  readonly address: string;
  readonly objects: ObjectTable;
  readonly store: NodeStore;
  readonly resources: NodeResources;
  /** Workers, drivers and peer nodes connect here (ipc, and tcp in a cluster); bounded per connection. */
  private readonly server: RouterServer;
  private readonly leasesByKey = new Map<string, Lease[]>();
  private readonly workers = new Map<string, WorkerHandle>();
  private readonly idle: WorkerHandle[] = [];
  private workerSeq = 0;
  private closed = false;
  private readonly maxWorkers: number;
  private readonly cpuSlots: number;
  private readonly abort = new AbortController();
  private readonly reaper: NodeJS.Timeout;
  /** Actors: records, names, creation, restarts (node/actor-manager.ts). */
  private readonly actorManager: ActorManager;
  readonly namespace: string;
  private readonly placementGroups: PlacementGroupManager;
  private readonly stateService: StateService;
  /** @internal */ readonly cluster = new ClusterView();
  /** This node alone: placement groups are reserved on the node that creates them (this release). */
  private readonly localView = new ClusterView();
  /** @internal */ readonly nodePool: Pool;
  private readonly startedAt = Date.now();
  /** The cluster token (proved by every connection). */
  readonly token: string;
  private readonly verifier: TokenVerifier;
  /** tcp://host:port for other nodes and remote drivers (multi-node). */
  tcpAddress = '';
  /** Multi-node: the other nodes, work forwarded to them, their deaths (see cluster-forwarder.ts). */
  private readonly forwarder: ClusterForwarder;
  /** Objects to other nodes and remote drivers, chunked objects arriving (see object-transfer.ts). */
  private readonly transfer: ObjectTransfer;

  private readonly taskManager: TaskManager;
  /** @internal */ get tasks(): Map<string, TaskRecord> { return this.taskManager.tasks; }
  private get queues(): Map<string, Deque<TaskRecord>> { return this.taskManager.queues; }
  private get feasibilityChecked(): Set<string> { return this.taskManager.feasibilityChecked; }
  private get dirtyWorkers(): Set<WorkerHandle> { return this.taskManager.dirtyWorkers; }

  private constructor(private readonly opts: NodeRuntimeOptions) {
    this.server = new RouterServer({
      where: 'node',
      maxFrameBytes: opts.maxFrameBytes,
      trace: TRACE,
      registered: (identity) => {
        const w = this.workers.get(identity.toString());
        return w ? { kind: w.kind } : undefined;
      },
      onMessage: (identity, message) => this.handle(identity, message),
    });
    this.nodeId = opts.nodeId;
    this.jobId = opts.jobId;
    this.token = opts.token ?? randomBytes(24).toString('hex');
    this.verifier = new TokenVerifier(this.token);
    this.namespace = opts.namespace;
    this.address = nodeSocketAddress(opts.sessionDir, opts.nodeId);
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
    this.localView.addNode(this.nodeId, this.resources);
    this.nodePool = { key: '', resources: this.resources, pg: undefined, bundleIndex: -1 };
    this.maxWorkers = this.cpuSlots + 64;
    this.reaper = setInterval(() => this.reapIdle(), 500);
    this.reaper.unref();
    // ---- components (split)
    this.taskManager = new TaskManager(this.taskManagerHost());
    this.actorManager = new ActorManager(this);
    this.transfer = new ObjectTransfer(this.objectTransferHost());
    this.forwarder = new ClusterForwarder(this.clusterForwarderHost(), { sessionDir: opts.sessionDir, isHead: opts.isHead, labels: opts.labels, headLostTimeoutMs: opts.headLostTimeoutMs, onFatal: opts.onFatal });
    this.placementGroups = new PlacementGroupManager(this.placementGroupHost());
    this.stateService = new StateService(this.stateServiceHost());
  }

  /** Start a node runtime (binds its socket). */
  static async start(opts: NodeRuntimeOptions): Promise<NodeRuntime> {
    const n = new NodeRuntime(opts);
    await n.server.bind(n.address);
    if (opts.tcp) {
      try {
        n.tcpAddress = await n.server.bind(`tcp://${opts.tcp.host}:${opts.tcp.port}`);
      } catch (e) {
        await n.server.close();
        n.store.close();
        if (/in use/i.test(String((e as Error).message))) throw new RuntimeStateError(`node port ${opts.tcp.port} on ${opts.tcp.host} is already in use by another process (pick another with --node-port)`);
        throw e;
      }
      const adv = opts.tcp.advertise;
      if (adv) n.tcpAddress = `tcp://${adv.includes(':') ? `[${adv}]` : adv}:${n.tcpAddress.split(':').pop()}`;
    }
    n.server.start();
    if (opts.gcsAddress) {
      try {
        await n.joinCluster(opts.gcsAddress);
      } catch (e) {
        await n.shutdown();
        throw e;
      }
    }
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

  cancel(id: string, force: boolean): void { this.taskManager.cancel(id, force); }

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
    if (d.encoding === ENC_ERROR) throw errorFromPayload(this.store.bytes(d));
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

  // ---------------------------------------------------------------- tasks (TaskManager)

  /** @internal */ submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void { this.taskManager.submit(spec, owner); }
  /** @internal */ enqueue(t: TaskRecord, front = false): void { this.taskManager.enqueue(t, front); }
  /** @internal */ warnIfInfeasible(key: string, what: string, request: ResourceRequest, pool: Pool): void { this.taskManager.warnIfInfeasible(key, what, request, pool); }
  /** @internal */
  scheduleDispatch(): void {
    this.taskManager.scheduleDispatch();
  }
  /** @internal */ assign(t: TaskRecord, w: WorkerHandle): void { this.taskManager.assign(t, w); }
  /** @internal */ scheduleFlush(): void { this.taskManager.scheduleFlush(); }
  /** @internal */ sealReturns(t: TaskRecord, data: StoredObject): void { this.taskManager.sealReturns(t, data); }
  /** @internal */ finishTask(t: TaskRecord, data: StoredObject | undefined): void { this.taskManager.finishTask(t, data); }

  /** A lease for the queue `key` whose head is `head` (a reused idle worker of the same kind, or a new one). */
  private newLease(key: string, head: TaskRecord): Lease | undefined {
    const request = head.request;
    const pool = head.pool ?? this.nodePool;
    const python = isPython(head.spec.fn.moduleUrl);
    const env = head.env;
    if (!pool.resources.canFit(request)) return undefined;
    const allocation = pool.resources.allocate(request);
    if (!allocation) return undefined;
    // Idle workers are reused only for the same GPUs, language, runtime env and job.
    const gpuKey = allocation.gpuIds.join(',') + (python ? '|py' : '') + (env ? `|env:${env.hash}` : '') + `|job:${head.jobId}`;
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
      w = this.startWorker(gpuKey, allocation.gpuIds, head.jobId, python, env);
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

  /**
   * The node as the task manager's host. An adapter rather than `this`: most of what the task manager
   * calls is private here, and some of it (the actor lookup through aliases, the cluster checks before
   * placing or spilling) is a line of node state rather than a method.
   */
  private taskManagerHost(): TaskManagerHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- getters of the literal read the node's current state
    const node = this;
    return {
      nodeId: this.nodeId,
      jobId: this.jobId,
      namespace: this.namespace,
      python: this.opts.python,
      objects: this.objects,
      store: this.store,
      get closed() {
        return node.closed;
      },
      get inCluster() {
        return node.link !== undefined;
      },
      nodePool: this.nodePool,
      get runtimeEnvs() {
        return node.runtimeEnvs;
      },
      leasesByKey: this.leasesByKey,
      get workerCount() {
        return node.workers.size;
      },
      cpuSlots: this.cpuSlots,
      newLease: (key, head) => this.newLease(key, head),
      releaseLease: (w) => this.releaseLease(w),
      send: (w, body, fb) => this.send(w, body, fb),
      sendObjectsRemote: (w, entries) => this.sendObjectsRemote(w, entries),
      jobEnded: (jobId) => this.endedJobs.has(jobId),
      namespaceOf: (owner) => this.namespaceOf(owner),
      registerActor: (t, owner) => this.registerActor(t, owner),
      actorFor: (actorId) => this.actors.get(this.aliases.get(actorId) ?? actorId),
      queueActorStart: (rec) => this.queueActorStart(rec),
      pumpActor: (rec) => this.pumpActor(rec),
      startPendingActors: () => {
        if (this.pendingActors.length > 0) this.startActors();
      },
      actorDead: (rec, info) => this.actorDead(rec, info),
      onActorCreated: (t, status, datas) => this.onActorCreated(t, status, datas),
      maybeStopActor: (rec) => this.maybeStopActor(rec),
      placementGroup: (id) => this.pgs.get(id),
      placePendingGroups: () => {
        if (this.pendingPgs.length > 0) this.placePending();
      },
      nodeAlive: (nodeId) => Boolean(this.remoteNodes.get(nodeId)?.alive),
      resolveRemoteActor: (spec, owner) => this.resolveRemoteActor(spec, owner),
      placeRemote: (t, req) => this.placeRemote(t, req),
      forwardTask: (t, target) => this.forwardTask(t, target),
      forwardActorCreation: (rec, t, target) => this.forwardActorCreation(rec, t, target),
      spillQueue: (q) => {
        if (this.link && this.cluster.aliveCount > 1) this.spillQueue(q);
      },
      cancelRemote: (nodeId, objectId, force) => this.link?.existingPeer(nodeId)?.send({ cancelRequest: { objectId, force } }),
    };
  }

  private runtimeEnvsInstance: NodeRuntimeEnvs | undefined;

  /** The node's runtime environments (agent made on first use). */
  /** @internal */ get runtimeEnvs(): NodeRuntimeEnvs {
    return (this.runtimeEnvsInstance ??= new NodeRuntimeEnvs({
      sessionDir: this.opts.sessionDir,
      python: this.opts.python,
      logToDriver: this.opts.logToDriver,
      // Multi-node: packages (workingDir, pyModules) published by other nodes come from the GCS.
      fetchPackage: async (hash, dest) => {
        if (!this.link) throw new Error(`package ${hash} is not on this node and there is no cluster to fetch it from`);
        const value = await this.link.gcs.kvGet(`pkg:${hash}`, 120_000);
        if (!value) throw new Error(`package ${hash} was not published to the cluster (GCS key pkg:${hash})`);
        const tmp = `${dest}.${process.pid}.part`;
        writeFileSync(tmp, value);
        renameSync(tmp, dest);
      },
    }));
  }


  // ---------------------------------------------------------------- actors

  private get actors(): Map<string, ActorRecord> { return this.actorManager.actors; }
  private get aliases(): Map<string, string> { return this.actorManager.aliases; }
  private get pendingActors(): ActorRecord[] { return this.actorManager.pendingActors; }
  /** @internal */
  namespaceOf(w: WorkerHandle): string { return this.actorManager.namespaceOf(w); }
  createActor(spec: SubmitSpec): string { return this.actorManager.createActor(spec); }
  private registerActor(t: TaskRecord, owner: WorkerHandle | undefined): ActorRecord | undefined { return this.actorManager.registerActor(t, owner); }
  private queueActorStart(rec: ActorRecord): void { this.actorManager.queueActorStart(rec); }
  private startActors(): void { this.actorManager.startActors(); }
  private onActorCreated(t: TaskRecord, status: tsray.v1.TaskStatus, datas: { id: string; d: StoredObject }[]): void { this.actorManager.onActorCreated(t, status, datas); }
  private pumpActor(rec: ActorRecord): void { this.actorManager.pumpActor(rec); }
  private onUnreferenced(id: string): void { this.actorManager.onUnreferenced(id); }
  private maybeStopActor(rec: ActorRecord): void { this.actorManager.maybeStopActor(rec); }
  private actorDead(rec: ActorRecord, info: ActorDeathInfo): void { this.actorManager.actorDead(rec, info); }
  private actorWorkerDied(rec: ActorRecord, w: WorkerHandle, detail: string): void { this.actorManager.actorWorkerDied(rec, w, detail); }
  getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> { return this.actorManager.getActor(name, namespace); }
  killActor(actorId: string, noRestart: boolean): void { this.actorManager.killActor(actorId, noRestart); }


  // ---------------------------------------------------------------- placement groups

  private get pgs(): Map<string, PgRecord> { return this.placementGroups.pgs; }
  private get pendingPgs(): PgRecord[] { return this.placementGroups.pendingPgs; }
  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean, noWait = false, jobId = this.jobId): void { this.placementGroups.createPlacementGroup(id, bundles, strategy, name, detached, noWait, jobId); }
  private placePending(): void { this.placementGroups.placePending(); }
  removePlacementGroup(id: string): void { this.placementGroups.removePlacementGroup(id); }
  private onRemotePgPart(pg: PgRecord, node: string, d: StoredObject): void { this.placementGroups.onRemotePgPart(pg, node, d); }

  /** What the placement groups reach of the rest of the node. */
  private placementGroupHost(): PlacementGroupHost {
    return {
      nodeId: this.nodeId,
      jobId: this.jobId,
      objects: this.objects,
      store: this.store,
      localView: this.localView,
      clusterView: () => (this.link !== undefined && this.cluster.aliveCount > 1 ? this.cluster : undefined),
      peerFor: (node) => this.peerFor(node),
      existingPeer: (node) => this.link?.existingPeer(node),
      enqueue: (t) => this.enqueue(t),
      finishTask: (t, d) => this.finishTask(t, d),
      failWorkOfGroup: (pg, reason) => this.failWorkOfGroup(pg, reason),
      scheduleDispatch: () => this.scheduleDispatch(),
    };
  }

  /** A removed group's actors die; its tasks are cancelled (running ones with their worker). */
  private failWorkOfGroup(pg: PgRecord, reason: string): void {
    const err = (what: string) => errorObject({ type: 'Other', name: 'PlacementGroupError', message: `${what}: ${reason}` });
    for (const rec of this.actors.values()) {
      if (rec.pool?.pg === pg && rec.state !== 'dead') {
        rec.killed = true;
        const w = rec.worker;
        this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: reason });
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
  }

  // ---------------------------------------------------------------- state API

  clusterResources(): Record<string, number> { return this.stateService.clusterResources(); }
  availableResources(): Record<string, number> { return this.stateService.availableResources(); }
  pendingDemand(): PendingDemand[] { return this.stateService.pendingDemand(); }

  /** What the state service reads of the rest of the node. */
  private stateServiceHost(): StateServiceHost {
    return {
      nodeId: this.nodeId,
      resources: this.resources,
      objects: this.objects,
      store: this.store,
      identity: () => ({ isHead: this.opts.isHead ?? !this.link, address: this.tcpAddress || this.address, labels: this.opts.labels ?? {}, startTime: this.startedAt }),
      nodePool: () => this.nodePool,
      tasks: () => this.tasks,
      taskQueues: () => this.queues.values(),
      actors: () => this.actors.values(),
      pendingActors: () => this.pendingActors,
      placementGroups: () => this.pgs.values(),
      pendingPlacementGroups: () => this.pendingPgs,
      workers: () => this.workers,
      clusterView: () => this.cluster,
      gcs: () => this.link?.gcs,
    };
  }

  // ---------------------------------------------------------------- workers

  /** @internal */ startWorker(gpuKey: string, gpuIds: readonly string[], jobId: string, python = false, runtimeEnv?: EnvEntry): WorkerHandle {
    const id = `w${this.workerSeq++}-${process.pid}`;
    const launch = runtimeEnv ? this.runtimeEnvs.launch(runtimeEnv, python ? 'python' : 'node') : undefined;
    const env: Record<string, string> = { TSRAY_TOKEN: this.token };
    if (gpuIds.length > 0 || (this.opts.resources['GPU'] ?? 0) > 0) env['CUDA_VISIBLE_DEVICES'] = gpuIds.join(',');
    const proc = new WorkerProcess({
      workerId: id,
      nodeAddress: this.address,
      nodeId: this.nodeId,
      jobId,
      sessionDir: this.opts.sessionDir,
      arenaFd: this.store.arenaFd,
      arenaSize: this.store.capacity,
      env,
      logToDriver: this.opts.logToDriver,
      defaultName: python ? 'python-worker' : 'worker',
      python: python ? this.opts.python : undefined,
      ...(launch ? { env: { ...launch.env, ...env }, cwd: launch.cwd, nodeArgs: launch.nodeArgs } : {}),
    });
    const w = new WorkerHandle(id, proc, gpuKey);
    w.jobId = jobId;
    if (runtimeEnv) {
      this.runtimeEnvs.hold(runtimeEnv);
      w.env = runtimeEnv;
    }
    this.workers.set(id, w);
    proc.proc.on('exit', (code, signal) => this.workerExited(w, code, signal));
    proc.proc.on('error', (err) => logger().error({ err, worker: id }, 'worker process error'));
    // Workers must not keep the driver alive on their own.
    proc.proc.unref();
    return w;
  }

  /** @internal */ stopWorker(w: WorkerHandle): void {
    if (w.state === 'dead') return;
    if (w.state === 'ready') this.send(w, { shutdown: { reason: 'idle' } });
    else w.kill('SIGTERM');
  }

  /**
   * A client driver left (goodbye, silence, or its process is gone): drop what it held. A driver is
   * its job: when no other connection of the job is left, the job ends on every node.
   */
  /** @internal */
  clientGone(w: WorkerHandle, why: string): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    this.workers.delete(w.id);
    logger().info({ client: w.id, why }, 'client driver left');
    this.releaseWorkerHolds(w);
    if (w.kind !== 'driver' || !w.jobId) return;
    for (const o of this.workers.values()) if (o.kind === 'driver' && o.jobId === w.jobId) return;
    this.endJob(w.jobId, `its driver left (${why})`);
    this.link?.gcs.endJob(w.jobId).catch((err: Error) => logger().warn({ job: w.jobId, err }, 'could not tell the GCS that a job ended'));
  }

  /** Jobs that ended here (bounded): a late message of such a job starts nothing. */
  private readonly endedJobs = new PeerMemory();

  /**
   * A job ended (as Ray does when a driver exits): its non-detached placement groups are removed, its
   * non-detached actors killed, its queued tasks cancelled and its workers stopped. Detached actors
   * and groups stay, and so do the workers that host them. Idempotent.
   */
  endJob(jobId: string, why: string): void {
    if (this.closed || jobId === this.jobId || !this.endedJobs.once(jobId)) return;
    logger().info({ job: jobId, why }, 'job ended');
    for (const key of [...this.publishedEnvs.keys()]) if (key.startsWith(`${jobId}\0`)) this.publishedEnvs.delete(key);
    for (const pg of [...this.pgs.values()]) {
      if (pg.jobId === jobId && !pg.detached && !pg.noWait && pg.state !== 'removed') this.removePlacementGroup(pg.id);
    }
    for (const rec of [...this.actors.values()]) {
      if (rec.jobId !== jobId || rec.creation.detached || rec.proxy || rec.state === 'dead') continue;
      const w = rec.worker;
      rec.killed = true;
      if (rec.remoteNode !== undefined && !w) this.link?.existingPeer(rec.remoteNode)?.send({ killActor: { actorId: rec.id, noRestart: true } });
      this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'owner_died', detail: `its job ${jobId} ended (${why})` });
      if (w) w.kill('SIGKILL');
    }
    const cancelled = (t: TaskRecord) => errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: true });
    for (const q of this.queues.values()) {
      for (const t of q.removeWhere((x) => x.jobId === jobId && !x.actor)) this.finishTask(t, cancelled(t));
    }
    for (const w of [...this.workers.values()]) {
      if (w.kind !== 'worker' || w.jobId !== jobId || w.actor) continue;
      const busy = w.pipeline.length > 0;
      for (const t of w.pipeline) t.cancelled = { forced: true };
      if (busy) w.kill('SIGKILL');
      else {
        const i = this.idle.indexOf(w);
        if (i !== -1) this.idle.splice(i, 1);
        this.stopWorker(w);
      }
    }
    this.scheduleDispatch();
  }

  private reapIdle(): void {
    const limit = this.opts.idleWorkerTimeoutMs ?? 1000;
    const now = Date.now();
    const clientLimit = this.opts.clientTimeoutMs ?? 10_000;
    for (const w of [...this.workers.values()]) {
      // Peer nodes are not timed out here: the GCS declares a silent node dead (nodeDied drops it).
      if (w.kind !== 'driver') continue;
      if (now - w.lastSeen > clientLimit) this.clientGone(w, `silent for ${now - w.lastSeen} ms`);
      // A driver on this machine that was killed is seen at once (its pid is gone).
      else if (!w.remote && w.pid > 0 && !processAlive(w.pid)) this.clientGone(w, `its process ${w.pid} exited`);
    }
    while (this.idle.length > this.cpuSlots && now - this.idle[0]!.idleSince > limit) {
      this.stopWorker(this.idle.shift()!);
    }
  }

  private workerExited(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    this.workers.delete(w.id);
    if (w.env) {
      this.runtimeEnvs.drop(w.env);
      w.env = undefined;
    }
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
    this.taskManager.onWorkerDied(w, detail);
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

  // ---------------------------------------------------------------- socket

  /** @internal */
  send(w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder): void {
    if (w.state === 'dead') return;
    if (TRACE) process.stderr.write(`node -> ${w.id} ${JSON.stringify(body).slice(0, 300)}\n`);
    this.server.send(w.identity, body, fb && !fb.empty ? fb.frames() : undefined);
  }

  private handle(identity: Buffer, message: DecodedMessage): void {
    const { envelope, kind } = message;
    let w = this.workers.get(identity.toString());
    if (kind === 'registerWorker') {
      const r = envelope.registerWorker!;
      const idStr = identity.toString();
      const why = this.verifier.check(idStr, r.authProof, Number(r.authTime ?? 0), r.authNonce);
      if (why) {
        const message = `node ${this.nodeId} refused the connection: ${why}`;
        this.server.refuse(identity, { kind: r.kind, pid: r.pid }, `refused a connection: ${why}`, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message } });
        return;
      }
      if (!w && (r.kind === 'driver' || r.kind === 'peer')) {
        // A client driver (init({address})) or another node joins.
        w = new WorkerHandle(idStr, undefined, '', r.kind);
        w.namespace = r.namespace || `anon-${r.jobId}`;
        w.jobId = r.jobId ?? '';
        w.pid = r.pid ?? 0;
        w.remote = r.remote === true;
        if (r.kind === 'peer') w.peerNodeId = idStr.replace(/^peer:/, '');
        this.workers.set(w.id, w);
        logger().info({ client: w.id, pid: r.pid, kind: r.kind, namespace: w.namespace }, r.kind === 'peer' ? 'peer node connected' : 'client driver connected');
      }
    }
    if (!w) {
      const msg = 'message from an unregistered connection; refused, the connection is closed (RegisterWorker with a token proof must come first)';
      this.server.refuse(identity, { kind }, msg, { error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: `node ${this.nodeId}: register first (RegisterWorker with a token proof)` } });
      return;
    }
    if (w.state === 'starting' && kind !== 'registerWorker') {
      logger().warn({ peer: w.id, kind }, 'message before registration; dropped');
      return;
    }
    const handler = NODE_MESSAGE_HANDLERS[kind];
    if (handler) handler(this, w, message);
    else logger().warn({ worker: w.id, kind }, 'unexpected message kind from a worker; ignored');
  }

  /** @internal A task by id (NodeMessageHost). */
  taskById(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  /** @internal Send `w` what is due at the next flush: its queued tasks, and `ready` (an object it subscribed to). */
  markForFlush(w: WorkerHandle, ready?: ObjectEntry): void {
    if (ready) w.readyOut.push(ready);
    this.dirtyWorkers.add(w);
    this.scheduleFlush();
  }

  /** @internal A task submitted by a worker, client driver or peer node. */
  submitFrom(spec: SubmitSpec, owner: WorkerHandle): void {
    this.submit(spec, owner);
  }

  /** @internal */
  onResult(w: WorkerHandle, r: tsray.v1.ITaskResult, payloads: Buffer[]): void { this.taskManager.onResult(w, r, payloads); }

  /** @internal */
  onBlocked(w: WorkerHandle, b: tsray.v1.IWorkerBlocked): void { this.taskManager.onBlocked(w, b); }

  // ---------------------------------------------------------------- multi-node (split: cluster-forwarder.ts, object-transfer.ts)

  /** @internal */ get link(): ClusterLinkApi | undefined { return this.forwarder.link; }
  private get remoteNodes(): Map<string, tsray.v1.INodeInfo> { return this.forwarder.remoteNodes; }
  private get publishedEnvs(): Map<string, Promise<string>> { return this.forwarder.publishedEnvs; }
  private joinCluster(gcsAddress: string): Promise<void> { return this.forwarder.joinCluster(gcsAddress); }
  /** @internal */ placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined { return this.forwarder.placeRemote(t, req); }
  private spillQueue(q: Deque<TaskRecord>): void { this.forwarder.spillQueue(q); }
  /** @internal */ peerFor(nodeId: string): PeerConnection { return this.forwarder.peerFor(nodeId); }
  /** @internal */ forwardTask(t: TaskRecord, target: string): void { this.forwarder.forwardTask(t, target); }
  /** @internal */ forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void { this.forwarder.forwardActorCreation(rec, t, target); }
  /** @internal */ sendObjectsRemote(w: WorkerHandle, entries: ObjectEntry[]): void { this.transfer.sendObjectsRemote(w, entries); }
  /** @internal */ toArena(d: StoredObject): StoredObject { return this.transfer.toArena(d); }
  /** @internal */ onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): StoredObject | undefined { return this.transfer.onChunk(from, c, payload); }

  /** The node as its object transfer sees it. */
  private objectTransferHost(): ObjectTransferHost {
    const node = this;
    return {
      get objects() { return node.objects; },
      get store() { return node.store; },
      sendFrames: (w, body, frames) => {
        if (w.state !== 'dead') this.server.send(w.identity, body, frames);
      },
      send: (w, body, fb) => this.send(w, body, fb),
      unpinView: (id) => this.unpinView(id),
    };
  }

  /** The node as its cluster forwarder sees it (read at call time: other components own some of it). */
  private clusterForwarderHost(): ClusterForwarderHost {
    const node = this;
    return {
      nodeId: this.nodeId,
      address: this.address,
      get tcpAddress() { return node.tcpAddress; },
      token: this.token,
      get resources() { return node.resources; },
      get cluster() { return node.cluster; },
      get objects() { return node.objects; },
      get store() { return node.store; },
      get nodePool() { return node.nodePool; },
      get transfer() { return node.transfer; },
      task: (taskId) => this.tasks.get(taskId),
      hasQueuedWork: () => [...this.queues.values()].some((q) => q.length > 0),
      finishTask: (t, data) => this.finishTask(t, data),
      enqueue: (t, front) => this.enqueue(t, front),
      scheduleDispatch: () => this.scheduleDispatch(),
      resetFeasibility: () => this.feasibilityChecked.clear(),
      actorRecords: () => this.actors.values(),
      actorDead: (rec, info) => this.actorDead(rec, info),
      remoteActorDied: (rec, inflight, detail) => this.remoteActorDied(rec, inflight, detail),
      pumpActor: (rec) => this.pumpActor(rec),
      maybeStopActor: (rec) => this.maybeStopActor(rec),
      gcsActorUpdate: (rec, fields) => this.gcsActorUpdate(rec, fields),
      placementGroup: (id) => this.pgs.get(id),
      onRemotePgPart: (pg, from, d) => this.onRemotePgPart(pg, from, d),
      peerClientGone: (nodeId, why) => {
        const peerHandle = this.workers.get(`peer:${nodeId}`);
        if (peerHandle) this.clientGone(peerHandle, why);
      },
      endJob: (jobId, why) => this.endJob(jobId, why),
      localState: (what) => this.localState(what),
      runtimeEnvAgent: () => this.runtimeEnvs.agent,
    };
  }

  private remoteActorDied(rec: ActorRecord, inflight: TaskRecord[], detail: string): void { this.actorManager.remoteActorDied(rec, inflight, detail); }

  private gcsActorUpdate(rec: ActorRecord, fields: ActorUpdateFields): void { this.actorManager.gcsActorUpdate(rec, fields); }
  private resolveRemoteActor(spec: SubmitSpec, owner: WorkerHandle | undefined): void { this.actorManager.resolveRemoteActor(spec, owner); }

  /** This node's tasks, objects, actors, placement groups and demand (state API). */
  localState(what: string): Record<string, unknown[]> { return this.stateService.localState(what); }
  /** State API calls from drivers (`nodes()`, `listActors()`, ...): local, or cluster-wide through the GCS. */
  async stateCall(method: string): Promise<unknown> { return this.stateService.stateCall(method); }

  // ---------------------------------------------------------------- stats / shutdown

  /** Numbers for tests and the state API. */
  stats(): ReturnType<StateService['stats']> { return this.stateService.stats(); }

  /** Runtime env agent statistics (installs, holds, GC); undefined before any environment was asked for. */
  runtimeEnvStats(): ReturnType<NodeRuntimeEnvs['stats']> {
    return this.runtimeEnvsInstance?.stats();
  }

  /** Pids of live workers (for tests). */
  workerPids(): number[] { return this.stateService.workerPids(); }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reaper);
    this.abort.abort();
    this.link?.close();
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
    await this.server.close();
    removeSocketFile(this.address);
    this.objects.clear();
    this.store.close();
    await this.runtimeEnvsInstance?.close();
  }
}

const viewRegistry = new FinalizationRegistry<{ node: NodeRuntime; id: string }>((h) => h.node.unpinView(h.id));
