/**
 * TaskManager alone: a fake node (no sockets, no processes) with a real object table and real
 * resources; workers are WorkerHandles without a process whose messages are recorded.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeResources } from '@tsray/scheduler';
import { tsray, type EnvelopeBody } from '@tsray/protocol';
import { TaskCancelledError, WorkerCrashedError } from '../../src/errors.js';
import { errorFromPayload } from '../../src/error-payload.js';
import type { SubmitArg, SubmitSpec } from '../../src/runtime.js';
import type { SerializedValue } from '../../src/serialization.js';
import { ObjectTable, type StoredObject } from '../../src/node/object-table.js';
import { errorObject } from '../../src/node/node-support.js';
import { WorkerHandle, type Lease, type Pool, type TaskRecord } from '../../src/node/records.js';
import { TaskManager, type TaskManagerHost } from '../../src/node/task-manager.js';

const HOST_JOB = 'job-host';

/** The node around the task manager: leases like the real worker pool (reuse per job), sends recorded. */
class FakeNode implements TaskManagerHost {
  readonly nodeId = 'node-1';
  readonly jobId = HOST_JOB;
  readonly namespace = 'ns';
  readonly python = '/nonexistent/python';
  readonly objects = new ObjectTable(() => {});
  readonly store = {
    bytes: (d: StoredObject) => d.inline!,
    store: (v: SerializedValue): StoredObject => ({
      encoding: v.encoding,
      rawKind: v.rawKind,
      inline: Buffer.from(v.bytes),
      size: v.bytes.byteLength,
      contained: [...v.containedRefs],
    }),
    release: () => {},
  };
  readonly closed = false;
  readonly inCluster = false;
  readonly nodePool: Pool;
  readonly runtimeEnvs = {
    request: () => {
      throw new Error('no runtime envs in these tests');
    },
    hold: () => {},
    drop: () => {},
  };
  readonly leasesByKey = new Map<string, Lease[]>();
  readonly cpuSlots: number;
  /** Every worker started, in order. */
  readonly started: WorkerHandle[] = [];
  readonly idle: WorkerHandle[] = [];
  /** Messages sent to workers, in order. */
  readonly sent: { w: WorkerHandle; body: tsray.v1.Envelope.$Properties }[] = [];
  tm!: TaskManager;

  constructor(cpus: number) {
    this.cpuSlots = cpus;
    this.nodePool = { key: '', resources: new NodeResources({ CPU: cpus }), pg: undefined, bundleIndex: -1 };
  }

  get workerCount(): number {
    return this.started.filter((w) => w.state !== 'dead').length;
  }

  newLease(key: string, head: TaskRecord): Lease | undefined {
    const pool = head.pool ?? this.nodePool;
    const allocation = pool.resources.allocate(head.request);
    if (!allocation) return undefined;
    // As the worker pool does: an idle worker is reused only for the same job.
    const gpuKey = `|job:${head.jobId}`;
    const i = this.idle.findIndex((w) => w.gpuKey === gpuKey);
    let w = i === -1 ? undefined : this.idle.splice(i, 1)[0];
    if (!w) {
      w = new WorkerHandle(`w${this.started.length}`, undefined, gpuKey);
      w.state = 'ready';
      w.jobId = head.jobId;
      this.started.push(w);
    }
    const lease: Lease = { key, pool, request: head.request, allocation, gpuIds: allocation.gpuIds, worker: w };
    w.lease = lease;
    return lease;
  }

  releaseLease(w: WorkerHandle): void {
    const l = w.lease!;
    w.lease = undefined;
    if (l.allocation) l.pool.resources.release(l.allocation);
    const list = this.leasesByKey.get(l.key)!;
    list.splice(list.indexOf(l), 1);
    if (w.state !== 'dead') this.idle.push(w);
    this.tm.scheduleDispatch();
  }

  /** A worker process died (what the worker pool does before handing its tasks back). */
  kill(w: WorkerHandle): void {
    w.state = 'dead';
    const l = w.lease;
    w.lease = undefined;
    if (l?.allocation) l.pool.resources.release(l.allocation);
    if (l) this.leasesByKey.get(l.key)!.splice(this.leasesByKey.get(l.key)!.indexOf(l), 1);
    this.tm.onWorkerDied(w, 'killed by SIGKILL');
    this.tm.scheduleDispatch();
  }

