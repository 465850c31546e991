/**
 * ActorManager on its own: a fake node (no sockets, no processes) stands in for NodeRuntime. Workers
 * are plain WorkerHandles; the test plays the worker's part (constructor done, call done, process died).
 */
import { describe, expect, it } from 'vitest';
import { NodeResources, ResourceRequest } from '@tsray/scheduler';
import { tsray } from '@tsray/protocol';
import { errorFromPayload } from '../../src/error-payload.js';
import { ActorDiedError, ActorNameTakenError, ActorNotFoundError } from '../../src/errors.js';
import type { ActorCreation, SubmitSpec } from '../../src/runtime.js';
import { ActorManager, type ActorManagerHost } from '../../src/node/actor-manager.js';
import { restartTaskId } from '../../src/node/node-support.js';
import { ObjectTable, type StoredObject } from '../../src/node/object-table.js';
import { WorkerHandle, type ActorRecord, type Pool, type TaskRecord } from '../../src/node/records.js';
import { errorObject, unknownActor } from '../../src/node/node-support.js';

const OK = tsray.v1.TaskStatus.TASK_STATUS_OK;
const CPU = (n: number) => new Map([['CPU', n * 10_000]]);

/**
 * The node around the actor manager: task records, submission (the actor parts of NodeRuntime.submit),
 * workers that are only handles, and dispatch run by the test (`dispatch()`), so every step is explicit.
 */
class FakeNode implements ActorManagerHost {
  readonly nodeId = 'node-1';
  readonly namespace = 'default';
  readonly objects = new ObjectTable(
    () => undefined,
    (id) => this.actorManager.onUnreferenced(id),
  );
  readonly store = { bytes: (d: StoredObject) => d.inline!, release: () => undefined };
  readonly nodePool: Pool;
  readonly tasks = new Map<string, TaskRecord>();
  readonly link = undefined;
  readonly cluster = { aliveCount: 1 };
  readonly runtimeEnvs = { drop: () => undefined };
  readonly actorManager: ActorManager;
  /** Final result of every finished task, by task id (undefined: finished without data). */
  readonly results = new Map<string, StoredObject | undefined>();
  readonly started: WorkerHandle[] = [];
  readonly stopped: WorkerHandle[] = [];
  readonly killed: WorkerHandle[] = [];
  private workerSeq = 0;

  constructor(cpus = 4) {
    this.nodePool = { key: '', resources: new NodeResources({ CPU: cpus }), pg: undefined, bundleIndex: -1 };
    this.actorManager = new ActorManager(this);
  }

  submit(spec: SubmitSpec, owner: WorkerHandle | undefined): void {
    const t = this.record(spec, owner);
    if (t) this.enqueue(t);
  }

  /** Submit a call whose argument is not ready yet: it waits in the actor's calls (see argReady). */
  submitWaiting(spec: SubmitSpec): TaskRecord {
    return this.record(spec, undefined)!;
  }

  /** The waiting call's argument is ready. */
  argReady(t: TaskRecord): void {
    this.enqueue(t);
  }

  /** The actor parts of NodeRuntime.submit; undefined when the task already finished. */
  private record(spec: SubmitSpec, owner: WorkerHandle | undefined): TaskRecord | undefined {
    const t: TaskRecord = {
      spec,
      request: ResourceRequest.fromUnits(spec.resources),
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
      namespace: owner ? this.actorManager.namespaceOf(owner) : this.namespace,
      jobId: 'job-1',
      actor: undefined,
      pool: undefined,
      remote: undefined,
      remoteLeft: 0,
    };
    this.tasks.set(spec.taskId, t);
    const actors = this.actorManager;
    if (spec.actorCreation) {
      const rec = actors.registerActor(t, owner);
      if (!rec) return undefined;
      t.actor = rec;
    } else if (spec.actorId) {
      const rec = actors.actors.get(actors.aliases.get(spec.actorId) ?? spec.actorId);
      if (!rec || rec.state === 'dead') {
        this.finishTask(t, errorObject({ type: 'ActorDiedError', info: rec?.death ?? unknownActor(spec.actorId, spec.fn.name) }));
        return undefined;
      }
      t.actor = rec;
      t.retriesLeft = rec.creation.maxTaskRetries;
      rec.calls.push(t);
    }
    return t;
  }

