/**
 * The node runtime ("raylet"): task manager, worker pool, object table and store of one node. In an
 * embedded cluster it lives in the driver process and implements the driver's CoreRuntime directly.
 * @internal
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { ClusterView, NodeResources, ResourceRequest, schedule, type ScheduleOptions, type SchedulingStrategy } from '@tsray/scheduler';
import { reserve, validateBundles, validateStrategy, type Reservation } from '@tsray/placement';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody } from '@tsray/protocol';
import { decodeErrorPayload, errorFromPayload, type ErrorPayload } from '../error-payload.js';
import { pythonView } from '../python-view.js';
import { ActorDiedError, ActorNameTakenError, ActorNotFoundError, AuthenticationError, ConnectionError, GetTimeoutError, PlacementGroupError, RuntimeStateError, ObjectStoreFullError, type ActorDeathInfo } from '../errors.js';
import { gcFunction } from '../gc.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import type { ActorCreation, ActorInfoData, CoreRuntime, RuntimeContext, SubmitArg, SubmitSpec } from '../runtime.js';
import type { PendingDemand } from '../state-api.js';
import { serialize } from '../serialization.js';
import { deserialize, type SerializedValue } from '../serialization.js';
import { encodingFromWire, encodingToWire, FrameBuilder, storedFromWire, storedToWire } from '../wire.js';
import { ObjectTable, type ObjectEntry, type StoredObject } from './object-table.js';
import { Deque } from './deque.js';
import { INLINE_THRESHOLD, NodeStore } from './store.js';
import { WorkerProcess } from './worker-process.js';
import { namesLocalDirectories, NodeRuntimeEnvs, type EnvEntry } from './runtime-envs.js';
import { parseRuntimeEnvJson } from '@tsray/runtime-env';
import { TokenVerifier } from '../auth.js';
import { errorCodeOf, PeerMemory } from '../peer-memory.js';
import { UnregisteredPeers } from '../unregistered-peers.js';
import { routerSocketOptions } from '../router-options.js';
import { ClusterLink, type PeerConnection } from '../cluster/link.js';
import { nodeSocketAddress, removeSocketFile } from './socket-path.js';
import { WorkerHandle, type ActorRecord, type Lease, type PgRecord, type Pool, type TaskRecord } from './records.js';
import { chunkCheck, cloneStored, ENC_ERROR, errorObject, fnKey, isPython, processAlive, storeErrorPayload, taskIdOf, unknownActor } from './node-support.js';
import { creationToWire, schedulingToWire, specFromWire, specToWire } from './task-codec.js';

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


/** Objects above this travel between nodes in checked chunks of this size. */
const CHUNK_BYTES = Number(process.env['TSRAY_TRANSFER_CHUNK_BYTES'] ?? 8 * 1024 * 1024);
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
  private link: ClusterLink | undefined;
  /** Other nodes: wire info by id. */
  private readonly remoteNodes = new Map<string, tsray.v1.INodeInfo>();
  /** Tasks forwarded to each node. */
  private readonly forwarded = new Map<string, Set<TaskRecord>>();
  /** Peer nodes this node could not connect to (see peerUnreachable): never scheduled to again. */
  private readonly unreachablePeers = new Set<string>();
  /** Chunked objects being received. */
  private readonly incoming = new Map<string, { data: StoredObject; got: number; buf: Buffer | undefined; from: string }>();
  /** Runtime envs with their local packages published (by the env's JSON). */
  private readonly publishedEnvs = new Map<string, Promise<string>>();
  private readonly publishedPackages = new Set<string>();
  /** Sends to a node waiting behind a package being published (per target node, in order). */
  private readonly peerQueue = new Map<string, Promise<void>>();
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
    const d = w.language === 'python' ? pythonView(e.id, e.data!, () => this.store.bytes(e.data!)) : e.data!;
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
      const p = decodeErrorPayload(bytes);
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
        w.language = envelope.registerWorker!.language ?? '';
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

  // ---------------------------------------------------------------- multi-node

  /** Register with the head's GCS and keep the cluster view current. */
  private async joinCluster(gcsAddress: string): Promise<void> {
    const totals = [...this.resources.total].map(([name, units]) => ({ name, units }));
    const info: tsray.v1.INodeInfo = {
      nodeId: this.nodeId,
      address: this.tcpAddress,
      hostname: hostname(),
      pid: process.pid,
      isHead: this.opts.isHead === true,
      total: totals,
      available: totals,
      labels: this.opts.labels ?? {},
      alive: true,
      startTimeMs: Date.now(),
      gpuIds: [...this.resources.gpuIds],
      localAddress: this.address,
      sessionDir: this.opts.sessionDir,
    };
    this.link = new ClusterLink(
      {
        gcsAddress,
        token: this.token,
        node: info,
        ...(this.opts.headLostTimeoutMs !== undefined ? { headLostTimeoutMs: this.opts.headLostTimeoutMs } : {}),
        available: () => ({
          amounts: [...this.resources.available()].map(([name, units]) => ({ name, units })),
          gpuFree: this.resources.gpuFreeUnits(),
        }),
      },
      {
        onNodeTable: (t) => this.onNodeTable(t),
        onGcsCall: (m, a) => this.onGcsCall(m, a),
        onPeerMessage: (id, kind, env, payloads) => this.onPeerMessage(id, kind, env, payloads),
        onFatal: (msg) => this.opts.onFatal?.(msg),
        onPeerUnreachable: (id, why) => this.peerUnreachable(id, why),
      },
    );
    const timeoutMs = Number(process.env['TSRAY_JOIN_TIMEOUT_MS'] ?? 15_000);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.link.ready.catch((e: Error) => {
          throw new AuthenticationError(e.message);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new ConnectionError(`the head at ${gcsAddress} is unreachable: no answer within ${timeoutMs / 1000} s (is "tsray start --head" running there, and is the port open?)`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Pids, addresses and liveness of the other nodes from the GCS. */
  private onNodeTable(t: tsray.v1.INodeTable): void {
    const nodes = t.nodes ?? [];
    let joined = false;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      const id = n.nodeId ?? '';
      if (id === this.nodeId || !id) continue;
      const prev = this.remoteNodes.get(id);
      this.remoteNodes.set(id, n);
      let view = this.cluster.get(id);
      if (!view) {
        const total = Object.fromEntries((n.total ?? []).map((r) => [r.name ?? '', Number(r.units ?? 0) / 10_000]));
        try {
          view = new NodeResources(total, { labels: n.labels ?? {}, ...(n.gpuIds?.length ? { gpuIds: n.gpuIds } : {}) });
        } catch (e) {
          logger().warn({ node: id, err: e }, 'ignoring a node with a bad resource table');
          continue;
        }
        this.cluster.addNode(id, view, { alive: n.alive === true });
        this.feasibilityChecked.clear();
        joined = true;
      }
      if (n.alive) {
        const avail = new Map((n.available ?? []).map((r) => [r.name ?? '', Number(r.units ?? 0)] as [string, number]));
        const gpuFree = (t.gpuFree?.[i]?.units ?? []).map(Number);
        view.setAvailable(avail, gpuFree.length ? gpuFree : undefined);
      }
      const alive = n.alive === true && !this.unreachablePeers.has(id);
      if (this.cluster.isAlive(id) !== alive) this.cluster.setAlive(id, alive);
      if (prev && prev.alive && !n.alive) this.nodeDied(id, n.deathReason || 'declared dead by the head');
      else if (!prev && !n.alive) this.nodeDied(id, n.deathReason || 'declared dead by the head');
    }
    if (joined) logger().info({ nodes: this.cluster.aliveCount }, 'cluster view changed');
    this.scheduleDispatch();
  }

  /**
   * Where a task or actor goes when this node is part of a cluster: undefined = here. Work that other
   * nodes forwarded here stays here (no chains of forwarding).
   */
  private placeRemote(t: TaskRecord, req: ResourceRequest): string | undefined {
    if (!this.link || this.cluster.aliveCount <= 1 || t.owner?.kind === 'peer' || t.spec.streaming) return undefined;
    const sc = t.spec.scheduling;
    let strategy: SchedulingStrategy = 'DEFAULT';
    if (sc?.kind === 'NODE_AFFINITY') strategy = { type: 'NODE_AFFINITY', nodeId: sc.nodeId, soft: sc.soft };
    else if (sc?.kind === 'SPREAD') strategy = 'SPREAD';
    const d = schedule(req, this.cluster, strategy, this.scheduleOptions(sc?.kind === 'SPREAD', false));
    if (d.kind === 'infeasible') return undefined;
    if (d.nodeId === this.nodeId || !this.remoteNodes.get(d.nodeId)?.alive) return undefined;
    // Busy everywhere: DEFAULT stays in the local queue when this node could ever run it (spilled later);
    // SPREAD queues on the node its round robin picked (Ray's second pass), so a burst is shared out.
    if (d.kind === 'wait' && sc?.kind !== 'NODE_AFFINITY' && sc?.kind !== 'SPREAD' && this.resources.isFeasible(req)) return undefined;
    if (d.kind === 'node') this.cluster.get(d.nodeId)?.allocate(req); // counted until the node's next report
    return d.nodeId;
  }

  /**
   * Options of a placement decision here. SPREAD counts this node as busy while tasks wait in its queues
   * (its free resources do not show them yet: a burst of submissions is queued before dispatch runs);
   * spilling (`spill`) moves queued SPREAD work only to nodes that can run it now.
   */
  private scheduleOptions(spread: boolean, spill: boolean): ScheduleOptions {
    if (!spread) return { localNodeId: this.nodeId };
    let queued = false;
    for (const q of this.queues.values()) if ((queued = q.length > 0)) break;
    return { localNodeId: this.nodeId, availableOnly: spill, ...(queued ? { queuedNodes: new Set([this.nodeId]) } : {}) };
  }

  /** Forward queued tasks the local node cannot start now to nodes that can. */
  private spillQueue(q: Deque<TaskRecord>): void {
    for (let n = 0; n < 1024 && q.length > 0; n++) {
      const t = q.peek()!;
      if (t.pool?.pg || t.owner?.kind === 'peer' || t.spec.streaming || t.spec.scheduling?.kind === 'NODE_AFFINITY') return;
      const spread = t.spec.scheduling?.kind === 'SPREAD';
      const d = schedule(t.request, this.cluster, spread ? 'SPREAD' : 'DEFAULT', this.scheduleOptions(spread, true));
      if (d.kind !== 'node' || d.nodeId === this.nodeId || !this.remoteNodes.get(d.nodeId)?.alive) return;
      this.cluster.get(d.nodeId)?.allocate(t.request);
      q.shift();
      this.forwardTask(t, d.nodeId);
    }
  }

  private peerFor(nodeId: string): PeerConnection {
    const n = this.remoteNodes.get(nodeId);
    if (!n || !this.link) throw new RuntimeStateError(`node ${nodeId} is not in the cluster`);
    return this.link.peer(nodeId, n.address ?? '');
  }

  /**
   * A task's runtime env for another node: local `workingDir` / `pyModules` directories are packed
   * here, published in the GCS (once per content hash) and replaced by `pkg://<hash>`; the other node's
   * agent fetches them by hash. Undefined when the env has no local directories.
   */
  private publishEnv(json: string, jobId: string): Promise<string> | undefined {
    if (!namesLocalDirectories(json)) return undefined;
    // Per job: a later job publishes the directories' current content (see NodeRuntimeEnvs.request).
    const key = `${jobId}\0${json}`;
    let p = this.publishedEnvs.get(key);
    if (!p) {
      p = (async () => {
        const env = parseRuntimeEnvJson(json)!;
        const resolved = await this.runtimeEnvs.agent.resolve(env);
        const publish = async (hash: string) => {
          if (this.publishedPackages.has(hash)) return;
          const value = readFileSync(this.runtimeEnvs.agent.packagePath(hash)).toString('base64');
          await this.link!.call('kv.put', { key: `pkg:${hash}`, value, overwrite: true }, 120_000);
          this.publishedPackages.add(hash);
        };
        const out: Record<string, unknown> = JSON.parse(json);
        if (resolved.workingDirPackage) {
          await publish(resolved.workingDirPackage);
          out['workingDir'] = `pkg://${resolved.workingDirPackage}`;
        }
        if (resolved.pyModulePackages) {
          await Promise.all(resolved.pyModulePackages.map(publish));
          out['pyModules'] = resolved.pyModulePackages.map((h) => `pkg://${h}`);
        }
        return JSON.stringify(out);
      })();
      this.publishedEnvs.set(key, p);
      p.catch(() => this.publishedEnvs.delete(key));
    }
    return p;
  }

  /** Send a task to another node: its argument objects first, then the task; its returns come back. */
  private forwardTask(t: TaskRecord, target: string): void {
    const env = t.spec.runtimeEnv ? this.publishEnv(t.spec.runtimeEnv, t.jobId) : undefined;
    const pending = this.peerQueue.get(target);
    if (env || pending) {
      // Keep the order of everything sent to that node while a package is published.
      t.state = 'dispatched';
      t.remote = target;
      let set = this.forwarded.get(target);
      if (!set) this.forwarded.set(target, (set = new Set()));
      set.add(t);
      const run = (pending ?? Promise.resolve()).then(async () => {
        if (env) {
          try {
            t.spec = { ...t.spec, runtimeEnv: await env };
          } catch (e) {
            set.delete(t);
            t.remote = undefined;
            this.finishTask(t, errorObject({ type: 'RuntimeEnvSetupError', name: 'RuntimeEnvSetupError', field: 'workingDir', message: `could not publish the task's packages to the cluster: ${(e as Error).message}`, output: '' }));
            return;
          }
        }
        if (t.remote === target && t.state === 'dispatched') this.forwardNow(t, target);
      });
      this.peerQueue.set(target, run);
      void run.then(() => {
        if (this.peerQueue.get(target) === run) this.peerQueue.delete(target);
      });
      return;
    }
    this.forwardNow(t, target);
  }

  private forwardNow(t: TaskRecord, target: string): void {
    let peer: PeerConnection;
    try {
      peer = this.peerFor(target);
    } catch (e) {
      this.finishTask(t, errorObject({ type: 'Other', name: 'NodeDiedError', message: `task ${t.spec.name}: ${(e as Error).message}` }));
      return;
    }
    if (t.spec.actorCreation && t.spec.returnIds.length === 0) t.spec = { ...t.spec, returnIds: [`${t.spec.taskId}.0`] };
    const pushed: string[] = [];
    const seen = new Set<string>();
    const push = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      const e = this.objects.get(id);
      if (e?.data === undefined) return; // not here (yet): the peer will not find it either
      for (const c of e.data.contained) push(c);
      pushed.push(id);
    };
    for (const a of t.spec.args) {
      if (a.kind === 'ref') push(a.id);
      else for (const c of a.value.containedRefs) push(c);
    }
    // Holds first (the peer must count our refs on the returns before a fast task seals them, or it
    // would free them at once), then the argument objects, the task, and the subscription.
    peer.send({ refUpdates: { add: [...pushed, ...t.spec.returnIds] } });
    if (pushed.length > 0) this.pushObjects(peer, pushed);
    const fb = new FrameBuilder();
    const ns = t.actor?.namespace ?? t.namespace;
    peer.send({ submitTasks: { tasks: [specToWire(t.spec, fb, t.jobId, ns)] } }, fb.empty ? undefined : fb.frames());
    if (pushed.length > 0) peer.send({ refUpdates: { remove: pushed } });
    peer.send({ subscribeObjects: { objectIds: t.spec.returnIds } });
    t.state = 'dispatched';
    t.worker = undefined;
    t.remote = target;
    t.remoteLeft = t.spec.returnIds.length;
    t.startedAt = performance.now();
    let set = this.forwarded.get(target);
    if (!set) this.forwarded.set(target, (set = new Set()));
    set.add(t);
  }

  /** Copy objects to a peer (inline up to 8 MiB, checked chunks above). */
  private pushObjects(peer: PeerConnection, ids: string[]): void {
    let fb = new FrameBuilder();
    let batch: tsray.v1.IObjectData[] = [];
    for (const id of ids) {
      const d = this.objects.get(id)!.data!;
      if (d.size > CHUNK_BYTES && !d.inline) {
        this.chunksOf(id, d, (body, frame) => peer.send(body, [frame]));
        continue;
      }
      batch.push(this.inlineWire(id, d, fb));
      if (batch.length >= 64) {
        peer.send({ putObjects: { objects: batch } }, fb.frames());
        fb = new FrameBuilder();
        batch = [];
      }
    }
    if (batch.length > 0) peer.send({ putObjects: { objects: batch } }, fb.frames());
  }

  /**
   * The bytes of an object for a frame to another process: arena objects as a view (no copy; ZeroMQ
   * sends from it), pinned until the view is garbage collected, which happens once ZeroMQ let go of it.
   */
  private sendView(id: string, d: StoredObject, from = 0, to = d.size): Buffer {
    if (d.inline) return from === 0 && to === d.inline.byteLength ? d.inline : d.inline.subarray(from, to);
    if (!d.shm) return this.store.bytes(d).subarray(from, to);
    const view = this.store.arena.view(d.shm.offset + from, to - from);
    this.objects.pin(id);
    viewRegistry.register(view, { node: this, id });
    return view;
  }

  /** ObjectData with the bytes in a frame (for processes that cannot map this node's arena). */
  private inlineWire(id: string, d: StoredObject, fb: FrameBuilder): tsray.v1.IObjectData {
    return { objectId: id, encoding: encodingToWire(d.encoding), rawKind: d.rawKind, containedRefs: d.contained, size: d.size, inline: fb.add(this.sendView(id, d)) };
  }

  /** Cut an object into checked chunks, sent from views of the arena (pinned while ZeroMQ holds them). */
  private chunksOf(id: string, d: StoredObject, out: (body: EnvelopeBody, frame: Buffer) => void): void {
    const spilled = !d.inline && !d.shm ? { ...d, inline: this.store.bytes(d) } : d;
    const total = spilled.inline ? spilled.inline.byteLength : d.shm!.length;
    const header: tsray.v1.IObjectData = { objectId: id, encoding: encodingToWire(d.encoding), rawKind: d.rawKind, containedRefs: d.contained, size: d.size };
    for (let off = 0; off < total || off === 0; off += CHUNK_BYTES) {
      const chunk = this.sendView(id, spilled, off, Math.min(total, off + CHUNK_BYTES));
      out({ objectChunk: { objectId: id, offset: off, total, crc32: chunkCheck(chunk), ...(off === 0 ? { header } : {}) } }, chunk);
      if (total === 0) break;
    }
  }

  /** Deliver sealed objects to a remote client or peer (with the objects nested in them). */
  private sendObjectsRemote(w: WorkerHandle, entries: ObjectEntry[]): void {
    const fb = new FrameBuilder();
    const small: tsray.v1.IObjectData[] = [];
    const seen = new Set<string>();
    const visit = (e: ObjectEntry) => {
      if (seen.has(e.id) || e.data === undefined) return;
      seen.add(e.id);
      for (const c of e.data.contained) {
        const ce = this.objects.get(c);
        if (ce) visit(ce);
      }
      const d = w.language === 'python' ? pythonView(e.id, e.data, () => this.store.bytes(e.data!)) : e.data;
      if (d.size > CHUNK_BYTES && !d.inline) this.chunksOf(e.id, d, (body, frame) => this.sendFrames(w, body, [frame]));
      else small.push(this.inlineWire(e.id, d, fb));
    };
    for (const e of entries) visit(e);
    if (small.length > 0) this.send(w, { objectsReady: { objects: small } }, fb);
  }

  private sendFrames(w: WorkerHandle, body: EnvelopeBody, frames: Buffer[]): void {
    if (w.state === 'dead') return;
    this.outbox.send([w.identity, ...encodeMessage(body, frames)]);
  }

  /** Move a large inline object into the arena (objects that came over the network). */
  private toArena(d: StoredObject): StoredObject {
    try {
      return this.store.store({ encoding: d.encoding, rawKind: d.rawKind, bytes: d.inline!, containedRefs: d.contained });
    } catch {
      return d;
    }
  }

  /** One chunk of an object arrived; returns the object's data once it is complete. */
  private onChunk(from: string, c: tsray.v1.IObjectChunk, payload: Buffer): StoredObject | undefined {
    const id = c.objectId ?? '';
    const total = Number(c.total ?? 0);
    const off = Number(c.offset ?? 0);
    let inc = this.incoming.get(id);
    if (!inc) {
      const h = c.header;
      if (!h) {
        logger().warn({ object: id, from }, 'object chunk without its header; dropped');
        return undefined;
      }
      const base = { encoding: encodingFromWire(h.encoding), rawKind: h.rawKind ?? '', size: Number(h.size ?? total), contained: h.containedRefs ?? [] };
      let data: StoredObject;
      let buf: Buffer | undefined;
      try {
        data = { ...base, shm: { offset: this.store.allocate(total), length: total } };
      } catch {
        buf = Buffer.allocUnsafe(total);
        data = { ...base, inline: buf };
      }
      inc = { data, got: 0, buf, from };
      this.incoming.set(id, inc);
    }
    if (chunkCheck(payload) !== (c.crc32 ?? 0) >>> 0 || off + payload.length > total) {
      this.incoming.delete(id);
      this.store.release(inc.data);
      const msg = `object ${id} from ${from} arrived damaged (chunk at ${off}: checksum or size mismatch)`;
      logger().error({ object: id, from }, msg);
      const err = errorObject({ type: 'Other', name: 'ObjectTransferError', message: msg });
      return err;
    }
    if (inc.data.shm) this.store.arena.write(inc.data.shm.offset + off, payload);
    else payload.copy(inc.buf!, off);
    inc.got += payload.length;
    if (inc.got < total) return undefined;
    this.incoming.delete(id);
    return inc.data;
  }

  /** Messages from nodes this node sent work to. */
  private onPeerMessage(peerId: string, kind: string, envelope: tsray.v1.Envelope, payloads: Buffer[]): void {
    switch (kind) {
      case 'workerAccepted':
      case 'getActorReply':
        return;
      case 'objectsReady':
        for (const od of envelope.objectsReady!.objects ?? []) {
          let d = storedFromWire(od, payloads);
          if (d.inline && d.inline.byteLength > INLINE_THRESHOLD) d = this.toArena(d);
          this.remoteArrived(peerId, od.objectId ?? '', d);
        }
        return;
      case 'objectChunk': {
        const d = this.onChunk(peerId, envelope.objectChunk!, payloads[0] ?? Buffer.alloc(0));
        if (d) this.remoteArrived(peerId, envelope.objectChunk!.objectId ?? '', d);
        return;
      }
      case 'error':
        logger().error({ peer: peerId, error: envelope.error }, 'a peer node refused or rejected a message');
        return;
      default:
        logger().warn({ peer: peerId, kind }, 'unexpected message from a peer node; ignored');
    }
  }

  /** An object came back from a peer: seal it here, let the peer drop its copy, finish its task. */
  private remoteArrived(peerId: string, id: string, d: StoredObject): void {
    const taskId = taskIdOf(id);
    const t = taskId ? this.tasks.get(taskId) : undefined;
    const isError = d.encoding === ENC_ERROR;
    let errPayload: ErrorPayload | undefined;
    if (isError && t?.spec.actorCreation) {
      try {
        errPayload = decodeErrorPayload(this.store.bytes(d));
      } catch {
        /* unknown */
      }
    }
    if (id.endsWith('.ready') && this.pgs.get(id.slice(0, -'.ready'.length))?.preparing) {
      this.link?.existingPeer(peerId)?.send({ refUpdates: { remove: [id] } });
      this.onRemotePgPart(this.pgs.get(id.slice(0, -'.ready'.length))!, peerId, d);
      return;
    }
    this.objects.seal(id, d);
    this.link?.existingPeer(peerId)?.send({ refUpdates: { remove: [id] } });
    if (!t || t.remote !== peerId || t.state !== 'dispatched') return;
    if (--t.remoteLeft > 0) return;
    this.forwarded.get(peerId)?.delete(t);
    t.remote = undefined;
    const rec = t.actor;
    if (t.spec.actorCreation && rec) {
      this.finishTask(t, undefined);
      if (isError) {
        const info: ActorDeathInfo =
          errPayload?.type === 'ActorDiedError'
            ? errPayload.info
            : { actorId: rec.id, className: rec.creation.className, reason: 'crashed', detail: `its creation failed on node ${peerId}` };
        this.actorDead(rec, info);
        return;
      }
      if (rec.state === 'dead') return;
      rec.state = 'alive';
      this.gcsActorUpdate(rec, { state: 'ALIVE', hostNodeId: peerId });
      this.pumpActor(rec);
      this.maybeStopActor(rec);
      return;
    }
    this.finishTask(t, undefined);
    if (rec) this.maybeStopActor(rec);
    this.scheduleDispatch();
  }

  /** Forward an actor's creation to the node chosen for it. */
  private forwardActorCreation(rec: ActorRecord, t: TaskRecord, target: string): void {
    rec.remoteNode = target;
    rec.pool = this.nodePool;
    if (rec.state === 'pending') rec.state = 'starting';
    // Hold the actor there while this node owns it (sent before the creation task).
    this.link?.peer(target, this.remoteNodes.get(target)?.address ?? '').send({ refUpdates: { add: [rec.id] } });
    this.forwardTask(t, target);
    if (rec.state !== 'dead') {
      this.gcsActorUpdate(rec, { state: 'STARTING', hostNodeId: target });
      this.pumpActor(rec);
    }
  }

  /**
   * A peer node never answered this node's connection (its advertised address is wrong or its port is
   * closed to us): treat it as dead here, so work sent there is retried elsewhere or fails naming the
   * node and its address, and no more is sent there.
   */
  private peerUnreachable(id: string, why: string): void {
    if (this.unreachablePeers.has(id)) return;
    this.unreachablePeers.add(id);
    logger().error({ node: id, why }, 'a peer node is unreachable; no more work goes there');
    if (this.cluster.get(id)) this.cluster.setAlive(id, false);
    this.nodeDied(id, why);
  }

  /** A node died: retry or fail the tasks sent there, restart or fail its actors. */
  private nodeDied(id: string, reason: string): void {
    logger().warn({ node: id, reason }, 'node died');
    this.link?.dropPeer(id);
    const peerHandle = this.workers.get(`peer:${id}`);
    if (peerHandle) this.clientGone(peerHandle, `its node died (${reason})`);
    for (const [oid, inc] of this.incoming) {
      if (inc.from !== id) continue;
      this.incoming.delete(oid);
      this.store.release(inc.data);
    }
    const set = this.forwarded.get(id);
    this.forwarded.delete(id);
    const inflight = [...(set ?? [])].filter((t) => t.state === 'dispatched' && t.remote === id);
    for (const t of inflight) t.remote = undefined;
    for (const t of inflight) {
      if (t.actor) continue;
      if (t.cancelled) {
        this.finishTask(t, errorObject({ type: 'TaskCancelledError', taskName: t.spec.name, forced: t.cancelled.forced }));
      } else if (t.retriesLeft !== 0) {
        if (t.retriesLeft > 0) t.retriesLeft--;
        t.attempt++;
        logger().warn({ task: t.spec.name, node: id, attempt: t.attempt }, 'the node running a task died; retrying it');
        t.state = 'deps';
        this.enqueue(t, true);
      } else {
        this.finishTask(t, errorObject({ type: 'Other', name: 'NodeDiedError', message: `task ${t.spec.name} was running on node ${id}, which died (${reason}); no retries left (maxRetries)` }));
      }
    }
    for (const rec of [...this.actors.values()]) {
      if (rec.remoteNode !== id || rec.state === 'dead') continue;
      if (rec.proxy) {
        this.actorDead(rec, { actorId: rec.id, className: rec.creation.className, reason: 'owner_died', detail: `its owner node ${id} died (${reason})` });
        continue;
      }
      this.remoteActorDied(
        rec,
        inflight.filter((t) => t.actor === rec),
        `its node ${id} died (${reason})`,
      );
    }
    this.scheduleDispatch();
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

  /** Control calls from the GCS. */
  private onGcsCall(method: string, arg: unknown): unknown {
    switch (method) {
      case 'job.end':
        this.endJob(String((arg as { jobId?: string } | null)?.jobId ?? ''), 'its driver left on another node');
        return { ok: true };
      case 'state.snapshot':
        return this.localState((arg as { what?: string } | null)?.what ?? 'all');
      default:
        throw new Error(`node ${this.nodeId}: unknown control call "${method}"`);
    }
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