  send(w: WorkerHandle, body: EnvelopeBody): void {
    this.sent.push({ w, body });
  }
  jobEnded(): boolean {
    return false;
  }
  namespaceOf(owner: WorkerHandle): string {
    return owner.namespace;
  }
  actorFor(): undefined {
    return undefined;
  }
  placementGroup(): undefined {
    return undefined;
  }
  placePendingGroups(): void {}
  startPendingActors(): void {}
  unschedulable(): string | undefined {
    return undefined;
  }
  spillQueue(): void {}
  // Not reached by plain tasks on one node.
  sendObjectsRemote = unexpected('sendObjectsRemote');
  registerActor = unexpected('registerActor');
  queueActorStart = unexpected('queueActorStart');
  pumpActor = unexpected('pumpActor');
  actorDead = unexpected('actorDead');
  onActorCreated = unexpected('onActorCreated');
  maybeStopActor = unexpected('maybeStopActor');
  resolveRemoteActor = unexpected('resolveRemoteActor');
  placeRemote = unexpected('placeRemote');
  argsHere = (): boolean => true;
  forwardTask = unexpected('forwardTask');
  forwardActorCreation = unexpected('forwardActorCreation');
  cancelRemote = unexpected('cancelRemote');

  /** Task ids sent to `w` in executeTasks messages, in order. */
  executed(w: WorkerHandle): string[] {
    return this.sent.filter((m) => m.w === w && m.body.executeTasks).flatMap((m) => m.body.executeTasks!.tasks!.map((t) => t.taskId!));
  }

  /** The worker a task was sent to last (and the attempt it was sent as). */
  workerOf(taskId: string): { w: WorkerHandle; attempt: number } | undefined {
    for (let i = this.sent.length - 1; i >= 0; i--) {
      const m = this.sent[i]!;
      const t = m.body.executeTasks?.tasks?.find((x) => x.taskId === taskId);
      if (t) return { w: m.w, attempt: t.attempt ?? 0 };
    }
    return undefined;
  }
}

function unexpected(name: string): () => never {
  return () => {
    throw new Error(`the task manager called host.${name} in a plain-task test`);
  };
}

function setup(cpus = 1): { node: FakeNode; tm: TaskManager } {
  const node = new FakeNode(cpus);
  const tm = new TaskManager(node);
  node.tm = tm;
  return { node, tm };
}

let seq = 0;
function spec(name: string, opts: { args?: SubmitArg[]; maxRetries?: number; jobId?: string } = {}): SubmitSpec {
  const taskId = `t${seq++}`;
  return {
    taskId,
    fn: { moduleUrl: 'file:///fns.js', key: name, name },
    args: opts.args ?? [],
    resources: new Map([['CPU', 10_000]]),
    numReturns: 1,
    streaming: false,
    maxRetries: opts.maxRetries ?? 0,
    retryExceptions: false,
    returnIds: [`${taskId}.0`],
    name,
    ...(opts.jobId ? { jobId: opts.jobId } : {}),
  };
}

/** Submit from the driver, which holds the returns (as its ObjectRefs do) so that they stay once sealed. */
function submit(node: FakeNode, tm: TaskManager, s: SubmitSpec): void {
  for (const id of s.returnIds) node.objects.incRef(id);
  tm.submit(s, undefined);
}

/** Let queued dispatch and flush microtasks run (no timers involved). */
async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

/** The worker reports success for `taskId` (returning `text`). */
function succeed(tm: TaskManager, w: WorkerHandle, s: SubmitSpec, attempt = 0, text = 'ok'): void {
  const bytes = Buffer.from(text);
  const returns: tsray.v1.IObjectData[] = [
    {
      objectId: s.returnIds[0],
      encoding: tsray.v1.Encoding.ENCODING_RAW,
      rawKind: 'Buffer',
      size: bytes.length,
      inline: { frame: 0, offset: 0, length: bytes.length },
    },
  ];
  tm.onResult(w, { taskId: s.taskId, attempt, status: tsray.v1.TaskStatus.TASK_STATUS_OK, returns }, [bytes]);
  // As the node's message handler does after a batch of results.
  tm.scheduleDispatch();
}

