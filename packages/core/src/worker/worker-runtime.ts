/**
 * The runtime of a worker process or client driver: the CoreRuntime (nested tasks, put, get, wait,
 * actors, placement groups) over a ZeroMQ connection to its node. It wires the parts:
 * {@link NodeChannel} (socket and batching), {@link NodeSession} (registration and node replies),
 * {@link ObjectClient} (get/wait/put), {@link TaskExecutor} (running tasks; workers only), with
 * messages from the node dispatched through {@link WORKER_MESSAGE_HANDLERS}.
 * @internal
 */
import { Arena } from '@tsray/object-store';
import { decodeMessage, tsray } from '@tsray/protocol';
import { config } from '../config.js';
import { refusedMessage } from '../curve.js';
import { ActorNotFoundError } from '../errors.js';
import { logger } from '../logger.js';
import { arenaCopyThreads } from '../node/store.js';
import { specToWire } from '../node/task-codec.js';
import type { ActorInfoData, CoreRuntime, RuntimeContext, SubmitArg, SubmitSpec } from '../runtime.js';
import type { SerializedValue } from '../serialization.js';
import { NodeChannel } from './node-channel.js';
import { NodeSession } from './node-session.js';
import { INLINE_BYTES, ObjectClient } from './object-client.js';
import { ResultBatch } from './result-batch.js';
import { currentContext, currentTaskId } from './task-context.js';
import { TaskExecutor } from './task-executor.js';
import { WORKER_MESSAGE_HANDLERS, type WorkerMessageHost } from './worker-messages.js';

/** The worker side of the node protocol. */
export class WorkerRuntime implements CoreRuntime, WorkerMessageHost {
  readonly kind: 'driver' | 'worker';
  readonly jobId: string;
  readonly session: NodeSession;
  readonly objects: ObjectClient;
  readonly executor: TaskExecutor;
  private readonly channel: NodeChannel;
  private readonly results: ResultBatch;
  private readonly idleSignal = new AbortController().signal;
  private closed = false;

  constructor(
    workerId: string,
    address: string,
    /** 'worker' (executes tasks) or 'driver' (a client driver of a running cluster). */
    private readonly mode: 'worker' | 'driver' = 'worker',
    clientOptions: { namespace?: string; jobId?: string; token?: string; remote?: boolean; nodeId?: string } = {},
  ) {
    this.kind = mode;
    this.jobId = clientOptions.jobId ?? config().jobId ?? '';
    // A TypeScript worker its node started takes the node's stream socket when it has one (TSRAY_NODE_STREAM).
    const stream = mode === 'worker' ? config().nodeStream : undefined;
    this.channel = new NodeChannel(workerId, address, clientOptions.token ?? config().token, stream);
    this.session = new NodeSession(this.channel, { ...clientOptions, workerId, mode, jobId: this.jobId });
    this.channel.onRefused = (detail) =>
      this.session.onError({ code: tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED, message: refusedMessage(`node at ${address}`, detail) });
    const copyThreads = arenaCopyThreads();
    const openArena = () =>
      mode === 'driver'
        ? Arena.open(this.session.shmPath, this.session.arenaSize, { copyThreads })
        : Arena.open(`/proc/self/fd/${config().arenaFd}`, Number(config().arenaSize), { copyThreads });
    this.objects = new ObjectClient(this.channel, openArena, clientOptions.remote ?? false);
    this.results = new ResultBatch(this.channel);
    this.executor = new TaskExecutor(this.channel, this.objects, this.results, this);
    this.objects.blocking = this.executor;
    this.session.onDropped = (err) => {
      logger().error({ node: this.session.nodeId }, err.message);
      this.objects.connectionLost(err);
    };
  }

  /** The node this process is attached to (a client driver learns it when the node accepts it). */
  get nodeId(): string {
    return this.session.nodeId;
  }

  /** Register with the node; resolves when the node accepted (client drivers await this). */
  register(): Promise<tsray.v1.IWorkerAccepted> {
    return this.session.register();
  }

