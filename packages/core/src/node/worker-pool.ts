/**
 * The node's worker pool: the connections of one node (worker processes, client drivers, peer
 * nodes), leases of workers to task queues, reuse of idle workers, starting and stopping worker
 * processes, and what a worker's exit releases. A worker is started for one GPU set, language,
 * runtime environment and job, and only reused for the same (so a later job never runs on an
 * earlier job's worker, whose modules it imported).
 * @internal
 */
import type { EnvelopeBody } from '@tsray/protocol';
import { logger } from '../logger.js';
import { isPython, processAlive } from './node-support.js';
import type { ObjectTable } from './object-table.js';
import type { Lease, Pool, TaskRecord } from './records.js';
import { WorkerHandle } from './records.js';
import type { EnvEntry, NodeRuntimeEnvs } from './runtime-envs.js';
import type { NodeStore } from './store.js';
import { WorkerProcess, type SpawnWorkerOptions } from './worker-process.js';

/** What the pool needs from the node. */
export interface WorkerPoolHost {
  readonly nodeId: string;
  /** The node's local socket workers connect to. */
  readonly address: string;
  /** The node's unix stream socket its workers connect to instead of `address`, when it has one. */
  readonly streamPath: string | undefined;
  readonly token: string;
  readonly objects: Pick<ObjectTable, 'decRef' | 'unpin'>;
  readonly store: Pick<NodeStore, 'arenaFd' | 'capacity' | 'allocator'>;
  readonly nodePool: Pool;
  readonly runtimeEnvs: Pick<NodeRuntimeEnvs, 'launch' | 'hold' | 'drop'>;
  /** The node is shutting down (exits then change nothing). */
  readonly closed: boolean;
  send(w: WorkerHandle, body: EnvelopeBody): void;
  scheduleDispatch(): void;
  /** A worker process is gone: drop anything queued to send to it. */
  forgetWorker(w: WorkerHandle): void;
  /** A worker process exited (after the pool let go of it): its tasks or actor are the node's business. */
  workerDied(w: WorkerHandle, detail: string): void;
  /** A client driver left: goodbye, silence, or its process is gone. */
  clientGone(w: WorkerHandle, why: string): void;
}

/** How the pool's workers start and when idle ones stop. */
export interface WorkerPoolOptions {
  sessionDir: string;
  python: string;
  logToDriver: boolean;
  /** The node has GPUs: every worker gets CUDA_VISIBLE_DEVICES (empty without a GPU lease). */
  hasGpus: boolean;
  /** Whole CPUs of the node: idle workers above this count are stopped. */
  cpuSlots: number;
  /** Idle workers above the CPU count are stopped after this long (default 1 s). */
  idleWorkerTimeoutMs?: number | undefined;
  /** A client driver silent for longer than this is treated as gone (default 10 s). */
  clientTimeoutMs?: number | undefined;
  /** Start a worker process (tests pass a fake). */
  spawn?: (opts: SpawnWorkerOptions) => WorkerProcess;
}

/** Workers and client connections of one node. */
export class WorkerPool {
  /** Every connection by id: worker processes, client drivers, peer nodes. */
  readonly workers = new Map<string, WorkerHandle>();
  /** Leases by queue key (a worker leased to a queue runs that queue's tasks). */
  readonly leasesByKey = new Map<string, Lease[]>();
  /** Idle workers, oldest first. */
  private readonly idle: WorkerHandle[] = [];
  private workerSeq = 0;
  private readonly maxWorkers: number;

  constructor(
    private readonly host: WorkerPoolHost,
    private readonly opts: WorkerPoolOptions,
  ) {
    this.maxWorkers = opts.cpuSlots + 64;
  }

  /** Number of connections (workers, drivers, peers). */
  get size(): number {
    return this.workers.size;
  }