/** The sealed value of a return, or the error it holds. */
function outcome(node: FakeNode, id: string): string | Error | undefined {
  const d = node.objects.get(id)?.data;
  if (!d) return undefined;
  return d.encoding === 'error' ? errorFromPayload(d.inline!) : d.inline!.toString();
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('TaskManager: dependencies', () => {
  it('holds a task until its ref arguments are sealed, then runs it', async () => {
    const { node, tm } = setup(2);
    const upstream = spec('upstream');
    const downstream = spec('downstream', { args: [{ kind: 'ref', id: upstream.returnIds[0]! }] });
    // Refs are held by the driver (as ObjectRefs do) before submit.
    node.objects.incRef(upstream.returnIds[0]!);
    submit(node, tm, downstream);
    submit(node, tm, upstream);
    await settle();
    expect(tm.tasks.get(downstream.taskId)?.state).toBe('deps');
    expect(node.workerOf(downstream.taskId)).toBeUndefined();
    const up = node.workerOf(upstream.taskId)!;
    succeed(tm, up.w, upstream, 0, 'upstream value');
    await settle();
    const down = node.workerOf(downstream.taskId);
    expect(down).toBeDefined();
    // The argument travels with the task, sealed.
    const exec = node.sent.find((m) => m.body.executeTasks?.tasks?.some((t) => t.taskId === downstream.taskId))!;
    expect(exec.body.executeTasks!.tasks![0]!.args![0]!.objectId).toBe(upstream.returnIds[0]);
    succeed(tm, down!.w, downstream);
    expect(outcome(node, downstream.returnIds[0]!)).toBe('ok');
    expect(tm.tasks.size).toBe(0);
  });

  it('fails a waiting task with its upstream error, without running it', async () => {
    const { node, tm } = setup(1);
    const upstream = 'upstream.0';
    node.objects.incRef(upstream);
    const downstream = spec('downstream', { args: [{ kind: 'ref', id: upstream }] });
    submit(node, tm, downstream);
    await settle();
    node.objects.seal(upstream, errorObject({ type: 'WorkerCrashedError', taskName: 'upstream', detail: 'exit code 1', attempts: 1 }));
    await settle();
    const err = outcome(node, downstream.returnIds[0]!);
    expect(err).toBeInstanceOf(WorkerCrashedError);
    expect((err as WorkerCrashedError).taskName).toBe('upstream');
    expect(node.started).toHaveLength(0);
    expect(tm.tasks.size).toBe(0);
  });

  it('fails at once when an argument is an error already', async () => {
    const { node, tm } = setup(1);
    const upstream = 'upstream.0';
    node.objects.incRef(upstream);
    node.objects.seal(upstream, errorObject({ type: 'TaskCancelledError', taskName: 'upstream', forced: false }));
    const downstream = spec('downstream', { args: [{ kind: 'ref', id: upstream }] });
    submit(node, tm, downstream);
    expect(outcome(node, downstream.returnIds[0]!)).toBeInstanceOf(TaskCancelledError);
    await settle();
    expect(node.started).toHaveLength(0);
    expect(tm.tasks.size).toBe(0);
  });
});

describe('TaskManager: retries on worker death', () => {
  it('runs the task again (attempt 1, first in line) while retries are left', async () => {
    const { node, tm } = setup(1);
    const s = spec('flaky', { maxRetries: 1 });
    const other = spec('other');
    submit(node, tm, s);
    submit(node, tm, other);
    await settle();
    const first = node.workerOf(s.taskId)!;
    expect(first.attempt).toBe(0);
    node.kill(first.w);
    await settle();
    const second = node.workerOf(s.taskId)!;
    expect(second.w).not.toBe(first.w);
    expect(second.attempt).toBe(1);
    // The retried task went back to the front of its queue, before `other`.
    expect(node.executed(second.w)[0]).toBe(s.taskId);
    // A late result of the dead attempt is ignored; the retry's result counts.
    succeed(tm, first.w, s, 0, 'stale');
    expect(outcome(node, s.returnIds[0]!)).toBeUndefined();
    succeed(tm, second.w, s, 1, 'second try');
    expect(outcome(node, s.returnIds[0]!)).toBe('second try');
  });

  it('fails with WorkerCrashedError once retries are spent', async () => {
    const { node, tm } = setup(1);
    const s = spec('doomed', { maxRetries: 1 });
    submit(node, tm, s);
    await settle();
    node.kill(node.workerOf(s.taskId)!.w);
    await settle();
    node.kill(node.workerOf(s.taskId)!.w);
    await settle();
    const err = outcome(node, s.returnIds[0]!);
    expect(err).toBeInstanceOf(WorkerCrashedError);
    expect((err as WorkerCrashedError).attempts).toBe(2);
    expect(node.started).toHaveLength(2);
    expect(tm.tasks.size).toBe(0);
  });

  it('requeues the tasks pipelined behind the running one without spending their retries', async () => {
    const { node, tm } = setup(1);
    // A frozen clock: every task takes 0 ms, so tasks of the function are pipelined.
    vi.spyOn(performance, 'now').mockReturnValue(1000);
    // Fast tasks are pipelined onto one worker once their duration is known.
    const warm = spec('tiny');
    submit(node, tm, warm);
    await settle();
    succeed(tm, node.workerOf(warm.taskId)!.w, warm);
    const a = spec('tiny');
    const b = spec('tiny');
    submit(node, tm, a);
    submit(node, tm, b);
    await settle();
    const w = node.workerOf(a.taskId)!.w;
    expect(node.workerOf(b.taskId)!.w).toBe(w);
    node.kill(w);
    await settle();
    // a had no retries: it fails; b never started: it runs again, as attempt 0.
    expect(outcome(node, a.returnIds[0]!)).toBeInstanceOf(WorkerCrashedError);
    const again = node.workerOf(b.taskId)!;
    expect(again.w).not.toBe(w);
    expect(again.attempt).toBe(0);
  });
});

describe('TaskManager: cancel', () => {
  it('drops a queued task from its queue and fails it with TaskCancelledError', async () => {
    const { node, tm } = setup(1);
    const running = spec('running');
    const queued = spec('queued');
    submit(node, tm, running);
    submit(node, tm, queued);
    await settle();
    expect(tm.tasks.get(queued.taskId)?.state).toBe('queued');
    tm.cancel(queued.returnIds[0]!, false);
    const err = outcome(node, queued.returnIds[0]!);
    expect(err).toBeInstanceOf(TaskCancelledError);
    expect((err as TaskCancelledError).forced).toBe(false);
    // The worker frees up: the cancelled task is not sent to it.
    const w = node.workerOf(running.taskId)!.w;
    succeed(tm, w, running);
    await settle();
    expect(node.executed(w)).toEqual([running.taskId]);
    expect([...tm.queues.values()].every((q) => q.length === 0)).toBe(true);
  });

  it('force-cancels a running task by killing its worker, and does not retry it', async () => {
    const { node, tm } = setup(1);
    const s = spec('long', { maxRetries: 3 });
    submit(node, tm, s);
    await settle();
    const w = node.workerOf(s.taskId)!.w;
    const kill = vi.spyOn(w, 'kill');
    tm.cancel(s.returnIds[0]!, true);
    expect(kill).toHaveBeenCalledWith('SIGKILL');
    // The return is sealed once the worker is gone (not before: the task still runs).
    expect(outcome(node, s.returnIds[0]!)).toBeUndefined();
    node.kill(w);
    await settle();
    const err = outcome(node, s.returnIds[0]!);
    expect(err).toBeInstanceOf(TaskCancelledError);
    expect((err as TaskCancelledError).forced).toBe(true);
    expect(node.started).toHaveLength(1);
  });

  it('asks the worker to cancel a running task without force, and ignores its later result', async () => {
    const { node, tm } = setup(1);
    const s = spec('long');
    submit(node, tm, s);
    await settle();
    const w = node.workerOf(s.taskId)!.w;
    const kill = vi.spyOn(w, 'kill');
    tm.cancel(s.returnIds[0]!, false);
    expect(kill).not.toHaveBeenCalled();
    expect(node.sent.at(-1)!.body.cancelTask).toEqual({ taskId: s.taskId, force: false });
    expect(outcome(node, s.returnIds[0]!)).toBeInstanceOf(TaskCancelledError);
    succeed(tm, w, s, 0, 'too late');
    expect(outcome(node, s.returnIds[0]!)).toBeInstanceOf(TaskCancelledError);
    expect(tm.tasks.size).toBe(0);
  });
});

describe('TaskManager: queues per job', () => {
  it("never runs a job's task on another job's leased or idle worker", async () => {
    const { node, tm } = setup(1);
    const mine = spec('f');
    const theirs = spec('f', { jobId: 'job-other' });
    const mine2 = spec('f');
    submit(node, tm, mine);
    submit(node, tm, theirs);
    submit(node, tm, mine2);
    await settle();
    // Same function and resources, but separate queues: one per job.
    expect(tm.queues.size).toBe(2);
    const w0 = node.workerOf(mine.taskId)!.w;
    succeed(tm, w0, mine);
    await settle();
    // w0's lease stays with the host job's queue (mine2 waits there)...
    expect(node.workerOf(mine2.taskId)?.w).toBe(w0);
    succeed(tm, w0, mine2);
    await settle();
    // ...and the other job gets a worker of its own, not the idle w0.
    const other = node.workerOf(theirs.taskId)!.w;
    expect(other).not.toBe(w0);
    expect(other.jobId).toBe('job-other');
    for (const w of node.started) for (const id of node.executed(w)) expect(w.jobId).toBe(id === theirs.taskId ? 'job-other' : HOST_JOB);
  });
});