  finishTask(t: TaskRecord, data: StoredObject | undefined): void {
    if (t.state === 'done') return;
    t.state = 'done';
    if (t.actor && !t.spec.actorCreation) {
      t.actor.calls.remove(t);
    }
    this.results.set(t.spec.taskId, data);
    this.tasks.delete(t.spec.taskId);
  }

  enqueue(t: TaskRecord): void {
    t.pool ??= this.nodePool;
    if (t.actor && t.spec.actorCreation) t.actor.pool ??= t.pool;
    t.state = 'queued';
    if (t.spec.actorCreation) this.actorManager.queueActorStart(t.actor!);
    else this.actorManager.pumpActor(t.actor!);
  }

  warnIfInfeasible(): void {}
  scheduleDispatch(): void {}
  scheduleFlush(): void {}

  assign(t: TaskRecord, w: WorkerHandle): void {
    t.state = 'dispatched';
    t.worker = w;
    w.pipeline.push(t);
  }

  startWorker(gpuKey: string): WorkerHandle {
    const w = new WorkerHandle(`w${this.workerSeq++}`, undefined, gpuKey);
    w.state = 'ready';
    w.kill = () => void this.killed.push(w);
    this.started.push(w);
    return w;
  }

  stopWorker(w: WorkerHandle): void {
    this.stopped.push(w);
  }

  placeRemote(): string | undefined {
    return undefined;
  }
  forwardActorCreation(): void {
    throw new Error('single node: nothing is forwarded');
  }
  forwardTask(): void {
    throw new Error('single node: nothing is forwarded');
  }
  peerFor(): never {
    throw new Error('single node: no peers');
  }
  isAliveNode(): boolean {
    return false;
  }

  // ---- the test's hands

  /** What NodeRuntime.dispatch does for actors. */
  dispatch(): void {
    this.actorManager.startActors();
  }

  /** The worker reports the constructor done. */
  constructed(rec: ActorRecord): void {
    const t = rec.worker!.pipeline.shift()!;
    expect(t.spec.actorCreation).toBeDefined();
    this.actorManager.onActorCreated(t, OK, []);
  }

  /** The worker reports the call at the head of its pipeline done (as NodeRuntime.onResult). */
  callDone(w: WorkerHandle): TaskRecord {
    const t = w.pipeline.shift()!;
    this.finishTask(t, undefined);
    if (t.actor) this.actorManager.maybeStopActor(t.actor);
    return t;
  }

  /** The worker process died (as NodeRuntime.workerExited). */
  workerDied(w: WorkerHandle): void {
    w.state = 'dead';
    this.actorManager.actorWorkerDied(w.actor!, w, 'signal SIGKILL');
  }

  /** The error a finished task's returns hold. */
  errorOf(taskId: string): Error {
    expect(this.results.has(taskId), `task ${taskId} finished`).toBe(true);
    const d = this.results.get(taskId)!;
    return errorFromPayload(d.inline!);
  }
}

let seq = 0;

function creation(over: Partial<ActorCreation> = {}): SubmitSpec {
  const c: ActorCreation = {
    actorId: `a${++seq}`,
    className: 'Counter',
    methods: ['inc'],
    name: '',
    namespace: '',
    detached: false,
    getIfExists: false,
    maxRestarts: 0,
    maxTaskRetries: 0,
    maxConcurrency: 1,
    concurrencyGroups: [],
    hold: CPU(1),
    isAsync: false,
    ...over,
  };
  return {
    taskId: `${c.actorId}.create`,
    fn: { moduleUrl: 'file:///counter.js', key: 'class Counter#1', name: 'Counter' },
    args: [],
    resources: CPU(1),
    numReturns: 0,
    streaming: false,
    maxRetries: 0,
    retryExceptions: false,
    returnIds: [],
    name: 'Counter',
    actorCreation: c,
  };
}

