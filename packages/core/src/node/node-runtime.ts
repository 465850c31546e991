/**
 * The node runtime ("raylet"): task manager, worker pool, object table and store of one node. In an
 * embedded cluster it lives in the driver process and implements the driver's CoreRuntime directly.
 * @internal
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { ClusterView, NodeResources, ResourceRequest } from '@tsray/scheduler';
import { reserve, validateBundles, validateStrategy, type Reservation } from '@tsray/placement';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody } from '@tsray/protocol';
import { errorFromPayload, type ErrorPayload } from '../error-payload.js';
import { ActorDiedError, ActorNameTakenError, ActorNotFoundError, GetTimeoutError, PlacementGroupError, RuntimeStateError, ObjectStoreFullError, type ActorDeathInfo } from '../errors.js';
import { gcFunction } from '../gc.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import type { ActorCreation, ActorInfoData, CoreRuntime, RuntimeContext, SubmitArg, SubmitSpec } from '../runtime.js';
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
import { NodeRuntimeEnvs, type EnvEntry } from './runtime-envs.js';
import { TokenVerifier } from '../auth.js';
import { errorCodeOf, PeerMemory } from '../peer-memory.js';
import { UnregisteredPeers } from '../unregistered-peers.js';
import { routerSocketOptions } from '../router-options.js';
import type { PeerConnection } from '../cluster/link.js';
import { ClusterForwarder, type ClusterForwarderHost, type ClusterLinkApi } from './cluster-forwarder.js';
import { ObjectTransfer, type ObjectTransferHost } from './object-transfer.js';
import { nodeSocketAddress, removeSocketFile } from './socket-path.js';
import { WorkerHandle, type ActorRecord, type Lease, type PgRecord, type Pool, type TaskRecord } from './records.js';
import { cloneStored, ENC_ERROR, errorObject, fnKey, isPython, processAlive, storeErrorPayload, taskIdOf, unknownActor } from './node-support.js';
import { creationToWire, schedulingToWire, specFromWire } from './task-codec.js';

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
  /** Workers, drivers and peer nodes connect here (ipc, and tcp in a cluster); bounded per connection. */
  private readonly router: zmq.Router;
  /** Every send of the router, in order (one send in flight per socket). */
  private readonly outbox: Outbox;
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
  /** This node alone: placement groups are reserved on the node that creates them (this release). */
  private readonly localView = new ClusterView();
  private readonly nodePool: Pool;
  private readonly startedAt = Date.now();
  /** The cluster token (proved by every connection). */
  readonly token: string;
  private readonly verifier: TokenVerifier;
  /** Refused unregistered connections: one ErrorReply each, then everything they send is ignored. */
  private readonly unregistered = new UnregisteredPeers('node');
  /** tcp://host:port for other nodes and remote drivers (multi-node). */
  tcpAddress = '';
  /** Multi-node: the other nodes, work forwarded to them, their deaths (see cluster-forwarder.ts). */
  private readonly forwarder: ClusterForwarder;
  /** Objects to other nodes and remote drivers, chunked objects arriving (see object-transfer.ts). */
  private readonly transfer: ObjectTransfer;
  /** Calls to actors not known here yet (resolving through the GCS), in order. */
  private readonly unresolvedCalls = new Map<string, TaskRecord[]>();

  private constructor(private readonly opts: NodeRuntimeOptions) {
    this.router = new zmq.Router(routerSocketOptions(opts.maxFrameBytes));
    this.outbox = new Outbox(this.router);
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
    this.transfer = new ObjectTransfer(this.objectTransferHost());
    this.forwarder = new ClusterForwarder(this.clusterForwarderHost(), { sessionDir: opts.sessionDir, isHead: opts.isHead, labels: opts.labels, headLostTimeoutMs: opts.headLostTimeoutMs, onFatal: opts.onFatal });
  }

  /** Start a node runtime (binds its socket). */
  static async start(opts: NodeRuntimeOptions): Promise<NodeRuntime> {
    const n = new NodeRuntime(opts);
    await n.router.bind(n.address);
    if (opts.tcp) {
      try {
        await n.router.bind(`tcp://${opts.tcp.host}:${opts.tcp.port}`);
      } catch (e) {
        n.router.close();
        n.store.close();
        if (/in use/i.test(String((e as Error).message))) throw new RuntimeStateError(`node port ${opts.tcp.port} on ${opts.tcp.host} is already in use by another process (pick another with --node-port)`);
        throw e;
      }
      n.tcpAddress = n.router.lastEndpoint ?? '';
      const adv = opts.tcp.advertise;
      if (adv) n.tcpAddress = `tcp://${adv.includes(':') ? `[${adv}]` : adv}:${n.tcpAddress.split(':').pop()}`;
    }
    n.receiving = n.receiveLoop();
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
    if (t.remote) {
      this.link?.existingPeer(t.remote)?.send({ cancelRequest: { objectId: id, force } });
      this.sealReturns(t, errorObject(payload));
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
      jobId: spec.jobId || (owner && owner.kind !== 'peer' ? owner.jobId : '') || this.jobId,
      actor: undefined,
      pool: undefined,
      remote: undefined,
      remoteLeft: 0,
    };
    this.tasks.set(spec.taskId, t);
    if (spec.actorCreation) {
      const rec = this.registerActor(t, owner);
      if (!rec) return;
      t.actor = rec;
    } else if (spec.actorId) {
      const rec = this.actors.get(this.aliases.get(spec.actorId) ?? spec.actorId);
      if (!rec && this.link) {
        // A handle from another node: find its owner through the GCS, then submit in order.
        this.tasks.delete(spec.taskId);
        this.resolveRemoteActor(spec, owner);
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
      if (sc?.kind === 'NODE_AFFINITY' && sc.nodeId !== this.nodeId && !sc.soft && !this.remoteNodes.get(sc.nodeId)?.alive) {
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

  private runtimeEnvsInstance: NodeRuntimeEnvs | undefined;

  /** The node's runtime environments (agent made on first use). */
  private get runtimeEnvs(): NodeRuntimeEnvs {
    return (this.runtimeEnvsInstance ??= new NodeRuntimeEnvs({
      sessionDir: this.opts.sessionDir,
      python: this.opts.python,
      logToDriver: this.opts.logToDriver,
      // Multi-node: packages (workingDir, pyModules) published by other nodes come from the GCS.
      fetchPackage: async (hash, dest) => {
        if (!this.link) throw new Error(`package ${hash} is not on this node and there is no cluster to fetch it from`);
        const r = await this.link.call<{ value: string | null }>('kv.get', { key: `pkg:${hash}` }, 120_000);
        if (!r.value) throw new Error(`package ${hash} was not published to the cluster (GCS key pkg:${hash})`);
        const tmp = `${dest}.${process.pid}.part`;
        writeFileSync(tmp, Buffer.from(r.value, 'base64'));
        renameSync(tmp, dest);
      },
    }));
  }

  /**
   * True when the task's runtime env is ready (it is held for the task). Else the task waits for the
   * build and is enqueued again; a failed build fails the task (an actor creation: the actor dies)
   * with RuntimeEnvSetupError.
   */
  private awaitRuntimeEnv(t: TaskRecord, front: boolean): boolean {
    const ready = this.runtimeEnvs.request(t.spec.runtimeEnv!, t.jobId, (entry, error) => {
      if (t.state === 'done' || this.closed) {
        if (entry) this.runtimeEnvs.drop(entry);
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
        this.actorDead(t.actor, { actorId: t.actor.id, className: t.actor.creation.className, reason: 'runtime_env', detail: `its runtime env could not be set up: ${error!.type === 'RuntimeEnvSetupError' ? `${error!.message}${error!.output ? `: ${error!.output.trim().split('\n').slice(-3).join(' | ')}` : ''}` : ''}` });
      } else this.finishTask(t, err);
    });
    if (ready) this.useRuntimeEnv(t, ready);
    return ready !== undefined;
  }

  private useRuntimeEnv(t: TaskRecord, entry: EnvEntry): void {
    t.env = entry;
    if (t.actor && t.spec.actorCreation && !t.actor.env) {
      this.runtimeEnvs.hold(entry);
      t.actor.env = entry;
    }
  }

  private enqueue(t: TaskRecord, front = false): void {
    if (this.endedJobs.has(t.jobId)) {
      this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: true }));
      return;
    }
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
    if (t.pool.remoteNode !== undefined && (!t.actor || t.spec.actorCreation)) {
      // A bundle reserved on another node: the work runs there, in that node's part of the group.
      const sc = t.spec.scheduling!;
      t.spec = { ...t.spec, scheduling: { ...sc, bundleIndex: t.pool.remoteIndex ?? 0 } };
      if (t.actor) this.forwardActorCreation(t.actor, t, t.pool.remoteNode);
      else this.forwardTask(t, t.pool.remoteNode);
      return;
    }
    if (this.link && !t.pool.pg && (!t.actor || t.spec.actorCreation)) {
      const target = this.placeRemote(t, t.actor ? t.actor.schedule : t.request);
      if (target) {
        if (t.actor) this.forwardActorCreation(t.actor, t, target);
        else this.forwardTask(t, target);
        return;
      }
    }
    // The task's runtime env is built (once per node) before a worker starts for it; the task waits, not the node.
    if (t.spec.runtimeEnv && !t.env && !this.awaitRuntimeEnv(t, front)) return;
    if (t.actor) {
      t.state = 'queued';
      if (t.spec.actorCreation) this.queueActorStart(t.actor);
      else this.pumpActor(t.actor);
      return;
    }
    t.state = 'queued';
    const lang = (isPython(t.spec.fn.moduleUrl) ? '|py' : '') + (t.env ? `|env:${t.env.hash}` : '') + (t.jobId !== this.jobId ? `|job:${t.jobId}` : '');
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
          const fresh = this.newLease(key, q.peek()!);
          if (fresh) {
            if (!leases) this.leasesByKey.set(key, (leases = []));
            leases.push(fresh);
            best = fresh;
          }
        }
        if (best === undefined) break;
        this.assign(q.shift()!, best.worker);
      }
      if (q.length > 0 && this.link && this.cluster.aliveCount > 1) this.spillQueue(q);
    }
    this.scheduleFlush();
  }

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
      if (w.readyOut.length > 0 && w.remote) {
        const out = w.readyOut;
        w.readyOut = [];
        this.sendObjectsRemote(w, out);
      } else if (w.readyOut.length > 0) {
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
    if (t.env) {
      this.runtimeEnvs.drop(t.env);
      t.env = undefined;
    }
    this.tasks.delete(t.spec.taskId);
    for (const id of t.holds) this.objects.decRef(id);
    t.holds = [];
    for (const id of t.items) this.objects.decRef(id);
    t.items = [];
  }


  // ---------------------------------------------------------------- actors

  private namespaceOf(w: WorkerHandle): string {
    if (w.kind !== 'worker') return w.namespace || this.namespace;
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
      calls: [],
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
        if (this.link && !pool.pg && this.cluster.aliveCount > 1) {
          const t = this.creationTask(rec);
          const target = this.placeRemote(t, rec.schedule);
          if (target) {
            this.pendingActors.splice(i, 1);
            this.forwardActorCreation(rec, t, target);
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
      const w = this.startWorker(`actor:${rec.id}`, allocation.gpuIds, rec.jobId, isPython(rec.spec.fn.moduleUrl), rec.env);
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
      jobId: rec.jobId,
      actor: rec,
      pool: rec.pool,
      remote: undefined,
      remoteLeft: 0,
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
      this.gcsActorUpdate(rec, { state: 'ALIVE', hostNodeId: this.nodeId, pid: w?.proc?.pid ?? 0, numRestarts: rec.creation.maxRestarts - rec.restartsLeft });
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
    if (rec.remoteNode !== undefined && !rec.worker) {
      // Runs on another node (or is owned by one): calls go there in order; it queues them until alive.
      if (rec.state === 'dead') return;
      while (rec.calls.length > 0 && rec.calls[0]!.state === 'queued') this.forwardTask(rec.calls.shift()!, rec.remoteNode);
      return;
    }
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
    if (rec.remoteNode !== undefined && !rec.worker) {
      // Let the node running it drop our hold; it stops the actor after the calls it has.
      if (!rec.proxy) this.link?.existingPeer(rec.remoteNode)?.send({ refUpdates: { remove: [rec.id] } });
      this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'out_of_scope', detail: 'all handles to it are gone (non-detached actors stop then)' });
      return;
    }
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
    if (rec.env) {
      this.runtimeEnvs.drop(rec.env);
      rec.env = undefined;
    }
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
    this.gcsActorUpdate(rec, { state: 'DEAD', deathCause: `${info.reason}: ${info.detail}` });
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

  async getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> {
    const ns = namespace || this.namespace;
    if (this.liveActorByName(ns, name) || !this.link) return this.lookupActor(name, ns);
    const e = await this.link.call<{ actorId: string; className: string; methods: string[]; module?: string; key?: string; ownerNodeId: string; namespace: string; name: string } | null>('actor.lookup', { name, namespace: ns });
    if (!e) throw new ActorNotFoundError(name, ns);
    if (e.ownerNodeId !== this.nodeId) this.ensureProxy(e);
    return { actorId: e.actorId, className: e.className, methods: e.methods, module: e.module ?? '', key: e.key ?? '' };
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
    if (rec.remoteNode !== undefined && !rec.worker) {
      this.link?.existingPeer(rec.remoteNode)?.send({ killActor: { actorId: rec.id, noRestart } });
      if (!this.link?.existingPeer(rec.remoteNode)) this.peerFor(rec.remoteNode).send({ killActor: { actorId: rec.id, noRestart } });
      if (noRestart) this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: 'it was killed with kill()' });
      return;
    }
    const w = rec.worker;
    if (w && w.state !== 'dead') w.kill('SIGKILL');
    else if (noRestart) {
      this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'killed', detail: 'it was killed with kill() before it started' });
    }
  }


  // ---------------------------------------------------------------- placement groups

  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean, noWait = false, jobId = this.jobId): void {
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
      noWait,
      remoteParts: undefined,
      preparing: false,
      retryAt: 0,
      jobId,
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
      if (pg.retryAt > Date.now()) {
        i++;
        continue;
      }
      const multi = !pg.noWait && this.link !== undefined && this.cluster.aliveCount > 1;
      const r = reserve(pg.bundles, pg.strategy, multi ? this.cluster : this.localView);
      if (r.kind !== 'reserved' && pg.noWait) {
        // One node's part of a group planned elsewhere: it fits now or the planner must try again.
        this.pendingPgs.splice(i, 1);
        pg.state = 'removed';
        this.objects.seal(`${pg.id}.ready`, errorObject({ type: 'Other', name: 'PlacementGroupError', message: `node ${this.nodeId} cannot reserve its bundles of placement group ${pg.name || pg.id} now: ${r.reason}` }));
        continue;
      }
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
      pg.pools = pg.bundles.map((_, b) => ({ key: `pg:${pg.id}:${b}`, resources: r.reservation.bundleView(b), pg, bundleIndex: b }));
      if (r.reservation.nodeIds.some((n) => n !== this.nodeId)) {
        this.prepareRemoteParts(pg, r.reservation);
        continue;
      }
      pg.state = 'created';
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
    const wasCreated = pg.state === 'created' || pg.preparing;
    pg.state = 'removed';
    pg.preparing = false;
    for (const node of pg.remoteParts?.keys() ?? []) this.link?.existingPeer(node)?.send({ placementGroupRequest: { placementGroupId: id, remove: true } });
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
    return this.sumViews(false);
  }

  availableResources(): Record<string, number> {
    return this.sumViews(true);
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

  private startWorker(gpuKey: string, gpuIds: readonly string[], jobId: string, python = false, runtimeEnv?: EnvEntry): WorkerHandle {
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

  private stopWorker(w: WorkerHandle): void {
    if (w.state === 'dead') return;
    if (w.state === 'ready') this.send(w, { shutdown: { reason: 'idle' } });
    else w.kill('SIGTERM');
  }

  /**
   * A client driver left (goodbye, silence, or its process is gone): drop what it held. A driver is
   * its job: when no other connection of the job is left, the job ends on every node.
   */
  private clientGone(w: WorkerHandle, why: string): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    this.workers.delete(w.id);
    logger().info({ client: w.id, why }, 'client driver left');
    this.releaseWorkerHolds(w);
    if (w.kind !== 'driver' || !w.jobId) return;
    for (const o of this.workers.values()) if (o.kind === 'driver' && o.jobId === w.jobId) return;
    this.endJob(w.jobId, `its driver left (${why})`);
    this.link?.call('job.end', { jobId: w.jobId }).catch((err: Error) => logger().warn({ job: w.jobId, err }, 'could not tell the GCS that a job ended'));
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

  /** Receive until closed: a message's error is answered or logged, never the end of the loop. */
  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      try {
        for await (const frames of this.router) this.receive(frames);
        return;
      } catch (err) {
        if (this.closed) return;
        // A receive error (not a peer's message): log it and receive again, paced.
        logger().error({ err }, 'node socket receive failed; receiving again');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private receive(frames: Buffer[]): void {
    const identity = frames[0]!;
    if (this.unregistered.isClosed(identity)) return;
    try {
      this.handle(identity, frames.slice(1));
    } catch (err) {
      try {
        this.rejectMessage(identity, err as Error);
      } catch (e) {
        logger().error({ err: e }, 'could not reject a message');
      }
    }
  }

  /**
   * A message that does not decode (garbage, another protocol version, an unknown message type, a
   * frame over the limit) or failed to be handled: a log line and an ErrorReply. A ROUTER cannot
   * drop one TCP peer, so an unregistered connection is closed by ignoring everything it sends later
   * (its one log line is rate-limited with all others of its kind); a registered worker, driver or
   * peer node keeps its connection.
   */
  private rejectMessage(identity: Buffer, err: Error): void {
    const peer = identity.toString();
    const code = errorCodeOf(err);
    const w = this.workers.get(peer);
    if (w) {
      logger().error({ err, peer, kind: w.kind, code: tsray.v1.ErrorCode[code] }, `rejected a message from a ${w.kind}: ${err.message}`);
      this.send(w, { error: { code, message: err.message } });
      return;
    }
    const msg = `rejected a message from an unregistered connection: ${err.message}; the connection is closed (later messages from it are ignored)`;
    if (this.unregistered.refuse(identity, { code: tsray.v1.ErrorCode[code] }, msg)) this.outbox.send([identity, ...encodeMessage({ error: { code, message: err.message } })]);
  }

  private handle(identity: Buffer, frames: Buffer[]): void {
    const { envelope, kind, payloads } = decodeMessage(frames, this.opts.maxFrameBytes ? { maxFrameBytes: this.opts.maxFrameBytes } : undefined);
    if (TRACE) process.stderr.write(`node <- ${identity.toString()} ${kind} ${JSON.stringify(envelope.toJSON()).slice(0, 300)}\n`);
    let w = this.workers.get(identity.toString());
    if (kind === 'registerWorker') {
      const r = envelope.registerWorker!;
      const idStr = identity.toString();
      const why = this.verifier.check(idStr, r.authProof, Number(r.authTime ?? 0), r.authNonce);
      if (why) {
        if (this.unregistered.refuse(identity, { kind: r.kind, pid: r.pid }, `refused a connection: ${why}`)) {
          const msg = `node ${this.nodeId} refused the connection: ${why}`;
          this.outbox.send([identity, ...encodeMessage({ error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: msg } })]);
        }
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
      if (this.unregistered.refuse(identity, { kind }, msg)) {
        this.outbox.send([identity, ...encodeMessage({ error: { code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: `node ${this.nodeId}: register first (RegisterWorker with a token proof)` } })]);
      }
      return;
    }
    if (w.state === 'starting' && kind !== 'registerWorker') {
      logger().warn({ peer: w.id, kind }, 'message before registration; dropped');
      return;
    }
    switch (kind) {
      case 'registerWorker': {
        w.state = 'ready';
        this.send(w, {
          workerAccepted: {
            nodeId: this.nodeId,
            shmPath: w.kind === 'driver' && !w.remote ? `/proc/${process.pid}/fd/${this.store.arenaFd}` : '',
            shmSize: this.store.capacity,
            inlineThreshold: 100 * 1024,
            jobId: w.jobId || this.jobId,
            namespace: w.kind !== 'worker' ? w.namespace : this.namespace,
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
          let data = storedFromWire(od, payloads);
          if (data.shm) w.allocs.delete(data.shm.offset);
          if (w.remote && data.inline && data.inline.byteLength > INLINE_THRESHOLD) data = this.toArena(data);
          this.objects.seal(od.objectId!, data);
        }
        return;
      case 'objectChunk': {
        const d = this.onChunk(w.id, envelope.objectChunk!, payloads[0] ?? Buffer.alloc(0));
        if (d) this.objects.seal(envelope.objectChunk!.objectId ?? '', d);
        return;
      }
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
        const who = w;
        this.getActor(q.name ?? '', q.namespace || this.namespaceOf(w)).then(
          (info) => this.send(who, { getActorReply: { requestId: q.requestId, actorId: info.actorId, className: info.className, methods: [...info.methods], error: '' } }),
          (e) => this.send(who, { getActorReply: { requestId: q.requestId, error: (e as Error).message } }),
        );
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
            this.createPlacementGroup(q.placementGroupId ?? '', bundles, q.strategy ?? 'PACK', q.name ?? '', q.detached === true, q.noWait === true, w.jobId || this.jobId);
          }
        } catch (e) {
          error = (e as Error).message;
          if (!q.remove) this.objects.seal(`${q.placementGroupId}.ready`, errorObject({ type: 'Other', name: 'PlacementGroupError', message: error }));
        }
        if (q.requestId) this.send(w, { getActorReply: { requestId: q.requestId, error } });
        return;
      }
      case 'gcsCall': {
        const c = envelope.gcsCall!;
        const who = w;
        this.stateCall(c.method ?? '').then(
          (v) => this.send(who, { gcsReply: { requestId: c.requestId, json: JSON.stringify(v ?? null) } }),
          (e: Error) => this.send(who, { gcsReply: { requestId: c.requestId, error: e.message } }),
        );
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

  // ---------------------------------------------------------------- multi-node (split: cluster-forwarder.ts, object-transfer.ts)

  private get link(): ClusterLinkApi | undefined { return this.forwarder.link; }
  private get remoteNodes(): Map<string, tsray.v1.INodeInfo> { return this.forwarder.remoteNodes; }
  private get publishedEnvs(): Map<string, Promise<string>> { return this.forwarder.publishedEnvs; }
  private joinCluster(gcsAddress: string): Promise<void> { return this.forwarder.joinCluster(gcsAddress); }
  private placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined { return this.forwarder.placeRemote(t, req); }
  private spillQueue(q: Deque<TaskRecord>): void { this.forwarder.spillQueue(q); }
  private peerFor(nodeId: string): PeerConnection { return this.forwarder.peerFor(nodeId); }
  private forwardTask(t: TaskRecord, target: string): void { this.forwarder.forwardTask(t, target); }
  private forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void { this.forwarder.forwardActorCreation(rec, t, target); }
  private sendObjectsRemote(w: WorkerHandle, entries: ObjectEntry[]): void { this.transfer.sendObjectsRemote(w, entries); }
  private toArena(d: StoredObject): StoredObject { return this.transfer.toArena(d); }
  private onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): StoredObject | undefined { return this.transfer.onChunk(from, c, payload); }

  /** The node as its object transfer sees it. */
  private objectTransferHost(): ObjectTransferHost {
    const node = this;
    return {
      get objects() { return node.objects; },
      get store() { return node.store; },
      outbox: this.outbox,
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

  /** An actor this node owns lost its node: restart it elsewhere if allowed. */
  private remoteActorDied(rec: ActorRecord, inflight: TaskRecord[], detail: string): void {
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
      } else this.finishTask(t, err);
    }
    if (creating) {
      this.finishTask(creating, canRestart ? undefined : err);
      this.tasks.delete(creating.spec.taskId);
    }
    if (!canRestart) {
      this.actorDead(rec, info);
      return;
    }
    if (rec.restartsLeft > 0) rec.restartsLeft--;
    rec.state = 'restarting';
    rec.calls.unshift(...retry);
    logger().warn({ actor: rec.creation.className, detail }, 'actor lost its node; restarting it');
    this.gcsActorUpdate(rec, { state: 'RESTARTING' });
    const t = this.creationTask(rec);
    t.state = 'deps';
    t.pool = undefined;
    this.enqueue(t);
  }

  /**
   * Phase one of a group spanning nodes: each other node reserves its bundles now (a sub-group with the
   * same id, `no_wait`); the group is created once every part answered, else everything is given back
   * and the group waits to be planned again (atomic: all bundles or none).
   */
  private prepareRemoteParts(pg: PgRecord, r: Reservation): void {
    pg.preparing = true;
    pg.remoteParts = new Map();
    r.nodeIds.forEach((node, b) => {
      if (node === this.nodeId) return;
      let part = pg.remoteParts!.get(node);
      if (!part) pg.remoteParts!.set(node, (part = { indices: [], ready: undefined }));
      pg.pools[b]!.remoteNode = node;
      pg.pools[b]!.remoteIndex = part.indices.length;
      part.indices.push(b);
    });
    for (const [node, part] of pg.remoteParts) {
      let peer: PeerConnection;
      try {
        peer = this.peerFor(node);
      } catch {
        this.abortRemoteParts(pg, `node ${node} left the cluster`);
        return;
      }
      const bundles = part.indices.map((b) => ({ resources: [...pg.bundles[b]!.amounts].map(([name, units]) => ({ name, units })) }));
      peer.send({ refUpdates: { add: [`${pg.id}.ready`] } });
      peer.send({ placementGroupRequest: { placementGroupId: pg.id, bundles, strategy: 'STRICT_PACK', name: pg.name, detached: pg.detached, noWait: true } });
      peer.send({ subscribeObjects: { objectIds: [`${pg.id}.ready`] } });
    }
  }

  private onRemotePgPart(pg: PgRecord, node: string, d: StoredObject): void {
    const part = pg.remoteParts?.get(node);
    if (!part || !pg.preparing) {
      this.store.release(d);
      return;
    }
    if (d.encoding === ENC_ERROR) {
      this.store.release(d);
      this.abortRemoteParts(pg, `node ${node} could not reserve its bundles`);
      return;
    }
    let info: { bundles: { gpuIds: string[] }[] } | undefined;
    try {
      info = deserialize(d.encoding, d.rawKind, this.store.bytes(d)) as { bundles: { gpuIds: string[] }[] };
    } catch {
      info = undefined;
    }
    this.store.release(d);
    part.ready = info?.bundles ?? part.indices.map(() => ({ gpuIds: [] }));
    for (const p of pg.remoteParts!.values()) if (!p.ready) return;
    // Phase two: every part is reserved.
    pg.preparing = false;
    pg.state = 'created';
    const r = pg.reservation!;
    const bundles = pg.bundles.map((req, b) => {
      const pool = pg.pools[b]!;
      const gpuIds = pool.remoteNode !== undefined ? (pg.remoteParts!.get(pool.remoteNode)!.ready![pool.remoteIndex!]?.gpuIds ?? []) : [...r.gpuIds(b)];
      return { nodeId: r.nodeIds[b]!, gpuIds, resources: req.toJSON() };
    });
    this.objects.seal(`${pg.id}.ready`, this.store.store(serialize({ id: pg.id, strategy: pg.strategy, bundles })));
    for (const t of pg.waiting.splice(0)) this.enqueue(t);
  }

  /** A part of a spanning group failed: give every part back and plan the group again later. */
  private abortRemoteParts(pg: PgRecord, why: string): void {
    logger().info({ pg: pg.id, why }, 'placement group parts rolled back; it will be planned again');
    for (const node of pg.remoteParts?.keys() ?? []) this.link?.existingPeer(node)?.send({ placementGroupRequest: { placementGroupId: pg.id, remove: true } });
    pg.remoteParts = undefined;
    pg.preparing = false;
    pg.reservation?.release();
    pg.reservation = undefined;
    pg.pools = [];
    pg.state = 'pending';
    // Plan again after the next resource reports (the views that led here were stale).
    pg.retryAt = Date.now() + 500;
    this.pendingPgs.push(pg);
    const t = setTimeout(() => this.scheduleDispatch(), 550);
    t.unref();
  }

  /** Tell the GCS about an actor's state (fire and forget). */
  private gcsActorUpdate(rec: ActorRecord, fields: Record<string, unknown>): void {
    if (!this.link || rec.proxy) return;
    this.link.call('actor.update', { actorId: rec.id, ...fields }).catch(() => undefined);
  }

  /** Register a new actor in the GCS directory; a name taken on another node kills it. */
  private gcsActorRegister(rec: ActorRecord, ownerIsPeer: boolean): void {
    if (!this.link || rec.proxy) return;
    if (ownerIsPeer) {
      this.gcsActorUpdate(rec, { hostNodeId: this.nodeId, state: 'STARTING' });
      return;
    }
    const c = rec.creation;
    this.link
      .call('actor.register', {
        actorId: rec.id,
        name: c.name,
        namespace: rec.namespace,
        className: c.className,
        methods: c.methods,
        module: rec.spec.fn.moduleUrl,
        key: rec.spec.fn.key,
        ownerNodeId: this.nodeId,
        hostNodeId: this.nodeId,
        state: 'PENDING',
        pid: 0,
        numRestarts: 0,
        detached: c.detached,
      })
      .catch((e: Error) => {
        if (rec.state === 'dead') return;
        const info: ActorDeathInfo = { actorId: rec.id, className: c.className, reason: 'name_taken', detail: e.message };
        const w = rec.worker;
        if (rec.remoteNode) this.link?.existingPeer(rec.remoteNode)?.send({ killActor: { actorId: rec.id, noRestart: true } });
        rec.killed = true;
        this.actorDead(rec, info);
        if (w) w.kill('SIGKILL');
      });
  }

  /** Calls on a handle from another node: look the actor up in the GCS, then submit them in order. */
  private resolveRemoteActor(spec: SubmitSpec, owner: WorkerHandle | undefined): void {
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
        this.ensureProxy({ actorId: id, className: spec.fn.name, methods: [], ownerNodeId: '', namespace: this.namespace, name: '' });
        this.actors.get(id)!.state = 'dead';
        this.actors.get(id)!.death = unknownActor(id, spec.fn.name);
      }
      for (const c of calls) this.submit(c.spec, c.owner);
    };
    this.link!.call<{ actorId: string; className: string; methods: string[]; module?: string; key?: string; ownerNodeId: string; namespace: string; name: string } | null>('actor.lookup', { actorId: id }).then(
      (e) => {
        if (e && e.ownerNodeId !== this.nodeId) this.ensureProxy(e);
        flush();
      },
      () => flush(),
    );
  }

  /** A stand-in for an actor another node owns: calls made here go to that node. */
  private ensureProxy(e: { actorId: string; className: string; methods: string[]; module?: string; key?: string; ownerNodeId: string; namespace: string; name: string }): void {
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
      maxTaskRetries: 0,
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
    this.actors.set(e.actorId, {
      id: e.actorId,
      creation,
      spec,
      schedule: ResourceRequest.fromUnits(new Map()),
      hold: ResourceRequest.fromUnits(new Map()),
      namespace: e.namespace,
      state: 'alive',
      worker: undefined,
      allocation: undefined,
      restartsLeft: 0,
      pool: this.nodePool,
      calls: [],
      death: undefined,
      terminating: false,
      killed: false,
      ctorHolds: [],
      nameKey: undefined,
      remoteNode: e.ownerNodeId,
      proxy: true,
      jobId: '',
    });
  }

  /** This node's tasks, objects, actors, placement groups and demand (state API). */
  localState(what: string): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    if (what === 'all' || what === 'tasks') {
      const tasks: unknown[] = [];
      for (const t of this.tasks.values()) {
        if (tasks.length >= 10_000) break;
        tasks.push({
          taskId: t.spec.taskId,
          name: t.spec.name,
          state: t.state === 'dispatched' ? 'RUNNING' : 'PENDING',
          nodeId: t.remote ?? this.nodeId,
          ...(t.actor ? { actorId: t.actor.id } : {}),
        });
      }
      out['tasks'] = tasks;
    }
    if (what === 'all' || what === 'objects') {
      const objs: unknown[] = [];
      for (const e of this.objects.all()) {
        if (objs.length >= 10_000) break;
        if (!e.data) continue;
        objs.push({ objectId: e.id, sizeBytes: e.data.size, nodeId: this.nodeId, location: e.data.inline ? 'inline' : e.data.shm ? 'shm' : 'spilled' });
      }
      out['objects'] = objs;
    }
    if (what === 'all' || what === 'actors') {
      out['actors'] = [...this.actors.values()]
        .filter((r) => !r.proxy)
        .map((r) => ({
          actorId: r.id,
          className: r.creation.className,
          name: r.creation.name,
          namespace: r.namespace,
          state: r.state.toUpperCase(),
          nodeId: r.remoteNode ?? this.nodeId,
          pid: r.worker?.proc?.pid ?? 0,
          numRestarts: r.creation.maxRestarts - r.restartsLeft,
          detached: r.creation.detached,
          ...(r.death ? { deathCause: `${r.death.reason}: ${r.death.detail}` } : {}),
        }));
    }
    if (what === 'all' || what === 'placement_groups') {
      // A group is listed by the node that created it (its reservation names every bundle's node); the
      // parts other nodes hold for it (noWait, one STRICT_PACK share each) are not groups of their own.
      out['placement_groups'] = [...this.pgs.values()].filter((pg) => !pg.noWait).map((pg) => ({
        placementGroupId: pg.id,
        name: pg.name,
        strategy: pg.strategy,
        state: pg.state.toUpperCase(),
        bundles: pg.raw,
        bundleNodes: pg.reservation ? [...pg.reservation.nodeIds] : [],
      }));
    }
    if (what === 'all' || what === 'demand') out['demand'] = this.pendingDemand();
    return out;
  }

  /** This node as the state API shows it. */
  private selfInfo(): Record<string, unknown> {
    const rec = (m: ReadonlyMap<string, number>) => Object.fromEntries([...m].map(([k, v]) => [k, v / 10_000]));
    return {
      nodeId: this.nodeId,
      alive: true,
      isHead: this.opts.isHead ?? !this.link,
      address: this.tcpAddress || this.address,
      hostname: hostname(),
      pid: process.pid,
      resourcesTotal: rec(this.resources.total),
      resourcesAvailable: rec(this.resources.available()),
      labels: this.opts.labels ?? {},
      startTime: this.startedAt,
    };
  }

  /** State API calls from drivers (`nodes()`, `listActors()`, ...): local, or cluster-wide through the GCS. */
  async stateCall(method: string): Promise<unknown> {
    const gather = async (what: string): Promise<unknown[]> => {
      if (!this.link) return this.localState(what)[what] ?? [];
      const all = await this.link.call<Record<string, unknown[]>[]>('state.gather', { what });
      return all.flatMap((s) => s[what] ?? []);
    };
    switch (method) {
      case 'nodes':
        return this.link ? this.link.call('nodes.list', null) : [this.selfInfo()];
      case 'actors':
        return gather('actors');
      case 'tasks':
        return gather('tasks');
      case 'objects':
        return gather('objects');
      case 'placement_groups':
        return gather('placement_groups');
      case 'jobs':
        return this.link ? this.link.call('jobs.list', null).catch(() => []) : [];
      case 'cluster_resources':
        return this.sumViews(false);
      case 'available_resources':
        return this.sumViews(true);
      case 'pending_demand':
        return gather('demand');
      default:
        throw new Error(`unknown state call "${method}"`);
    }
  }

  private sumViews(available: boolean): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.cluster.entries()) {
      if (!e.alive) continue;
      const m = available ? e.resources.available() : e.resources.total;
      for (const [k, v] of m) out[k] = (out[k] ?? 0) + v / 10_000;
    }
    return out;
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

  /** Runtime env agent statistics (installs, holds, GC); undefined before any environment was asked for. */
  runtimeEnvStats(): ReturnType<NodeRuntimeEnvs['stats']> {
    return this.runtimeEnvsInstance?.stats();
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
    this.outbox.close();
    this.router.close();
    removeSocketFile(this.address);
    await this.receiving?.catch(() => undefined);
    this.objects.clear();
    this.store.close();
    await this.runtimeEnvsInstance?.close();
  }
}

const viewRegistry = new FinalizationRegistry<{ node: NodeRuntime; id: string }>((h) => h.node.unpinView(h.id));
