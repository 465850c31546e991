/**
 * The runtime of a worker process: executes tasks sent by its node and implements the API (nested
 * tasks, put, get, wait) over ZeroMQ.
 * @internal
 */
import { config } from '../config.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import * as zmq from 'zeromq';
import { Arena } from '@tsray/object-store';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody } from '@tsray/protocol';
import { encodeErrorPayload, errorFromPayload, remoteErrorInfo } from '../error-payload.js';
import { ActorMethodNotFoundError, ActorNotFoundError, AuthenticationError, FunctionNotFoundError, GetTimeoutError, ObjectStoreFullError } from '../errors.js';
import { makeTokenProof } from '../auth.js';
import { gcFunction } from '../gc.js';
import { logger } from '../logger.js';
import { Outbox } from '../outbox.js';
import type { ActorInfoData, CoreRuntime, RuntimeContext, SubmitArg, SubmitSpec } from '../runtime.js';
import { creationFromWire, schedulingFromWire, specToWire } from '../node/task-codec.js';
import { deserialize, serialize, serializeXlang, type SerializedValue } from '../serialization.js';
import { state, type RegisteredFunction } from '../state.js';
import { encodingFromWire, encodingToWire, FrameBuilder, payloadView } from '../wire.js';
import { GcsCallError } from '../cluster/control-plane.js';

const INLINE = 100 * 1024;
const Status = tsray.v1.TaskStatus;

interface Job {
  exec: tsray.v1.ITaskExecution;
  frames: Buffer[];
  cancelled: boolean;
  /** Made on first use (most tasks never look at their cancellation signal). */
  abort: AbortController | undefined;
}

function abortOf(job: Job): AbortController {
  return (job.abort ??= new AbortController());
}

interface PendingResult {
  result: tsray.v1.ITaskResult;
  payloads: Uint8Array[];
}

interface Subscription {
  od: tsray.v1.IObjectData | undefined;
  frames: Buffer[] | undefined;
  seq: number;
  waiters: (() => void)[];
}

/** The worker side of the node protocol. */
export class WorkerRuntime implements CoreRuntime {
  readonly kind: 'driver' | 'worker';
  /** The node this process is attached to (a client driver learns it when the node accepts it). */
  nodeId: string;
  readonly jobId: string;
  private readonly socket: zmq.Dealer;
  private readonly outbox: Outbox;
  private arena: Arena | undefined;
  private readonly queue: Job[] = [];
  private running: Job | undefined;
  private loopActive = false;
  private readonly modules = new Map<string, Promise<void>>();
  private tsxRegistered: Promise<void> | undefined;
  private pendingResults: PendingResult[] = [];
  private firstPendingAt = 0;
  private readonly slowFns = new Map<string, number>();
  private adds: string[] = [];
  private removes: string[] = [];
  private pins: string[] = [];
  private unpins: string[] = [];
  private submits: tsray.v1.ITaskSpec[] = [];
  private submitFrames = new FrameBuilder();
  private puts: tsray.v1.IObjectData[] = [];
  private putFrames = new FrameBuilder();
  private subscribes: string[] = [];
  private flushQueued = false;
  private readonly subs = new Map<string, Subscription>();
  private subSeq = 0;
  private allocSeq = 0;
  private readonly allocs = new Map<number, { resolve: (off: number) => void; reject: (e: Error) => void }>();
  private readonly idleSignal = new AbortController().signal;
  private blockDepth = 0;
  /** The actor this worker hosts, once its constructor ran. */
  private actor: { instance: Record<string, unknown>; className: string; isAsync: boolean; limits: Map<string, number>; methodGroup: Map<string, string>; running: Map<string, number> } | undefined;
  /** Jobs executing now (several for async actors). */
  private readonly active = new Map<string, Job>();
  private requestSeq = 0;
  private readonly requests = new Map<number, { resolve: (r: tsray.v1.IGetActorReply) => void }>();
  private readonly stateRequests = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  /** A state API call answered by the node (`nodes`, `actors`, ...). */
  stateCall(method: string): Promise<unknown> {
    const requestId = ++this.requestSeq;
    return new Promise((resolve, reject) => {
      this.stateRequests.set(requestId, { resolve, reject });
      this.send({ gcsRequest: { requestId, stateQuery: { what: method } } });
    });
  }
  private heartbeat: NodeJS.Timeout | undefined;
  /** Scheduling strategy the hosted actor was created with (its calls' children may inherit it). */
  private actorScheduling: ReturnType<typeof schedulingFromWire> | undefined;
  private namespaceName = '';
  private closed = false;

  constructor(
    private readonly workerId: string,
    address: string,
    /** 'worker' (executes tasks) or 'driver' (a client driver of a running cluster). */
    private readonly mode: 'worker' | 'driver' = 'worker',
    private readonly clientOptions: { namespace?: string; jobId?: string; token?: string; remote?: boolean } = {},
  ) {
    this.kind = mode;
    this.nodeId = config().nodeId ?? '';
    this.jobId = clientOptions.jobId ?? config().jobId ?? '';
    this.socket = new zmq.Dealer({ routingId: workerId, sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 1000 });
    this.socket.connect(address);
    this.outbox = new Outbox(this.socket);
  }