  /** A lease for the queue `key` whose head is `head` (a reused idle worker of the same kind, or a new one). */
  newLease(key: string, head: TaskRecord): Lease | undefined {
    const request = head.request;
    const pool = head.pool ?? this.host.nodePool;
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

  /** The worker's lease ends: its resources come back and it waits idle for the next lease. */
  releaseLease(w: WorkerHandle): void {
    const l = w.lease;
    if (!l) return;
    w.lease = undefined;
    this.freeLease(l);
    if (w.state !== 'dead') {
      w.idleSince = Date.now();
      this.idle.push(w);
    }
    this.host.scheduleDispatch();
  }

  private freeLease(l: Lease): void {
    if (l.allocation && l.pool.pg?.state !== 'removed') l.pool.resources.release(l.allocation);
    const list = this.leasesByKey.get(l.key);
    if (list) {
      const i = list.indexOf(l);
      if (i !== -1) list.splice(i, 1);
    }
  }

  /** Start a worker process for a GPU set, job, language and runtime env. */
  startWorker(gpuKey: string, gpuIds: readonly string[], jobId: string, python = false, runtimeEnv?: EnvEntry): WorkerHandle {
    const id = `w${this.workerSeq++}-${process.pid}`;
    const launch = runtimeEnv ? this.host.runtimeEnvs.launch(runtimeEnv, python ? 'python' : 'node') : undefined;
    const env: Record<string, string> = { TSRAY_TOKEN: this.host.token };
    if (this.host.streamPath) env['TSRAY_NODE_STREAM'] = this.host.streamPath;
    if (gpuIds.length > 0 || this.opts.hasGpus) env['CUDA_VISIBLE_DEVICES'] = gpuIds.join(',');
    const proc = (this.opts.spawn ?? ((o: SpawnWorkerOptions) => new WorkerProcess(o)))({
      workerId: id,
      nodeAddress: this.host.address,
      nodeId: this.host.nodeId,
      jobId,
      sessionDir: this.opts.sessionDir,
      arenaFd: this.host.store.arenaFd,
      arenaSize: this.host.store.capacity,
      env,
      logToDriver: this.opts.logToDriver,
      defaultName: python ? 'python-worker' : 'worker',
      python: python ? this.opts.python : undefined,
      ...(launch ? { env: { ...launch.env, ...env }, cwd: launch.cwd, nodeArgs: launch.nodeArgs } : {}),
    });
    const w = new WorkerHandle(id, proc, gpuKey);
    w.jobId = jobId;
    if (runtimeEnv) {
      this.host.runtimeEnvs.hold(runtimeEnv);
      w.env = runtimeEnv;
    }
    this.workers.set(id, w);
    proc.proc.on('exit', (code, signal) => this.workerExited(w, code, signal));
    proc.proc.on('error', (err) => logger().error({ err, worker: id }, 'worker process error'));
    // Workers must not keep the driver alive on their own.
    proc.proc.unref();
    return w;
  }

  /** Ask a worker to stop (a registered one is told, one still starting is signalled). */
  stopWorker(w: WorkerHandle): void {
    if (w.state === 'dead') return;
    const i = this.idle.indexOf(w);
    if (i !== -1) this.idle.splice(i, 1);
    if (w.state === 'ready') this.host.send(w, { shutdown: { reason: 'idle' } });
    else w.kill('SIGTERM');
  }

  /** A client driver or peer node connected (registered with a token proof). */
  addClient(w: WorkerHandle): void {
    this.workers.set(w.id, w);
  }

  /** A client connection is gone: forget it and release what it held. */
  removeClient(w: WorkerHandle): void {
    w.state = 'dead';
    this.workers.delete(w.id);
    this.releaseHolds(w);
  }

  /** True while another client driver of `jobId` is connected. */
  hasDriverOf(jobId: string): boolean {
    for (const o of this.workers.values()) if (o.kind === 'driver' && o.jobId === jobId) return true;
    return false;
  }

  /**
   * A job ended: its idle workers stop, busy ones are killed (their tasks cancelled). Workers hosting
   * actors are the actors' business (detached ones outlive their job).
   */
  stopJobWorkers(jobId: string): void {
    for (const w of [...this.workers.values()]) {
      if (w.kind !== 'worker' || w.jobId !== jobId || w.actor) continue;
      if (w.pipeline.length > 0) {
        for (const t of w.pipeline) t.cancelled = { forced: true };
        w.kill('SIGKILL');
      } else this.stopWorker(w);
    }
  }

  /**
   * Periodic: drop dead client drivers (a driver on this machine when its pid is gone; a remote one,
   * or one without a pid, when silent past the timeout), stop idle workers above the CPU count.
   */
  reapIdle(): void {
    const limit = this.opts.idleWorkerTimeoutMs ?? 1000;
    const now = Date.now();
    const clientLimit = this.opts.clientTimeoutMs ?? 10_000;
    for (const w of [...this.workers.values()]) {
      // Peer nodes are not timed out here: the GCS declares a silent node dead (nodeDied drops it).
      if (w.kind !== 'driver') continue;
      // A driver on this machine is seen to end at once (its pid is gone); while its process lives it
      // stays, however long it is silent: a driver busy in synchronous work (a long computation, an
      // execFileSync) misses heartbeats but has not gone, and once dropped it would wait forever.
      if (!w.remote && w.pid > 0) {
        if (!processAlive(w.pid)) this.host.clientGone(w, `its process ${w.pid} exited`);
      } else if (now - w.lastSeen > clientLimit) this.host.clientGone(w, `silent for ${now - w.lastSeen} ms`);
    }
    while (this.idle.length > this.opts.cpuSlots && now - this.idle[0]!.idleSince > limit) {
      this.stopWorker(this.idle.shift()!);
    }
  }

  /** Worker processes (shutdown kills them). */
  processes(): WorkerHandle[] {
    return [...this.workers.values()].filter((w) => w.proc);
  }

  /** Node shutdown: every worker process gets end of stdin and SIGTERM, SIGKILL after 2 s; resolves once all exited. */
  async stopAll(): Promise<void> {
    const procs = this.processes();
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
  }

  /** A worker process exited: forget it, release its env, lease and holds; the node handles its work. */
  private workerExited(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    this.workers.delete(w.id);
    if (w.env) {
      this.host.runtimeEnvs.drop(w.env);
      w.env = undefined;
    }
    const i = this.idle.indexOf(w);
    if (i !== -1) this.idle.splice(i, 1);
    this.host.forgetWorker(w);
    if (this.host.closed) return;
    const detail = signal ? `killed by ${signal}` : `exit code ${code}`;
    if (w.actor) {
      this.releaseHolds(w);
      this.host.workerDied(w, detail);
      this.host.scheduleDispatch();
      return;
    }
    this.host.workerDied(w, detail);
    // Tasks this worker submitted keep running (their refs are released here).
    this.releaseHolds(w);
    if (w.lease) {
      const l = w.lease;
      w.lease = undefined;
      this.freeLease(l);
    }
    this.host.scheduleDispatch();
  }

  /** Release what a dead worker or client held: refs, pins, unfinished arena allocations. */
  private releaseHolds(w: WorkerHandle): void {
    for (const id of w.heldRefs) this.host.objects.decRef(id);
    w.heldRefs.clear();
    for (const [id, n] of w.pins) for (let k = 0; k < n; k++) this.host.objects.unpin(id);
    w.pins.clear();
    for (const off of w.allocs) this.host.store.allocator.free(off);
    w.allocs.clear();
  }
}