function call(actorId: string, name: string): SubmitSpec {
  return {
    taskId: `${actorId}.${name}`,
    fn: { moduleUrl: 'file:///counter.js', key: 'class Counter#1', name: 'Counter.inc' },
    args: [],
    resources: new Map(),
    numReturns: 1,
    streaming: false,
    maxRetries: 0,
    retryExceptions: false,
    returnIds: [`${actorId}.${name}.0`],
    name: 'Counter.inc',
    actorId,
    method: 'inc',
  };
}

/** Task ids in a worker's pipeline, the creation task shown as 'ctor'. */
function pipelineOf(w: WorkerHandle): string[] {
  return [...w.pipeline].map((t) => (t.spec.actorCreation ? 'ctor' : t.spec.taskId.split('.').pop()!));
}

/** Create an actor and bring it to alive on its first worker. */
function aliveActor(node: FakeNode, over: Partial<ActorCreation> = {}): ActorRecord {
  const id = node.actorManager.createActor(creation(over));
  node.dispatch();
  const rec = node.actorManager.actors.get(id)!;
  node.constructed(rec);
  expect(rec.state).toBe('alive');
  return rec;
}

describe('ActorManager: restarts', () => {
  it('runs calls submitted while restarting after the new constructor, in submission order', () => {
    const node = new FakeNode();
    const rec = aliveActor(node, { maxRestarts: 1, maxTaskRetries: 1 });
    const ids = () => rec.calls.toArray().map((t) => t.spec.taskId.split('.').pop());
    node.submit(call(rec.id, 'c1'), undefined);
    node.submit(call(rec.id, 'c2'), undefined);
    // c3 waits for an argument and holds back c4 (calls run in submission order).
    const c3 = node.submitWaiting(call(rec.id, 'c3'));
    node.submit(call(rec.id, 'c4'), undefined);
    const first = rec.worker!;
    expect(pipelineOf(first)).toEqual(['c1', 'c2']);
    expect(ids()).toEqual(['c3', 'c4']);

    node.workerDied(first);
    expect(rec.state).toBe('restarting');
    // The calls in flight are retried ahead of the ones that were waiting.
    expect(ids()).toEqual(['c1', 'c2', 'c3', 'c4']);
    node.submit(call(rec.id, 'c5'), undefined);
    node.argReady(c3);

    node.dispatch();
    const second = rec.worker!;
    expect(second).not.toBe(first);
    // Submitted while the new worker runs the constructor: held back until it is done.
    node.submit(call(rec.id, 'c6'), undefined);
    expect(pipelineOf(second)).toEqual(['ctor']);
    node.constructed(rec);
    expect(rec.state).toBe('alive');
    expect(pipelineOf(second)).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6']);
    // The retried calls count one more attempt; the others none.
    expect([...second.pipeline].map((t) => t.attempt)).toEqual([1, 1, 0, 0, 0, 0]);
    expect(rec.restartsLeft).toBe(0);
  });

  it('names each restart of an actor restarted forever apart, with ids no driver makes (maxRestarts -1)', () => {
    const node = new FakeNode();
    const rec = aliveActor(node, { maxRestarts: -1, maxTaskRetries: -1 });
    const ctorIds: string[] = [];
    for (let k = 0; k < 3; k++) {
      node.workerDied(rec.worker!);
      node.dispatch();
      ctorIds.push(rec.worker!.pipeline.peek()!.spec.taskId);
      node.constructed(rec);
    }
    expect(ctorIds).toEqual([1, 2, 3].map((n) => restartTaskId(rec.spec.taskId, n)));
    expect(rec.restarts).toBe(3);
    // Driver ids are letters, digits, '-' and '_' (newId: kind + base64url prefix + base36 counter;
    // Python: hex): `<creation id>r0`, the old name, was also the id of a later call of that driver.
    for (const id of ctorIds) expect(id).not.toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('is dead once maxRestarts is used up: calls in flight and waiting fail with ActorDiedError', () => {
    const node = new FakeNode();
    const rec = aliveActor(node, { maxRestarts: 1, maxTaskRetries: 0 });
    node.submit(call(rec.id, 'c1'), undefined);
    node.workerDied(rec.worker!);
    // maxTaskRetries 0: the call in flight fails at once, the actor restarts.
    expect(node.errorOf(`${rec.id}.c1`)).toBeInstanceOf(ActorDiedError);
    expect(rec.state).toBe('restarting');
    node.dispatch();
    const second = rec.worker!;
    node.submit(call(rec.id, 'c2'), undefined);
    expect(rec.calls.length).toBe(1);

    node.workerDied(second);
    expect(rec.state).toBe('dead');
    expect(rec.death?.reason).toBe('crashed');
    const err = node.errorOf(`${rec.id}.c2`) as ActorDiedError;
    expect(err).toBeInstanceOf(ActorDiedError);
    expect(err.message).toContain('Counter');
    // No third worker, the creation task of the restart failed too, and later calls fail at once.
    node.dispatch();
    expect(node.started).toHaveLength(2);
    expect([...node.tasks.values()]).toEqual([]);
    node.submit(call(rec.id, 'c3'), undefined);
    expect(node.errorOf(`${rec.id}.c3`)).toBeInstanceOf(ActorDiedError);
    // Its CPU is back.
    expect(node.nodePool.resources.canFit(ResourceRequest.fromUnits(CPU(4)))).toBe(true);
  });
});

describe('ActorManager: direct calls from other nodes (per-caller sequence numbers)', () => {
  it("runs one caller node's calls in increasing order and refuses one whose number went back", () => {
    const node = new FakeNode();
    const rec = aliveActor(node);
    const peerC = new WorkerHandle('peer:node-C', undefined, '', 'peer');
    const peerD = new WorkerHandle('peer:node-D', undefined, '', 'peer');
    const from = (name: string, callerSeq: number) => ({ ...call(rec.id, name), callerSeq });
    node.submit(from('c1', 1), peerC);
    node.submit(from('c2', 2), peerC);
    // Another caller has its own numbers.
    node.submit(from('d1', 1), peerD);
    // A duplicate of C's call 2 (and one that overtook it would look the same): refused, not run.
    node.submit(from('c2again', 2), peerC);
    node.submit(from('c3', 3), peerC);
    expect(pipelineOf(rec.worker!)).toEqual(['c1', 'c2', 'd1', 'c3']);
    const err = node.errorOf(`${rec.id}.c2again`);
    expect(err.name).toBe('ActorCallOrderError');
    expect(err.message).toContain('arrived after call 2');
    expect(node.actorManager.counters).toMatchObject({ actorCallsFromPeers: 5, actorCallsOutOfOrder: 1 });
  });
});

describe('ActorManager: names', () => {
  it('keeps names per namespace: taken in the same one, free in another; getIfExists gives the existing actor', async () => {
    const node = new FakeNode();
    const m = node.actorManager;
    const a = m.createActor(creation({ name: 'counter', namespace: 'x' }));
    const b = m.createActor(creation({ name: 'counter', namespace: 'y' }));
    expect(b).not.toBe(a);
    expect(() => m.createActor(creation({ name: 'counter', namespace: 'x' }))).toThrow(ActorNameTakenError);
    expect(m.createActor(creation({ name: 'counter', namespace: 'x', getIfExists: true }))).toBe(a);
    expect((await m.getActor('counter', 'x')).actorId).toBe(a);
    expect((await m.getActor('counter', 'y')).actorId).toBe(b);
    await expect(m.getActor('counter', 'z')).rejects.toBeInstanceOf(ActorNotFoundError);
    // The embedded driver's namespace is the default.
    const c = m.createActor(creation({ name: 'counter' }));
    expect((await m.getActor('counter', undefined)).actorId).toBe(c);
  });

  it('from a worker: getIfExists makes an alias that calls go through; a taken name is a dead actor', () => {
    const node = new FakeNode();
    const m = node.actorManager;
    const rec = aliveActor(node, { name: 'svc', namespace: 'x' });
    const caller = new WorkerHandle('driver-2', undefined, '', 'driver');
    caller.namespace = 'x';

    const alias = creation({ name: 'svc', getIfExists: true });
    node.submit(alias, caller);
    expect(m.aliases.get(alias.actorCreation!.actorId)).toBe(rec.id);
    node.submit(call(alias.actorCreation!.actorId, 'viaAlias'), caller);
    expect(pipelineOf(rec.worker!)).toEqual(['viaAlias']);

    const taken = creation({ name: 'svc' });
    node.submit(taken, caller);
    const dead = m.actors.get(taken.actorCreation!.actorId)!;
    expect(dead.state).toBe('dead');
    expect(dead.death?.reason).toBe('name_taken');
    expect(node.errorOf(taken.taskId)).toBeInstanceOf(ActorDiedError);
    expect(node.started).toHaveLength(1);
  });

  it('frees the name when the actor dies', async () => {
    const node = new FakeNode();
    const m = node.actorManager;
    const rec = aliveActor(node, { name: 'once', namespace: 'x' });
    m.killActor(rec.id, true);
    node.workerDied(rec.worker!);
    expect(rec.state).toBe('dead');
    await expect(m.getActor('once', 'x')).rejects.toBeInstanceOf(ActorNotFoundError);
    const again = m.createActor(creation({ name: 'once', namespace: 'x' }));
    expect((await m.getActor('once', 'x')).actorId).toBe(again);
  });
});

describe('ActorManager: stops and kills', () => {
  it('stops an out-of-scope actor only after its pending calls are done', () => {
    const node = new FakeNode();
    const rec = aliveActor(node);
    // A handle (the driver's ref to the actor id) is held while calls are made.
    node.objects.incRef(rec.id);
    node.submit(call(rec.id, 'c1'), undefined);
    node.submit(call(rec.id, 'c2'), undefined);
    const w = rec.worker!;
    node.objects.decRef(rec.id);
    expect(rec.terminating).toBe(true);
    expect(rec.state).toBe('alive');
    node.callDone(w);
    expect(rec.state).toBe('alive');
    expect(node.stopped).toEqual([]);
    node.callDone(w);
    expect(rec.state).toBe('dead');
    expect(rec.death?.reason).toBe('out_of_scope');
    expect(node.stopped).toEqual([w]);
    expect(node.results.get(`${rec.id}.c1`)).toBeUndefined();
    expect(node.results.get(`${rec.id}.c2`)).toBeUndefined();
  });

  it('keeps a detached actor when its handles are gone', () => {
    const node = new FakeNode();
    const rec = aliveActor(node, { detached: true });
    node.objects.incRef(rec.id);
    node.objects.decRef(rec.id);
    expect(rec.terminating).toBe(false);
    expect(rec.state).toBe('alive');
  });

  it('kills an actor that has not started: dead at once, its calls fail, it never starts', () => {
    const node = new FakeNode(1);
    aliveActor(node); // takes the node's only CPU
    const id = node.actorManager.createActor(creation());
    node.dispatch();
    const rec = node.actorManager.actors.get(id)!;
    expect(rec.state).toBe('pending');
    expect(node.actorManager.pendingActors).toContain(rec);
    node.submit(call(id, 'early'), undefined);

    node.actorManager.killActor(id, true);
    expect(rec.state).toBe('dead');
    expect(rec.death?.reason).toBe('killed');
    expect(node.actorManager.pendingActors).not.toContain(rec);
    expect(node.errorOf(`${id}.early`)).toBeInstanceOf(ActorDiedError);
    expect(() => node.actorManager.killActor(id, true)).toThrow(ActorDiedError);
    expect(node.started).toHaveLength(1);
  });

  it('kills a running actor with SIGKILL and does not restart it', () => {
    const node = new FakeNode();
    const rec = aliveActor(node, { maxRestarts: -1 });
    const w = rec.worker!;
    node.actorManager.killActor(rec.id, true);
    expect(node.killed).toEqual([w]);
    node.workerDied(w);
    expect(rec.state).toBe('dead');
    expect(rec.death?.reason).toBe('killed');
    node.dispatch();
    expect(node.started).toHaveLength(1);
  });
});