  private accepted: ((a: tsray.v1.IWorkerAccepted) => void) | undefined;
  private refused: ((e: Error) => void) | undefined;
  private shmPath = '';

  /** Register with the node; resolves when the node accepted (client drivers await this). */
  register(): Promise<tsray.v1.IWorkerAccepted> {
    const p = new Promise<tsray.v1.IWorkerAccepted>((resolve, reject) => {
      this.accepted = resolve;
      this.refused = reject;
    });
    const token = this.clientOptions.token ?? config().token ?? '';
    const proof = token ? makeTokenProof(token, this.workerId) : {};
    this.send({
      registerWorker: {
        workerId: this.workerId,
        pid: process.pid,
        language: 'typescript',
        kind: this.mode,
        namespace: this.clientOptions.namespace ?? '',
        jobId: this.jobId,
        ...proof,
        ...(this.clientOptions.remote ? { remote: true } : {}),
      },
    });
    if (this.mode === 'driver') {
      let seq = 0;
      this.heartbeat = setInterval(() => this.send({ heartbeat: { seq: ++seq } }), 1000);
      this.heartbeat.unref();
    }
    return p;
  }

  /** Serve messages until told to stop (or the socket closes). */
  async run(): Promise<void> {
    for await (const frames of this.socket) {
      try {
        this.handle(frames);
      } catch (err) {
        logger().error({ err }, 'worker rejected a message from its node');
      }
      if (this.closed) break;
    }
  }

  private readonly incoming = new Map<string, { header: tsray.v1.IObjectData; buf: Buffer; got: number }>();

  /** An object this process subscribed to is ready (its data inline, in frames, or in the arena). */
  private objectReady(od: tsray.v1.IObjectData, payloads: Buffer[]): void {
    const s = this.subs.get(od.objectId ?? '');
    if (!s) {
      // Nobody waits anymore: give back the delivery pin.
      if (od.shm) this.unpin(od.objectId ?? '');
      return;
    }
    if (s.od !== undefined) {
      if (od.shm) this.unpin(od.objectId ?? '');
      return;
    }
    s.od = od;
    s.frames = payloads;
    s.seq = ++this.subSeq;
    const w = s.waiters;
    s.waiters = [];
    for (const cb of w) cb();
  }

  private getArena(): Arena {
    if (!this.arena) {
      this.arena =
        this.mode === 'driver'
          ? Arena.open(this.shmPath, this.arenaSize)
          : Arena.open(`/proc/self/fd/${config().arenaFd}`, Number(config().arenaSize));
    }
    return this.arena;
  }
  private arenaSize = 0;

  private send(body: EnvelopeBody, payloads?: Uint8Array[]): void {
    this.outbox.send(encodeMessage(body, payloads));
  }