  /** A state API call answered by the node (`nodes`, `actors`, ...). */
  stateCall(method: string): Promise<unknown> {
    return this.session.stateCall(method);
  }

  /** Serve messages until the connection closes. */
  run(): Promise<void> {
    return this.channel.serve((frames) => {
      if (this.closed) return;
      try {
        this.handle(frames);
      } catch (err) {
        logger().error({ err }, 'worker rejected a message from its node');
      }
    });
  }

  private handle(frames: Buffer[]): void {
    const m = decodeMessage(frames);
    const handler = WORKER_MESSAGE_HANDLERS[m.kind];
    if (handler) handler(this, m);
    else logger().warn({ kind: m.kind }, 'unexpected message kind from the node; ignored');
  }

  /** The node told this worker to stop. */
  exit(): void {
    this.closed = true;
    void this.channel.drain().then(() => process.exit(0));
  }

  // ---------------------------------------------------------------- CoreRuntime (nested API)

  submitTask(spec: SubmitSpec): void {
    // Large arguments go to the object store first (as Ray puts them into plasma) and travel as refs.
    const args = spec.args.map((a, i): SubmitArg => {
      if (a.kind === 'ref' || a.value.bytes.byteLength <= INLINE_BYTES) return a;
      const id = `${spec.taskId}.a${i}`;
      this.refAdded(id);
      this.putObject(id, a.value);
      // Held until the task is submitted; the task then holds it.
      queueMicrotask(() => this.refRemoved(id));
      return { kind: 'ref', id };
    });
    this.channel.queueSubmit((frames) => specToWire({ ...spec, args }, frames, { jobId: this.jobId, parentTaskId: currentTaskId() ?? '', copyArgs: true }));
  }

  putObject(id: string, value: SerializedValue): void {
    this.objects.putObject(id, value);
  }

  putObjectOwned(id: string, value: SerializedValue): Promise<void> {
    return this.objects.putObjectOwned(id, value);
  }

  getObjects(ids: string[], timeoutMs: number | undefined): Promise<unknown[]> {
    return this.objects.getObjects(ids, timeoutMs);
  }

  wait(ids: string[], numReturns: number, timeoutMs: number | undefined): Promise<number[]> {
    return this.objects.wait(ids, numReturns, timeoutMs);
  }

  createActor(spec: SubmitSpec): string {
    this.submitTask(spec);
    return spec.actorCreation!.actorId;
  }

  async getActor(name: string, namespace: string | undefined): Promise<ActorInfoData> {
    const r = await this.session.getActor(name, namespace ?? '', () => this.channel.flushNow());
    if (r.error) throw new ActorNotFoundError(name, namespace || this.session.namespace || '(job namespace)');
    return { actorId: r.actorId ?? '', className: r.className ?? '', methods: r.methods ?? [], module: '', key: '' };
  }

  createPlacementGroup(id: string, bundles: Record<string, number>[], strategy: string, name: string, detached: boolean): void {
    this.channel.flushNow();
    this.channel.send({
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
    this.channel.flushNow();
    this.channel.send({ placementGroupRequest: { placementGroupId: id, remove: true } });
  }

  killActor(actorId: string, noRestart: boolean): void {
    this.channel.flushNow();
    this.channel.send({ killActor: { actorId, noRestart } });
  }

  cancel(id: string, force: boolean): void {
    this.channel.flushNow();
    this.channel.send({ cancelRequest: { objectId: id, force } });
  }

  refAdded(id: string): void {
    this.objects.refAdded(id);
  }

  refRemoved(id: string): void {
    this.objects.refRemoved(id);
  }

  /** Give back one pin of an arena object. */
  unpin(id: string): void {
    this.objects.unpin(id);
  }

  /** Send pending results and messages while the process exits (see Outbox.flushSync). */
  flushOnExit(): void {
    try {
      this.results.flush();
      this.channel.flushNow();
    } finally {
      this.channel.flushSync();
    }
  }

  context(): RuntimeContext {
    return (
      currentContext() ?? {
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
    this.channel.flushNow();
    this.session.goodbye();
    await this.channel.drain();
    this.closed = true;
    this.channel.close();
  }
}
