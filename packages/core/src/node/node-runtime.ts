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
import { RuntimeStateError } from '../errors.js';
import { logger } from '../logger.js';
import type { ActorInfoData, CoreRuntime, RuntimeContext, SubmitSpec } from '../runtime.js';
import type { PendingDemand } from '../state-api.js';
import { type SerializedValue } from '../serialization.js';
import { FrameBuilder } from '../wire.js';
import { ObjectTable, type ObjectEntry, type StoredObject } from './object-table.js';
import { NodeStore } from './store.js';
import { NodeRuntimeEnvs, type EnvEntry } from './runtime-envs.js';
import { TokenVerifier } from '../auth.js';
import { PeerMemory } from '../peer-memory.js';
import { RouterServer } from '../router-server.js';
import type { PeerConnection } from '../cluster/link.js';
import { ClusterForwarder, type ClusterForwarderHost, type ClusterLinkApi } from './cluster-forwarder.js';
import { ObjectTransfer, type ObjectTransferHost } from './object-transfer.js';
import { nodeSocketAddress, removeSocketFile, streamSocketPath } from './socket-path.js';
import { WorkerHandle, type ActorRecord, type PgRecord, type Pool, type TaskRecord } from './records.js';
import { errorObject } from './node-support.js';
import { NODE_MESSAGE_HANDLERS, type NodeMessageHost } from './node-messages.js';
import { TaskManager, type TaskManagerHost } from './task-manager.js';
import { ActorManager } from './actor-manager.js';
import { WorkerPool, type WorkerPoolHost } from './worker-pool.js';
import { ObjectManager } from './object-manager.js';
import { PlacementGroupManager, type PlacementGroupHost } from './placement-group-manager.js';
import { StateService, type StateServiceHost } from './state-service.js';
import { PendingWarner } from './pending-warner.js';

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
  /** The unix stream socket of its workers (stream-server.ts), when on. */ private readonly streamPath: string | undefined;
  readonly objects: ObjectTable;
  readonly store: NodeStore;
  readonly resources: NodeResources;
  /** Workers, drivers and peer nodes connect here (ipc, and tcp in a cluster); bounded per connection. */
  private readonly server: RouterServer;
  /** The embedded driver's gets, waits and zero-copy views (node/object-manager.ts). */
  private readonly objectManager: ObjectManager;
  /** Worker processes, client drivers and peer nodes; leases and idle reuse (node/worker-pool.ts). */
  private readonly pool: WorkerPool;
  /** @internal */ closed = false;
  private readonly cpuSlots: number;
  private readonly abort = new AbortController();
  private readonly reaper: NodeJS.Timeout;
  /** Actors: records, names, creation, restarts (node/actor-manager.ts). */
  private readonly actorManager: ActorManager;
  readonly namespace: string;
  private readonly placementGroups: PlacementGroupManager;
  private readonly stateService: StateService;
  /** "cannot be scheduled right now" after TSRAY_PENDING_WARNING_S (node/pending-warner.ts). */
  private readonly pendingWarner: PendingWarner;
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
  /** @internal */ get tasks(): Map<string, TaskRecord> {
    return this.taskManager.tasks;
  }

  private constructor(private readonly opts: NodeRuntimeOptions) {
    this.token = opts.token ?? randomBytes(24).toString('hex');
    this.server = new RouterServer({
      where: 'node',
      maxFrameBytes: opts.maxFrameBytes,
      onPeerBytes: (id, dir, frames) => this.forwarder.directory.traffic.addFrames(id, dir, frames),
      trace: TRACE,
      token: this.token,
      registered: (identity) => {
        const w = this.pool.workers.get(identity.toString());
        return w ? { kind: w.kind } : undefined;
      },
      onMessage: (identity, message) => this.handle(identity, message),
      claimed: (id) => this.pool.workers.get(id)?.state !== 'starting', // only a worker it started may take its id (stream)
    });
    this.nodeId = opts.nodeId;
    this.jobId = opts.jobId;
    this.verifier = new TokenVerifier(this.token, opts.nodeId);
    this.namespace = opts.namespace;
    this.address = nodeSocketAddress(opts.sessionDir, opts.nodeId);
    this.streamPath = config().workerStream ? streamSocketPath(this.address) : undefined;
    mkdirSync(join(opts.sessionDir, 'logs'), { recursive: true });
    this.store = new NodeStore({
      capacity: opts.objectStoreMemory,
      spillDir: join(opts.sessionDir, 'spill'),
      spilling: opts.spilling,
      prefaultBytes: opts.prefaultBytes,
      onPressure: () => this.objectManager.requestGc(),
    });
    this.objects = new ObjectTable(
      (d) => this.store.release(d),
      (id) => this.actorManager.onUnreferenced(id),
    );
    this.store.attach(this.objects);
    this.objectManager = new ObjectManager(this.objects, this.store);
    this.resources = new NodeResources(opts.resources, { labels: opts.labels ?? {}, ...(opts.gpuIds ? { gpuIds: opts.gpuIds } : {}) });
    this.cpuSlots = Math.max(1, Math.floor(opts.resources['CPU'] ?? 1));
    this.cluster.addNode(this.nodeId, this.resources);
    this.localView.addNode(this.nodeId, this.resources);
    this.nodePool = { key: '', resources: this.resources, pg: undefined, bundleIndex: -1 };
    this.pool = new WorkerPool(this.workerPoolHost(), {
      sessionDir: opts.sessionDir,
      python: opts.python,
      logToDriver: opts.logToDriver,
      hasGpus: (opts.resources['GPU'] ?? 0) > 0,
      cpuSlots: this.cpuSlots,
      idleWorkerTimeoutMs: opts.idleWorkerTimeoutMs,
      clientTimeoutMs: opts.clientTimeoutMs ?? config().clientTimeoutMs,
    });
    this.reaper = setInterval(() => this.pool.reapIdle(), 500);
    this.reaper.unref();
    // ---- components (split)
    this.taskManager = new TaskManager(this.taskManagerHost());
    this.actorManager = new ActorManager(this);
    this.transfer = new ObjectTransfer(this.objectTransferHost());
    this.forwarder = new ClusterForwarder(this.clusterForwarderHost(), {
      sessionDir: opts.sessionDir,
      isHead: opts.isHead,
      labels: opts.labels,
      headLostTimeoutMs: opts.headLostTimeoutMs,
      onFatal: opts.onFatal,
    });
    this.placementGroups = new PlacementGroupManager(this.placementGroupHost());
    this.stateService = new StateService(this.stateServiceHost());
    this.pendingWarner = new PendingWarner(this.stateServiceHost(), config().pendingWarningS * 1000);
  }

  /** Start a node runtime (binds its socket). */
  static async start(opts: NodeRuntimeOptions): Promise<NodeRuntime> {
    const n = new NodeRuntime(opts);
    await n.server.bind(n.address);
    if (n.streamPath) await n.server.listenStream(n.streamPath);
    if (opts.tcp) {
      try {
        n.tcpAddress = await n.server.bind(`tcp://${opts.tcp.host}:${opts.tcp.port}`);
      } catch (e) {
        await n.server.close();
        n.store.close();
        if (/in use/i.test(String((e as Error).message)))
          throw new RuntimeStateError(`node port ${opts.tcp.port} on ${opts.tcp.host} is already in use by another process (pick another with --node-port)`);
        throw e;
      }
      const adv = opts.tcp.advertise;
      if (adv) n.tcpAddress = `tcp://${adv.includes(':') ? `[${adv}]` : adv}:${n.tcpAddress.split(':').pop()}`;
    }
    n.server.start();
    if (opts.gcsAddress) {
      try {
        await n.forwarder.joinCluster(opts.gcsAddress);
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
    return this.objectManager.get(ids, timeoutMs);
  }

  wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<number[]> {
    return this.objectManager.wait(ids, numReturns, timeoutMs);
  }

  cancel(id: string, force: boolean): void {
    this.taskManager.cancel(id, force);
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

  // ---------------------------------------------------------------- tasks (TaskManager)

  /** @internal */ submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void {
    this.taskManager.submit(spec, owner);
  }
  /** @internal */ enqueue(t: TaskRecord, front = false): void {
    this.taskManager.enqueue(t, front);
  }
  /** @internal */ warnIfInfeasible(key: string, what: string, request: ResourceRequest, pool: Pool): void {
    this.taskManager.warnIfInfeasible(key, what, request, pool);
  }
  /** @internal */ scheduleDispatch(): void {
    this.taskManager.scheduleDispatch();
  }
  /** @internal */ assign(t: TaskRecord, w: WorkerHandle): void {
    this.taskManager.assign(t, w);
  }
  /** @internal */ scheduleFlush(): void {
    this.taskManager.scheduleFlush();
  }
  /** @internal */ sealReturns(t: TaskRecord, data: StoredObject): void {
    this.taskManager.sealReturns(t, data);
  }
  /** @internal */ finishTask(t: TaskRecord, data: StoredObject | undefined): void {
    this.taskManager.finishTask(t, data);
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
      leasesByKey: this.pool.leasesByKey,
      get workerCount() {
        return node.pool.size;
      },
      cpuSlots: this.cpuSlots,
      newLease: (key, head) => this.pool.newLease(key, head),
      releaseLease: (w) => this.pool.releaseLease(w),
      send: (w, body, fb) => this.send(w, body, fb),
      sendObjectsRemote: (w, entries) => this.transfer.sendObjectsRemote(w, entries),
      jobEnded: (jobId) => this.endedJobs.has(jobId),
      namespaceOf: (owner) => this.namespaceOf(owner),
      registerActor: (t, owner) => this.actorManager.registerActor(t, owner),
      actorFor: (actorId) => this.actorManager.actors.get(this.actorManager.aliases.get(actorId) ?? actorId),
      queueActorStart: (rec) => this.actorManager.queueActorStart(rec),
      pumpActor: (rec) => this.actorManager.pumpActor(rec),
      startPendingActors: () => {
        if (this.actorManager.pendingActors.length > 0) this.actorManager.startActors();
      },
      actorDead: (rec, info) => this.actorManager.actorDead(rec, info),
      onActorCreated: (t, status, datas) => this.actorManager.onActorCreated(t, status, datas),
      maybeStopActor: (rec) => this.actorManager.maybeStopActor(rec),
      placementGroup: (id) => this.placementGroups.pgs.get(id),
      placePendingGroups: () => {
        if (this.placementGroups.pendingPgs.length > 0 || this.placementGroups.rescheduling) this.placementGroups.placePending();
      },
      unschedulable: (s) => this.forwarder.unschedulable(s),
      resolveRemoteActor: (spec, owner) => this.actorManager.resolveRemoteActor(spec, owner),
      placeRemote: (t, req) => this.placeRemote(t, req),
      argsHere: (t, then) => this.forwarder.argsHere(t, then),
      forwardTask: (t, target) => this.forwardTask(t, target),
      forwardActorCreation: (rec, t, target) => this.forwardActorCreation(rec, t, target),
      spillQueue: (q) => {
        if (this.link && this.cluster.aliveCount > 1) this.forwarder.spillQueue(q);
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

  /** @internal */ namespaceOf(w: WorkerHandle): string {
    return this.actorManager.namespaceOf(w);
  }
  createActor(spec: SubmitSpec): string {
    return this.actorManager.createActor(spec);
  }
  getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> {
    return this.actorManager.getActor(name, namespace);
  }
  killActor(actorId: string, noRestart: boolean): void {
    this.actorManager.killActor(actorId, noRestart);
  }

  // ---------------------------------------------------------------- placement groups

  createPlacementGroup(
    id: string,
    bundles: Record<string, number>[],
    strategy: string,
    name: string,
    detached: boolean,
    noWait = false,
    jobId = this.jobId,
  ): void {
    this.placementGroups.createPlacementGroup(id, bundles, strategy, name, detached, noWait, jobId);
  }
  removePlacementGroup(id: string): void {
    this.placementGroups.removePlacementGroup(id);
  }

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
    for (const rec of this.actorManager.actors.values()) {
      if (rec.pool?.pg === pg && rec.state !== 'dead') {
        rec.killed = true;
        const w = rec.worker;
        this.actorManager.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: reason });
        if (w) w.kill('SIGKILL');
      }
    }
    for (const t of [...this.tasks.values()]) {
      if (t.pool?.pg !== pg || t.actor) continue;
      if (t.state === 'queued') {
        for (const q of this.taskManager.queues.values()) if (q.remove(t)) break;
        this.finishTask(t, err(`task ${t.spec.name}`));
      } else if (t.state === 'dispatched' && t.worker) {
        t.cancelled = { forced: true };
        this.sealReturns(t, err(`task ${t.spec.name}`));
        t.worker.kill('SIGKILL');
      }
    }
  }

  // ---------------------------------------------------------------- state API

  clusterResources(): Record<string, number> {
    return this.stateService.clusterResources();
  }
  availableResources(): Record<string, number> {
    return this.stateService.availableResources();
  }
  pendingDemand(): PendingDemand[] {
    return this.stateService.pendingDemand();
  }

  /** What the state service reads of the rest of the node. */
  private stateServiceHost(): StateServiceHost {
    return {
      nodeId: this.nodeId,
      resources: this.resources,
      objects: this.objects,
      store: this.store,
      identity: () => ({
        isHead: this.opts.isHead ?? !this.link,
        address: this.tcpAddress || this.address,
        labels: this.opts.labels ?? {},
        startTime: this.startedAt,
      }),
      nodePool: () => this.nodePool,
      tasks: () => this.tasks,
      taskQueues: () => this.taskManager.queues.values(),
      taskEvents: () => this.taskManager.timeline.rows(),
      nodeCounters: () => ({ ...this.actorManager.counters }),
      taskFailures: () => this.taskManager.timeline.failures.rows(),
      transferStats: () => ({ nodeId: this.nodeId, ...this.forwarder.transferStats(), served: this.transfer.pullServer.stats() }),
      actors: () => this.actorManager.actors.values(),
      pendingActors: () => this.actorManager.pendingActors,
      placementGroups: () => this.placementGroups.pgs.values(),
      pendingPlacementGroups: () => this.placementGroups.pendingPgs,
      workers: () => this.pool.workers,
      clusterView: () => this.cluster,
      gcs: () => this.link?.gcs,
    };
  }

  // ---------------------------------------------------------------- workers

  /** @internal */ startWorker(gpuKey: string, gpuIds: readonly string[], jobId: string, python = false, runtimeEnv?: EnvEntry): WorkerHandle {
    return this.pool.startWorker(gpuKey, gpuIds, jobId, python, runtimeEnv);
  }
  /** @internal */ stopWorker(w: WorkerHandle): void {
    this.pool.stopWorker(w);
  }

  /** The node as its worker pool sees it. */
  private workerPoolHost(): WorkerPoolHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- getters of the literal read the node's current state
    const node = this;
    return {
      nodeId: this.nodeId,
      address: this.address,
      streamPath: this.streamPath,
      token: this.token,
      objects: this.objects,
      store: this.store,
      nodePool: this.nodePool,
      get runtimeEnvs() {
        return node.runtimeEnvs;
      },
      get closed() {
        return node.closed;
      },
      send: (w, body) => this.send(w, body),
      scheduleDispatch: () => this.scheduleDispatch(),
      forgetWorker: (w) => {
        this.taskManager.dirtyWorkers.delete(w);
        this.server.forget(w.id);
      },
      workerDied: (w, detail) => (w.actor ? this.actorManager.actorWorkerDied(w.actor, w, detail) : this.taskManager.onWorkerDied(w, detail)),
      clientGone: (w, why) => this.clientGone(w, why),
    };
  }

  /**
   * A client driver left (goodbye, silence, or its process is gone): drop what it held. A driver is
   * its job: when no other connection of the job is left, the job ends on every node.
   */
  /** @internal */ clientGone(w: WorkerHandle, why: string): void {
    if (w.state === 'dead') return;
    this.pool.removeClient(w);
    logger().info({ client: w.id, why }, 'client driver left');
    if (w.kind !== 'driver' || !w.jobId || this.pool.hasDriverOf(w.jobId)) return;
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
    for (const key of [...this.forwarder.publishedEnvs.keys()]) if (key.startsWith(`${jobId}\0`)) this.forwarder.publishedEnvs.delete(key);
    for (const pg of [...this.placementGroups.pgs.values()]) {
      if (pg.jobId === jobId && !pg.detached && !pg.noWait && pg.state !== 'removed') this.removePlacementGroup(pg.id);
    }
    for (const rec of [...this.actorManager.actors.values()]) {
      if (rec.jobId !== jobId || rec.creation.detached || rec.proxy || rec.state === 'dead') continue;
      const w = rec.worker;
      rec.killed = true;
      if (rec.remoteNode !== undefined && !w) this.link?.existingPeer(rec.remoteNode)?.send({ killActor: { actorId: rec.id, noRestart: true } });
      this.actorManager.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'owner_died', detail: `its job ${jobId} ended (${why})` });
      if (w) w.kill('SIGKILL');
    }
    const cancelled = (t: TaskRecord) => errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: true });
    for (const q of this.taskManager.queues.values()) {
      for (const t of q.removeWhere((x) => x.jobId === jobId && !x.actor)) this.finishTask(t, cancelled(t));
    }
    this.pool.stopJobWorkers(jobId);
    this.scheduleDispatch();
  }

  // ---------------------------------------------------------------- socket

  /** @internal */ send(w: WorkerHandle, body: EnvelopeBody, fb?: FrameBuilder): void {
    if (w.state === 'dead') return;
    if (TRACE) process.stderr.write(`node -> ${w.id} ${JSON.stringify(body).slice(0, 300)}\n`);
    this.server.send(w.identity, body, fb && !fb.empty ? fb.frames() : undefined);
  }

  private handle(identity: Buffer, message: DecodedMessage): void {
    const { envelope, kind } = message;
    let w = this.pool.workers.get(identity.toString());
    if (kind === 'registerWorker') {
      const r = envelope.registerWorker!;
      const idStr = identity.toString();
      const why = this.verifier.check('RegisterWorker', idStr, r.authProof, Number(r.authTime ?? 0), r.authNonce);
      if (why) {
        const message = `node ${this.nodeId} refused the connection: ${why}`;
        this.server.refuse(identity, { kind: r.kind, pid: r.pid }, `refused a connection: ${why}`, {
          error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message },
        });
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
        this.pool.addClient(w);
        logger().info(
          { client: w.id, pid: r.pid, kind: r.kind, namespace: w.namespace },
          r.kind === 'peer' ? 'peer node connected' : 'client driver connected',
        );
      }
    }
    if (!w) {
      const msg = 'message from an unregistered connection; refused, the connection is closed (RegisterWorker with a token proof must come first)';
      this.server.refuse(identity, { kind }, msg, {
        error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: `node ${this.nodeId}: register first (RegisterWorker with a token proof)` },
      });
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
    this.taskManager.dirtyWorkers.add(w);
    this.scheduleFlush();
  }

  /** @internal A task submitted by a worker, client driver or peer node. */
  submitFrom(spec: SubmitSpec, owner: WorkerHandle): void {
    this.submit(spec, owner);
  }

  /** @internal */ onResult(w: WorkerHandle, r: tsray.v1.ITaskResult, payloads: Buffer[]): void {
    this.taskManager.onResult(w, r, payloads);
  }

  /** @internal */ onBlocked(w: WorkerHandle, b: tsray.v1.IWorkerBlocked): void {
    this.taskManager.onBlocked(w, b);
  }

  // ---------------------------------------------------------------- multi-node (split: cluster-forwarder.ts, object-transfer.ts)

  /** @internal */ get link(): ClusterLinkApi | undefined {
    return this.forwarder.link;
  }
  /** @internal */ placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined {
    return this.forwarder.placeRemote(t, req);
  }
  /** @internal */ peerFor(nodeId: string): PeerConnection {
    return this.forwarder.peerFor(nodeId);
  }
  /** @internal */ isAliveNode(nodeId: string): boolean {
    return this.forwarder.isAliveNode(nodeId);
  }
  /** @internal */ forwardTask(t: TaskRecord, target: string): void {
    this.forwarder.forwardTask(t, target);
  }
  /** @internal */ forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void {
    this.forwarder.forwardActorCreation(rec, t, target);
  }
  /** @internal */ toArena(d: StoredObject): StoredObject {
    return this.transfer.toArena(d);
  }
  /** @internal */ nestedFromPeer(nodeId: string, contained: readonly string[]): void {
    this.forwarder.locations.arrivedFrom(nodeId, contained);
  }
  /** @internal Object locations and pull requests from a peer node (object-directory.ts, pull-server.ts). */
  onObjectMessage(w: WorkerHandle, m: tsray.v1.Envelope): void {
    if (m.pullObject || m.dataPlaneOpen) this.transfer.pullServer.onPeer(w, m);
    else if (m.objectLocations) this.forwarder.directory.onLocations(w.peerNodeId, m.objectLocations, false);
  }
  /** @internal */ onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): StoredObject | undefined {
    return this.transfer.onChunk(from, c, payload);
  }

  /** The node as its object transfer sees it. */
  private objectTransferHost(): ObjectTransferHost {
    return {
      objects: this.objects,
      store: this.store,
      sendFrames: (w, body, frames) => {
        if (w.state !== 'dead') this.server.send(w.identity, body, frames);
      },
      send: (w, body, fb) => this.send(w, body, fb),
      unpinView: (id) => this.objectManager.unpinView(id),
      dataPlane: {
        token: this.token,
        nodeId: this.nodeId,
        bindHost: this.opts.tcp?.host ?? '127.0.0.1',
        onBytes: (id, f) => this.forwarder.directory.traffic.addFrames(id, 'out', f),
      },
    };
  }

  /** The node as its cluster forwarder sees it (read at call time: other components own some of it). */
  private clusterForwarderHost(): ClusterForwarderHost {
    const node = this;
    return {
      nodeId: this.nodeId,
      address: this.address,
      get tcpAddress() {
        return node.tcpAddress;
      },
      token: this.token,
      resources: this.resources,
      cluster: this.cluster,
      objects: this.objects,
      store: this.store,
      nodePool: this.nodePool,
      get transfer() {
        return node.transfer;
      },
      task: (taskId) => this.tasks.get(taskId),
      submit: (spec, owner) => this.submit(spec, owner),
      hasQueuedWork: () => [...this.taskManager.queues.values()].some((q) => q.length > 0),
      finishTask: (t, data) => this.finishTask(t, data),
      enqueue: (t, front) => this.enqueue(t, front),
      scheduleDispatch: () => this.scheduleDispatch(),
      resetFeasibility: () => this.taskManager.feasibilityChecked.clear(),
      actorRecords: () => this.actorManager.actors.values(),
      actorDead: (rec, info) => this.actorManager.actorDead(rec, info),
      remoteActorDied: (rec, inflight, detail) => this.actorManager.remoteActorDied(rec, inflight, detail),
      proxyNodeDied: (rec, inflight, node, why) => this.actorManager.proxyNodeDied(rec, inflight, node, why),
      pumpActor: (rec) => this.actorManager.pumpActor(rec),
      maybeStopActor: (rec) => this.actorManager.maybeStopActor(rec),
      gcsActorUpdate: (rec, fields) => this.actorManager.gcsActorUpdate(rec, fields),
      placementGroup: (id) => this.placementGroups.pgs.get(id),
      onRemotePgPart: (pg, from, d) => this.placementGroups.onRemotePgPart(pg, from, d),
      placementGroupsNodeDied: (nodeId) => this.placementGroups.nodeDied(nodeId),
      peerClientGone: (nodeId, why) => {
        this.transfer.pullServer.nodeDied(nodeId);
        const peerHandle = this.pool.workers.get(`peer:${nodeId}`);
        if (peerHandle) this.clientGone(peerHandle, why);
      },
      endJob: (jobId, why) => this.endJob(jobId, why),
      localState: (what) => this.localState(what),
      runtimeEnvAgent: () => this.runtimeEnvs.agent,
    };
  }

  /** This node's tasks, objects, actors, placement groups and demand (state API). */
  localState(what: string): Record<string, unknown[]> {
    return this.stateService.localState(what);
  }
  /** State API calls from drivers (`nodes()`, `listActors()`, ...): local, or cluster-wide through the GCS. */
  async stateCall(method: string): Promise<unknown> {
    return this.stateService.stateCall(method);
  }

  // ---------------------------------------------------------------- stats / shutdown

  /** Numbers for tests and the state API. */
  stats(): ReturnType<StateService['stats']> {
    return this.stateService.stats();
  }

  /** Runtime env agent statistics (installs, holds, GC); undefined before any environment was asked for. */
  runtimeEnvStats(): ReturnType<NodeRuntimeEnvs['stats']> {
    return this.runtimeEnvsInstance?.stats();
  }

  /** Pids of live workers (for tests). */
  workerPids(): number[] {
    return this.stateService.workerPids();
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.objectManager.close();
    clearInterval(this.reaper);
    this.pendingWarner.close();
    this.abort.abort();
    this.forwarder.close();
    this.transfer.pullServer.close();
    await this.pool.stopAll();
    await this.server.close();
    removeSocketFile(this.address);
    this.objects.clear();
    this.store.close();
    await this.runtimeEnvsInstance?.close();
  }
}