  private handle(frames: Buffer[]): void {
    const { envelope, kind, payloads } = decodeMessage(frames);
    switch (kind) {
      case 'workerAccepted': {
        const a = envelope.workerAccepted!;
        this.shmPath = a.shmPath ?? '';
        this.arenaSize = Number(a.shmSize ?? 0);
        this.namespaceName = a.namespace ?? '';
        if (this.mode === 'driver' && a.nodeId) this.nodeId = a.nodeId;
        this.accepted?.(a);
        this.refused = undefined;
        return;
      }
      case 'getActorReply': {
        const r = envelope.getActorReply!;
        const p = this.requests.get(Number(r.requestId));
        if (p) {
          this.requests.delete(Number(r.requestId));
          p.resolve(r);
        }
        return;
      }
      case 'executeTasks':
        if (this.blockDepth > 0 && !this.actor) {
          // Blocked in get/wait: hand new work straight back (it may be what we wait for).
          const ids = (envelope.executeTasks!.tasks ?? []).map((t) => t.taskId ?? '');
          this.send({ workerBlocked: { blocked: true, taskId: this.running?.exec.taskId ?? '', returnedTaskIds: ids } });
          for (const t of envelope.executeTasks!.tasks ?? []) for (const a of t.args ?? []) if (a.shm) this.unpin(a.objectId ?? '');
          return;
        }
        for (const exec of envelope.executeTasks!.tasks ?? []) {
          this.queue.push({ exec, frames: payloads, cancelled: false, abort: undefined });
        }
        if (!this.loopActive) void this.loop();
        return;
      case 'cancelTask': {
        const id = envelope.cancelTask!.taskId;
        const running = this.active.get(id ?? '');
        if (running) {
          running.cancelled = true;
          abortOf(running).abort(new Error('task cancelled'));
        } else {
          const j = this.queue.find((x) => x.exec.taskId === id);
          if (j) j.cancelled = true;
        }
        return;
      }
      case 'objectChunk': {
        // A remote driver (no shared memory): large objects come in chunks; assemble, then as inline.
        const c = envelope.objectChunk!;
        const id = c.objectId ?? '';
        const total = Number(c.total ?? 0);
        let inc = this.incoming.get(id);
        if (!inc) {
          if (!c.header) return;
          inc = { header: c.header, buf: Buffer.allocUnsafe(total), got: 0 };
          this.incoming.set(id, inc);
        }
        const chunk = payloads[0] ?? Buffer.alloc(0);
        chunk.copy(inc.buf, Number(c.offset ?? 0));
        inc.got += chunk.length;
        if (inc.got < total) return;
        this.incoming.delete(id);
        const od: tsray.v1.IObjectData = { ...inc.header, objectId: id, inline: { frame: 0, offset: 0, length: total } };
        this.objectReady(od, [inc.buf]);
        return;
      }
      case 'objectsReady':
        for (const od of envelope.objectsReady!.objects ?? []) this.objectReady(od, payloads);
        return;
      case 'allocReply': {
        const r = envelope.allocReply!;
        const p = this.allocs.get(Number(r.requestId));
        if (!p) return;
        this.allocs.delete(Number(r.requestId));
        if (r.error) {
          let info: { requested?: number; capacity?: number; used?: number } = {};
          try {
            info = JSON.parse(r.error);
          } catch {
            /* plain text */
          }
          p.reject(info.capacity !== undefined ? new ObjectStoreFullError(info.requested ?? 0, info.capacity, info.used ?? 0) : new Error(r.error));
        } else p.resolve(Number(r.slice!.offset));
        return;
      }
      case 'shutdown':
        this.closed = true;
        void this.outbox.drain().then(() => process.exit(0));
        return;
      case 'error':
        if (envelope.error?.code === tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED && this.refused) {
          this.refused(new AuthenticationError(envelope.error.message ?? 'the cluster refused this connection (wrong or missing token)'));
          this.refused = undefined;
          return;
        }
        logger().error({ error: envelope.error }, 'node reported a protocol error');
        return;
      case 'gcsResponse': {
        const r = envelope.gcsResponse!;
        const p = this.stateRequests.get(Number(r.requestId));
        if (p) {
          this.stateRequests.delete(Number(r.requestId));
          if (r.error) p.reject(new GcsCallError(r.error.code ?? 0, r.error.message ?? 'the state call failed'));
          else p.resolve(r.state?.json?.[0] ? JSON.parse(r.state.json[0]) : null);
        }
        return;
      }
      default:
        logger().warn({ kind }, 'unexpected message kind from the node; ignored');
    }
  }

  // ---------------------------------------------------------------- task execution

  private async loop(): Promise<void> {
    this.loopActive = true;
    try {
      while (this.queue.length > 0) {
        const job = this.queue.shift()!;
        if (job.cancelled) {
          this.addResult({ taskId: job.exec.taskId, attempt: job.exec.attempt, status: Status.TASK_STATUS_CANCELLED }, []);
          continue;
        }
        if (this.actor?.isAsync && job.exec.actorId && !job.exec.actorCreation) {
          await this.startConcurrent(job);
          continue;
        }
        const key = `${job.exec.function?.moduleUrl}#${job.exec.function?.key}`;
        if (
          this.pendingResults.length > 0 &&
          ((this.slowFns.get(key) ?? 1) > 0.5 || this.pendingResults.length >= 256 || performance.now() - this.firstPendingAt > 0.2)
        ) {
          this.flushResults();
        }
        const t0 = performance.now();
        this.running = job;
        await this.execute(job);
        this.running = undefined;
        const dt = performance.now() - t0;
        const prev = this.slowFns.get(key);
        this.slowFns.set(key, prev === undefined ? dt : prev * 0.7 + dt * 0.3);
      }
    } finally {
      this.loopActive = false;
      this.running = undefined;
      this.flushResults();
      this.scheduleIdleGc();
    }
  }

  /**
   * Async actor: start a call when its concurrency group has a free slot. Each group has its own
   * queue: calls of a group start in arrival order, and a full group does not hold up the others.
   */
  private async startConcurrent(job: Job): Promise<void> {
    const a = this.actor!;
    const group = job.exec.concurrencyGroup || a.methodGroup.get(job.exec.method ?? '') || '';
    let waiting = this.groupQueues.get(group);
    if (!waiting) this.groupQueues.set(group, (waiting = []));
    waiting.push(job);
    this.drainGroup(group);
  }

  private readonly groupQueues = new Map<string, Job[]>();

  private drainScheduled = new Set<string>();
  /** When the current run of synchronous call starts began (0: none since the last event-loop turn). */
  private burstStart = 0;

  private drainGroup(group: string): void {
    const a = this.actor!;
    const limit = a.limits.get(group) ?? a.limits.get('') ?? 1000;
    const waiting = this.groupQueues.get(group)!;
    if (this.burstStart === 0) {
      this.burstStart = performance.now();
      setImmediate(() => (this.burstStart = 0));
    }
    while (waiting.length > 0 && (a.running.get(group) ?? 0) < limit) {
      if (performance.now() - this.burstStart > 0.5) {
        // Calls ran synchronously for a while: let results go out before starting more.
        if (!this.drainScheduled.has(group)) {
          this.drainScheduled.add(group);
          this.flushResults();
          setImmediate(() => {
            this.drainScheduled.delete(group);
            this.drainGroup(group);
          });
        }
        return;
      }
      const job = waiting.shift()!;
      if (job.cancelled) {
        this.addResult({ taskId: job.exec.taskId, attempt: job.exec.attempt, status: Status.TASK_STATUS_CANCELLED }, []);
        continue;
      }
      a.running.set(group, (a.running.get(group) ?? 0) + 1);
      void this.execute(job).finally(() => {
        a.running.set(group, (a.running.get(group) ?? 1) - 1);
        this.drainGroup(group);
        this.scheduleResultFlush();
      });
    }
  }

  private resultFlushQueued = false;
  private scheduleResultFlush(): void {
    if (this.resultFlushQueued) return;
    this.resultFlushQueued = true;
    setImmediate(() => {
      this.resultFlushQueued = false;
      this.flushResults();
    });
  }

  private gcTimer: NodeJS.Timeout | undefined;
  private lastGc = 0;
  private lastBusy = 0;

  /**
   * When idle, collect garbage so that refs and zero-copy views the finished tasks dropped are
   * released promptly (JS has no reference counting: without this an idle worker would keep objects
   * alive until its heap happened to fill).
   */
  private scheduleIdleGc(): void {
    const gc = gcFunction();
    if (!gc) return;
    if (this.gcTimer) {
      this.lastBusy = Date.now();
      return;
    }
    const delay = Math.max(20, 200 - (Date.now() - this.lastGc));
    this.lastBusy = Date.now();
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      if (this.loopActive) return;
      // Only when really idle: a worker serving a steady stream of calls is not stopped for a full GC.
      if (Date.now() - this.lastBusy < delay / 2) {
        this.scheduleIdleGc();
        return;
      }
      this.lastGc = Date.now();
      gc();
      // Finalizers run after this turn: send what they released.
      setImmediate(() => this.flushNow());
    }, delay);
    this.gcTimer.unref();
  }

  private addResult(result: tsray.v1.ITaskResult, payloads: Uint8Array[]): void {
    if (this.pendingResults.length === 0) this.firstPendingAt = performance.now();
    this.pendingResults.push({ result, payloads });
  }

  private flushResults(): void {
    if (this.pendingResults.length === 0) return;
    this.flushNow();
    const fb = new FrameBuilder();
    const results: tsray.v1.ITaskResult[] = [];
    for (const p of this.pendingResults) {
      // Re-base payload descriptors onto the batch's frames.
      for (const od of p.result.returns ?? []) {
        if (od.inline) od.inline = fb.add(p.payloads[od.inline.frame as number]!.subarray(Number(od.inline.offset), Number(od.inline.offset) + Number(od.inline.length)));
      }
      results.push(p.result);
    }
    this.pendingResults = [];
    this.send({ taskResults: { results } }, fb.empty ? undefined : fb.frames());
  }

  private async loadFunction(fn: tsray.v1.IFunctionDescriptor): Promise<RegisteredFunction> {
    const url = fn.moduleUrl ?? '';
    const key = fn.key ?? '';
    const s = state();
    let f = s.registry.get(url)?.get(key);
    if (f) return f;
    let p = this.modules.get(url);
    if (!p) {
      p = this.importModule(url);
      this.modules.set(url, p);
    }
    await p;
    f = s.registry.get(url)?.get(key);
    if (!f) throw new FunctionNotFoundError(url, key);
    return f;
  }

  private async importModule(url: string): Promise<void> {
    if (/\.[cm]?tsx?$/.test(new URL(url).pathname)) {
      this.tsxRegistered ??= import('tsx/esm/api').then((m) => {
        m.register();
      });
      await this.tsxRegistered;
    }
    const s = state();
    s.importing = url;
    try {
      await import(url);
    } finally {
      s.importing = undefined;
    }
  }

  private argValue(od: tsray.v1.IObjectData, frames: Buffer[]): unknown {
    const enc = encodingFromWire(od.encoding);
    if (enc === 'error') throw errorFromPayload(payloadView(od.inline!, frames));
    if (od.inline) {
      const bytes = payloadView(od.inline, frames);
      // Raw values alias the message frame: copy so user code can keep and modify them.
      return deserialize(enc, od.rawKind ?? '', enc === 'raw' ? Buffer.from(bytes) : bytes);
    }
    if (od.shm) {
      const view = this.getArena().view(Number(od.shm.offset), Number(od.shm.length));
      const id = od.objectId ?? '';
      if (enc === 'raw') {
        const v = deserialize('raw', od.rawKind ?? '', view) as object;
        // The delivery pin now belongs to the view.
        workerViews.register(v, { rt: this, id });
        return v;
      }
      const v = deserialize(enc, od.rawKind ?? '', view);
      this.unpin(id);
      return v;
    }
    return deserialize(enc, od.rawKind ?? '', readFileSync(od.spillPath ?? ''));
  }

  private async execute(job: Job): Promise<void> {
    const e = job.exec;
    const name = e.name ?? 'task';
    const ctx: RuntimeContext = {
      nodeId: this.nodeId,
      jobId: e.jobId ?? this.jobId,
      taskId: e.taskId ?? undefined,
      taskName: name,
      attempt: e.attempt ?? 0,
      gpuIds: e.gpuIds ?? [],
      get signal() {
        return abortOf(job).signal;
      },
      pid: process.pid,
      isWorker: true,
      actorId: e.actorId || undefined,
      placementGroupId: e.scheduling?.placementGroupId || (this.actorScheduling?.type === 'PLACEMENT_GROUP' ? this.actorScheduling.placementGroupId : undefined),
      capturedScheduling: e.scheduling?.captureChildTasks ? schedulingFromWire(e.scheduling) : this.actorScheduling?.type === 'PLACEMENT_GROUP' && this.actorScheduling.captureChildTasks ? this.actorScheduling : undefined,
    };
    if (e.actorCreation && e.scheduling?.kind) this.actorScheduling = schedulingFromWire(e.scheduling);
    // Output of actor calls is prefixed with the class name, as Ray does.
    setCurrent(ctx, this.actor?.className ?? e.actorCreation?.className ?? undefined);
    this.active.set(e.taskId ?? '', job);
    const base = { taskId: e.taskId, attempt: e.attempt };
    try {
      // Method calls need no module: the actor instance is here already.
      const f = e.actorId && !e.actorCreation ? undefined : await this.loadFunction(e.function!);
      const args = (e.args ?? []).map((od) => this.argValue(od, job.frames));
      let value: unknown;
      if (e.actorCreation) {
        const c = creationFromWire(e.actorCreation);
        const Cls = f!.fn as unknown as new (...a: unknown[]) => Record<string, unknown>;
        // AsyncLocalStorage turns on promise hooks for the whole process (Node 20): only async
        // actors, whose calls interleave, need it.
        const instance = c.isAsync ? contextStore.run(ctx, () => new Cls(...args)) : new Cls(...args);
        const limits = new Map<string, number>([['', c.maxConcurrency]]);
        const methodGroup = new Map<string, string>();
        for (const g of c.concurrencyGroups) {
          limits.set(g.name, g.maxConcurrency);
          for (const m of g.methods) methodGroup.set(m, g.name);
        }
        this.actor = { instance, className: c.className, isAsync: c.isAsync, limits, methodGroup, running: new Map() };
        setCurrent(ctx, c.className);
        value = null;
      } else if (e.actorId) {
        const a = this.actor;
        const method = e.method ?? '';
        const m = a?.instance[method];
        if (!a || typeof m !== 'function') {
          throw new ActorMethodNotFoundError(a?.className ?? 'actor', method, a ? Object.keys(Object.getPrototypeOf(a.instance) as object) : []);
        }
        value = a.isAsync ? contextStore.run(ctx, () => (m as (...x: unknown[]) => unknown).apply(a.instance, args)) : (m as (...x: unknown[]) => unknown).apply(a.instance, args);
      } else {
        value = f!.fn(...args);
      }
      if (e.streaming) {
        const count = await this.stream(job, value);
        const sv = serialize(count);
        this.addResult({ ...base, status: Status.TASK_STATUS_OK, returns: [inlineData(e.returnIds![0]!, sv)] }, [sv.bytes]);
        return;
      }
      if (isPromise(value)) value = await value;
      if (job.cancelled) {
        this.addResult({ ...base, status: Status.TASK_STATUS_CANCELLED }, []);
        return;
      }
      const ids = e.returnIds ?? [];
      let values: unknown[];
      if (ids.length === 1) values = [value];
      else if (ids.length === 0) values = [];
      else {
        if (!Array.isArray(value) || value.length !== ids.length) {
          throw new TypeError(`task ${name} has numReturns=${ids.length} but returned ${Array.isArray(value) ? `an array of ${value.length}` : typeof value}; return an array of exactly ${ids.length} values`);
        }
        values = value;
      }
      const returns: tsray.v1.IObjectData[] = [];
      const payloads: Uint8Array[] = [];
      for (let i = 0; i < values.length; i++) {
        const what = `return value${ids.length > 1 ? ` ${i}` : ''} of task ${name}`;
        const sv = e.xlang ? serializeXlang(values[i], what) : serialize(values[i], what);
        // Small values are recorded synchronously (no await), so a result is queued the moment its
        // call returns, even if the next call ends the process.
        returns.push(sv.bytes.byteLength <= INLINE ? this.inlineObjectData(ids[i]!, sv, payloads) : await this.objectData(ids[i]!, sv, payloads));
      }
      this.addResult({ ...base, status: Status.TASK_STATUS_OK, returns }, payloads);
    } catch (err) {
      if (job.cancelled) {
        this.addResult({ ...base, status: Status.TASK_STATUS_CANCELLED }, []);
        return;
      }
      const bytes = encodeErrorPayload({ type: 'TaskError', info: remoteErrorInfo(err, name) });
      const od: tsray.v1.IObjectData = { objectId: e.returnIds?.[0] ?? '', encoding: encodingToWire('error'), rawKind: '', inline: { frame: 0, offset: 0, length: bytes.length }, size: bytes.length };
      this.addResult({ ...base, status: Status.TASK_STATUS_ERROR, returns: [od], errorName: err instanceof Error ? err.name : typeof err }, [bytes]);
    } finally {
      this.active.delete(e.taskId ?? '');
      if (!this.actor?.isAsync) setCurrent(undefined, this.actor?.className);
    }
  }

  private inlineObjectData(id: string, sv: SerializedValue, payloads: Uint8Array[]): tsray.v1.IObjectData {
    const od: tsray.v1.IObjectData = { objectId: id, encoding: encodingToWire(sv.encoding), rawKind: sv.rawKind, containedRefs: sv.containedRefs, size: sv.bytes.byteLength };
    od.inline = { frame: payloads.length, offset: 0, length: sv.bytes.byteLength };
    payloads.push(sv.bytes);
    return od;
  }

  /** ObjectData for a value: inline payload (index into `payloads`), or written into the arena. */
  private async objectData(id: string, sv: SerializedValue, payloads: Uint8Array[]): Promise<tsray.v1.IObjectData> {
    const n = sv.bytes.byteLength;
    const od: tsray.v1.IObjectData = { objectId: id, encoding: encodingToWire(sv.encoding), rawKind: sv.rawKind, containedRefs: sv.containedRefs, size: n };
    if (n <= INLINE) {
      od.inline = { frame: payloads.length, offset: 0, length: n };
      payloads.push(sv.bytes);
      return od;
    }
    const off = await this.alloc(n);
    this.getArena().write(off, sv.bytes);
    od.shm = { offset: off, length: n };
    return od;
  }

  private alloc(size: number): Promise<number> {
    const requestId = ++this.allocSeq;
    return new Promise((resolve, reject) => {
      this.allocs.set(requestId, { resolve, reject });
      this.flushNow();
      this.send({ allocRequest: { requestId, size } });
    });
  }

  private async stream(job: Job, gen: unknown): Promise<number> {
    const e = job.exec;
    const it = gen as AsyncIterator<unknown> | Iterator<unknown>;
    if (!it || typeof (it as AsyncIterator<unknown>).next !== 'function') {
      throw new TypeError(`streaming task ${e.name} must be a generator function (async function* or function*)`);
    }
    let i = 0;
    for (;;) {
      if (job.cancelled) {
        await (it as AsyncGenerator).return?.(undefined);
        throw new Error('cancelled');
      }
      const r: unknown = (it as AsyncIterator<unknown>).next();
      const res = (isPromise(r) ? await r : r) as IteratorResult<unknown>;
      if (res.done) return i;
      const payloads: Uint8Array[] = [];
      const od = await this.objectData(`${e.taskId}.g${i}`, serialize(res.value, `item ${i} of ${e.name}`), payloads);
      this.flushResults();
      this.send({ generatorItems: { items: [{ taskId: e.taskId, index: i, item: od }] } }, payloads.length ? payloads : undefined);
      i++;
    }
  }

  // ---------------------------------------------------------------- CoreRuntime (nested API)

  submitTask(spec: SubmitSpec): void {
    // Large arguments go to the object store first (as Ray puts them into plasma) and travel as refs.
    const args = spec.args.map((a, i): SubmitArg => {
      if (a.kind === 'ref' || a.value.bytes.byteLength <= INLINE) return a;
      const id = `${spec.taskId}.a${i}`;
      this.refAdded(id);
      this.putObject(id, a.value);
      // Held until the task is submitted; the task then holds it.
      queueMicrotask(() => this.refRemoved(id));
      return { kind: 'ref', id };
    });
    this.submits.push(specToWire({ ...spec, args }, this.submitFrames, { jobId: this.jobId, parentTaskId: current?.taskId ?? '', copyArgs: true }));
    this.scheduleFlush();
  }

  putObject(id: string, value: SerializedValue): void {
    const n = value.bytes.byteLength;
    if (n <= INLINE || this.clientOptions.remote) {
      this.puts.push({
        objectId: id,
        encoding: encodingToWire(value.encoding),
        rawKind: value.rawKind,
        containedRefs: value.containedRefs,
        size: n,
        inline: this.putFrames.add(Buffer.from(value.bytes)),
      });
      this.scheduleFlush();
      return;
    }
    // Large: copy now (the caller may change its buffer), then place it in the arena.
    const copy = Buffer.from(value.bytes);
    this.alloc(n).then(
      (off) => {
        this.getArena().write(off, copy);
        this.flushNow();
        this.send({
          putObjects: {
            objects: [{ objectId: id, encoding: encodingToWire(value.encoding), rawKind: value.rawKind, containedRefs: value.containedRefs, size: n, shm: { offset: off, length: n } }],
          },
        });
      },
      (err: Error) => {
        const bytes =
          err instanceof ObjectStoreFullError
            ? encodeErrorPayload({ type: 'ObjectStoreFullError', requested: err.requested, capacity: err.capacity, used: err.used })
            : encodeErrorPayload({ type: 'Other', name: err.name, message: err.message });
        this.flushNow();
        this.send({ putObjects: { objects: [{ objectId: id, encoding: encodingToWire('error'), inline: { frame: 0, offset: 0, length: bytes.length }, size: bytes.length }] } }, [bytes]);
      },
    );
  }

  private subscribe(id: string): Subscription {
    let s = this.subs.get(id);
    if (!s) {
      s = { od: undefined, frames: undefined, seq: 0, waiters: [] };
      this.subs.set(id, s);
      this.subscribes.push(id);
      this.scheduleFlush();
    }
    return s;
  }

  private value(id: string, s: Subscription): unknown {
    const od = s.od!;
    // Inline and spilled data stay cached; arena data is delivered once per get (it carries a pin).
    if (od.shm) this.subs.delete(id);
    if (encodingFromWire(od.encoding) === 'error') throw errorFromPayload(payloadView(od.inline!, s.frames!));
    return this.argValue(od, s.frames!);
  }

  async getObjects(ids: string[], timeoutMs: number | undefined): Promise<unknown[]> {
    const subs = ids.map((id) => this.subscribe(id));
    const missing = subs.filter((s) => s.od === undefined);
    if (missing.length > 0) {
      this.block();
      await new Promise<void>((resolve, reject) => {
        let left = missing.length;
        let timer: NodeJS.Timeout | undefined;
        const done = () => {
          if (--left === 0) {
            if (timer) clearTimeout(timer);
            resolve();
          }
        };
        for (const s of missing) s.waiters.push(done);
        if (timeoutMs !== undefined) {
          timer = setTimeout(() => {
            for (const s of missing) s.waiters = s.waiters.filter((w) => w !== done);
            reject(new GetTimeoutError(timeoutMs / 1000, ids.filter((id) => this.subs.get(id)?.od === undefined)));
          }, timeoutMs);
        }
      }).finally(() => this.unblock());
    }
    return ids.map((id, i) => this.value(id, subs[i]!));
  }

  async wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<string[]> {
    const subs = ids.map((id) => this.subscribe(id));
    const readyNow = () => ids.filter((_, i) => subs[i]!.od !== undefined);
    if (readyNow().length < numReturns) {
      this.block();
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        let count = readyNow().length;
        const cb = () => {
          if (++count >= numReturns) finish();
        };
        const finish = () => {
          if (timer) clearTimeout(timer);
          for (const s of subs) s.waiters = s.waiters.filter((w) => w !== cb);
          resolve();
        };
        for (const s of subs) if (s.od === undefined) s.waiters.push(cb);
        if (timeoutMs !== undefined) timer = setTimeout(finish, timeoutMs);
      }).finally(() => this.unblock());
    }
    return ids
      .map((id, i) => ({ id, s: subs[i]! }))
      .filter((x) => x.s.od !== undefined)
      .sort((a, b) => a.s.seq - b.s.seq)
      .map((x) => x.id);
  }

  /** The running task starts waiting: tell the node and hand back the tasks queued behind it. */
  private block(): void {
    if (!this.running || this.actor || this.blockDepth++ > 0) return;
    const returned = this.queue.map((j) => j.exec.taskId ?? '');
    this.queue.length = 0;
    this.flushResults();
    this.flushNow();
    this.send({ workerBlocked: { blocked: true, taskId: this.running.exec.taskId, returnedTaskIds: returned } });
  }

  private unblock(): void {
    if (this.blockDepth === 0 || --this.blockDepth > 0) return;
    this.send({ workerBlocked: { blocked: false, taskId: this.running?.exec.taskId ?? '' } });
  }

  createActor(spec: SubmitSpec): string {
    this.submitTask(spec);
    return spec.actorCreation!.actorId;
  }

  private request(body: (id: number) => EnvelopeBody): Promise<tsray.v1.IGetActorReply> {
    const id = ++this.requestSeq;
    return new Promise((resolve) => {
      this.requests.set(id, { resolve });
      this.flushNow();
      this.send(body(id));
    });
  }

  async getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> {
    const r = await this.request((requestId) => ({ getActorRequest: { requestId, name, namespace: namespace ?? '' } }));
    if (r.error) throw new ActorNotFoundError(name, namespace || this.namespaceName || '(job namespace)');
    return { actorId: r.actorId ?? '', className: r.className ?? '', methods: r.methods ?? [], module: '', key: '' };
  }

  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean): void {
    this.flushNow();
    this.send({
      placementGroupRequest: {
        placementGroupId: id,
        bundles: bundles.map((b) => ({ resources: Object.entries(b).map(([n, x]) => ({ name: n, units: Math.round(x * 10_000) })) })),
        strategy,
        name,
        detached,
      },
    });
  }

  removePlacementGroup(id: string): void {
    this.flushNow();
    this.send({ placementGroupRequest: { placementGroupId: id, remove: true } });
  }

  killActor(actorId: string, noRestart: boolean): void {
    this.flushNow();
    this.send({ killActor: { actorId, noRestart } });
  }

  cancel(id: string, force: boolean): void {
    this.flushNow();
    this.send({ cancelRequest: { objectId: id, force } });
  }

  refAdded(id: string): void {
    this.adds.push(id);
    this.scheduleFlush();
  }

  refRemoved(id: string): void {
    this.removes.push(id);
    const s = this.subs.get(id);
    if (s && s.waiters.length === 0) {
      this.subs.delete(id);
      if (s.od?.shm) this.unpin(id);
    }
    this.scheduleFlush();
  }

  /** Send pending results and messages while the process exits (see Outbox.flushSync). */
  flushOnExit(): void {
    try {
      this.flushResults();
      this.flushNow();
    } finally {
      this.outbox.flushSync();
    }
  }

  /** Give back one pin of an arena object. */
  unpin(id: string): void {
    this.unpins.push(id);
    this.scheduleFlush();
  }

  context(): RuntimeContext {
    return (
      contextStore.getStore() ??
      current ?? {
        nodeId: this.nodeId,
        jobId: this.jobId,
        taskId: undefined,
        taskName: undefined,
        attempt: 0,
        // A client driver is not a worker and holds no GPUs (as the embedded driver's context).
        gpuIds: this.mode === 'worker' ? (process.env['CUDA_VISIBLE_DEVICES'] ?? '').split(',').filter(Boolean) : [],
        signal: this.idleSignal,
        pid: process.pid,
        isWorker: this.mode === 'worker',
      }
    );
  }

  async shutdown(): Promise<void> {
    if (this.mode !== 'driver') return; // a worker is stopped by its node
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.flushNow();
    this.send({ heartbeat: { seq: 0, goodbye: true } });
    await this.outbox.drain();
    this.closed = true;
    this.outbox.close();
    this.socket.close();
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flushNow();
    });
  }

  /** Send everything pending, in dependency order: refs, puts, submits, subscriptions. */
  private flushNow(): void {
    if (this.adds.length || this.removes.length || this.pins.length || this.unpins.length) {
      this.send({ refUpdates: { add: this.adds, remove: this.removes, pin: this.pins, unpin: this.unpins } });
      this.adds = [];
      this.removes = [];
      this.pins = [];
      this.unpins = [];
    }
    if (this.puts.length) {
      this.send({ putObjects: { objects: this.puts } }, this.putFrames.frames());
      this.puts = [];
      this.putFrames = new FrameBuilder();
    }
    if (this.submits.length) {
      this.send({ submitTasks: { tasks: this.submits } }, this.submitFrames.empty ? undefined : this.submitFrames.frames());
      this.submits = [];
      this.submitFrames = new FrameBuilder();
    }
    if (this.subscribes.length) {
      this.send({ subscribeObjects: { objectIds: this.subscribes } });
      this.subscribes = [];
    }
  }
}

let current: RuntimeContext | undefined;
/** Context of the call running in this async scope (async actors run several calls at once). */
const contextStore = new AsyncLocalStorage<RuntimeContext>();
function setCurrent(c: RuntimeContext | undefined, outputName?: string): void {
  current = c;
  currentTaskName = outputName ?? c?.taskName;
}

/** Name of the task running now (for the output prefix). @internal */
export let currentTaskName: string | undefined;

const workerViews = new FinalizationRegistry<{ rt: WorkerRuntime; id: string }>((h) => h.rt.unpin(h.id));

function inlineData(id: string, sv: SerializedValue): tsray.v1.IObjectData {
  return { objectId: id, encoding: encodingToWire(sv.encoding), rawKind: sv.rawKind, containedRefs: sv.containedRefs, size: sv.bytes.byteLength, inline: { frame: 0, offset: 0, length: sv.bytes.byteLength } };
}

function isPromise(v: unknown): v is Promise<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
