/**
 * StateService alone: state rows, resource sums and demand read from a fake node (plain records, real
 * resource views). No sockets, no processes.
 */
import { describe, expect, it } from 'vitest';
import { ClusterView, NodeResources, ResourceRequest } from '@tsray/scheduler';
import { reserve } from '@tsray/placement';
import { Deque } from '../../src/deque.js';
import type { ObjectEntry } from '../../src/node/object-table.js';
import type { ActorRecord, PgRecord, Pool, TaskRecord, WorkerHandle } from '../../src/node/records.js';
import { StateService, type StateServiceHost } from '../../src/node/state-service.js';
import { GcsClient } from '../../src/cluster/gcs-client.js';
import { ValidationError } from '../../src/errors.js';
import type { GcsCall, tsray } from '@tsray/protocol';

const SELF = 'node-a';

class FakeHost implements StateServiceHost {
  readonly nodeId = SELF;
  readonly resources = new NodeResources({ CPU: 4, GPU: 1 }, { gpuIds: ['0'] });
  readonly objectEntries: ObjectEntry[] = [];
  readonly objects = { all: () => this.objectEntries.values(), size: 0, sealedCount: 0 } as unknown as StateServiceHost['objects'];
  readonly store = { used: 10, capacity: 100, spilledBytes: 0 } as StateServiceHost['store'];
  readonly taskMap = new Map<string, TaskRecord>();
  readonly queues: Deque<TaskRecord>[] = [];
  readonly actorList: ActorRecord[] = [];
  readonly waitingActors: ActorRecord[] = [];
  readonly groups: PgRecord[] = [];
  readonly pendingGroups: PgRecord[] = [];
  readonly workerMap = new Map<string, WorkerHandle>();
  readonly view = new ClusterView();
  gcsCalls: GcsCall[] = [];
  /** Replies of a fake GCS (undefined: a single node, no GCS). */
  gcsReply: ((call: GcsCall) => tsray.v1.IGcsResponse) | undefined;
  readonly pool: Pool = { key: '', resources: this.resources, pg: undefined, bundleIndex: -1 };

  constructor() {
    this.view.addNode(SELF, this.resources);
  }
  identity() {
    return { isHead: true, address: 'ipc:///tmp/x', labels: { zone: 'a' }, startTime: 123 };
  }
  nodePool(): Pool {
    return this.pool;
  }
  tasks(): ReadonlyMap<string, TaskRecord> {
    return this.taskMap;
  }
  taskQueues(): Iterable<Deque<TaskRecord>> {
    return this.queues;
  }
  actors(): Iterable<ActorRecord> {
    return this.actorList;
  }
  pendingActors(): readonly ActorRecord[] {
    return this.waitingActors;
  }
  placementGroups(): Iterable<PgRecord> {
    return this.groups;
  }
  pendingPlacementGroups(): readonly PgRecord[] {
    return this.pendingGroups;
  }
  workers(): ReadonlyMap<string, WorkerHandle> {
    return this.workerMap;
  }
  clusterView(): ClusterView {
    return this.view;
  }
  gcs() {
    const reply = this.gcsReply;
    if (!reply) return undefined;
    return new GcsClient(async (call) => {
      this.gcsCalls.push(call);
      return reply(call);
    });
  }
}

function group(id: string, over: Partial<PgRecord>): PgRecord {
  return {
    id,
    name: '',
    strategy: 'PACK',
    bundles: [],
    raw: [{ CPU: 1 }],
    state: 'pending',
    reservation: undefined,
    pools: [],
    waiting: [],
    detached: false,
    warned: false,
    noWait: false,
    remoteParts: undefined,
    preparing: false,
    retryAt: 0,
    jobId: 'j',
    ...over,
  };
}

function queuedTask(name: string, resources: Record<string, number>): TaskRecord {
  return {
    spec: { name, taskId: `t-${name}-${Math.random()}` },
    request: ResourceRequest.of(resources),
    state: 'queued',
    pool: undefined,
    remote: undefined,
    actor: undefined,
  } as unknown as TaskRecord;
}

describe('StateService', () => {
  it('lists one row per placement group this node created (not the parts it holds for others), with its bundle nodes', () => {
    const host = new FakeHost();
    const r = reserve([{ CPU: 1 }, { CPU: 1 }], 'PACK', host.view);
    if (r.kind !== 'reserved') throw new Error('fixture: reservation failed');
    host.groups.push(group('pg1', { name: 'train', state: 'created', reservation: r.reservation, raw: [{ CPU: 1 }, { CPU: 1 }] }));
    host.groups.push(group('pg2', { strategy: 'STRICT_SPREAD', state: 'pending' }));
    host.groups.push(group('pg3', { noWait: true, state: 'created' }));
    const svc = new StateService(host);

    expect(svc.localState('placement_groups')).toEqual({
      placement_groups: [
        {
          placementGroupId: 'pg1',
          name: 'train',
          strategy: 'PACK',
          state: 'CREATED',
          bundles: [{ CPU: 1 }, { CPU: 1 }],
          bundleNodes: [SELF, SELF],
          bundleGpuIds: [[], []],
        },
        { placementGroupId: 'pg2', name: '', strategy: 'STRICT_SPREAD', state: 'PENDING', bundles: [{ CPU: 1 }], bundleNodes: [], bundleGpuIds: [] },
      ],
    });
  });

  it('sums total and free resources over the live nodes of the cluster view', async () => {
    const host = new FakeHost();
    host.view.addNode('node-b', new NodeResources({ CPU: 2, memory: 1000 }));
    host.view.addNode('node-dead', new NodeResources({ CPU: 64 }), { alive: false });
    host.resources.allocate(ResourceRequest.of({ CPU: 1.5 }));
    const svc = new StateService(host);

    expect(svc.clusterResources()).toEqual({ CPU: 6, GPU: 1, memory: 1000 });
    expect(svc.availableResources()).toEqual({ CPU: 4.5, GPU: 1, memory: 1000 });
    // The same through the state call drivers make.
    expect(await svc.stateCall('cluster_resources')).toEqual({ CPU: 6, GPU: 1, memory: 1000 });
  });

  it('reports demand: one row per queued task shape with its count, pending actors and pending groups, and what can never fit', () => {
    const host = new FakeHost();
    const q = new Deque<TaskRecord>();
    for (let i = 0; i < 3; i++) q.push(queuedTask('f', { CPU: 1 }));
    const huge = new Deque<TaskRecord>();
    huge.push(queuedTask('g', { GPU: 8 }));
    host.queues.push(q, huge, new Deque<TaskRecord>());
    host.waitingActors.push({ creation: { className: 'Counter' }, schedule: ResourceRequest.of({ TPU: 1 }), pool: undefined } as unknown as ActorRecord);
    host.pendingGroups.push(group('pg9', { name: 'stuck', warned: true, raw: [{ CPU: 100 }] }));
    const svc = new StateService(host);

    expect(svc.pendingDemand()).toEqual([
      { kind: 'task', name: 'f', resources: { CPU: 1 }, count: 3, infeasible: false, missing: [] },
      { kind: 'task', name: 'g', resources: { GPU: 8 }, count: 1, infeasible: true, missing: expect.arrayContaining(['GPU']) },
      { kind: 'actor', name: 'Counter', resources: { TPU: 1 }, count: 1, infeasible: true, missing: ['TPU'] },
      { kind: 'placement_group', name: 'stuck', resources: [{ CPU: 100 }], count: 1, infeasible: true, missing: [] },
    ]);
  });

  it('lists tasks (not those forwarded to another node: that node lists them) and objects with their node, and actors except stand-ins for other nodes', () => {
    const host = new FakeHost();
    const running = queuedTask('run', { CPU: 1 });
    running.state = 'dispatched';
    const forwarded = queuedTask('away', { CPU: 1 });
    forwarded.remote = 'node-b';
    host.taskMap.set('1', running);
    host.taskMap.set('2', forwarded);
    host.objectEntries.push({
      id: 'o1',
      refs: 1,
      pins: 0,
      data: { encoding: 'v8', rawKind: '', inline: Buffer.alloc(3), size: 3, contained: [] },
      seq: 1,
      waitStamp: 0,
      waiters: undefined,
    });
    host.objectEntries.push({ id: 'o2', refs: 1, pins: 0, data: undefined, seq: 0, waitStamp: 0, waiters: undefined });
    const actor = (id: string, proxy: boolean) =>
      ({
        id,
        proxy,
        creation: { className: 'A', name: '', maxRestarts: 2, detached: false },
        restartsLeft: 1,
        restarts: 1,
        namespace: 'ns',
        state: 'alive',
        remoteNode: undefined,
        worker: undefined,
        death: undefined,
      }) as unknown as ActorRecord;
    host.actorList.push(actor('a1', false), actor('a2', true));
    const svc = new StateService(host);

    const s = svc.localState('all');
    expect(s['tasks']).toEqual([{ taskId: running.spec.taskId, name: 'run', state: 'RUNNING', nodeId: SELF }]);
    expect(s['objects']).toEqual([{ objectId: 'o1', sizeBytes: 3, nodeId: SELF, location: 'inline' }]);
    expect(s['actors']).toEqual([
      { actorId: 'a1', className: 'A', name: '', namespace: 'ns', state: 'ALIVE', nodeId: SELF, pid: 0, numRestarts: 1, detached: false, gpuIds: [] },
    ]);
    expect(Object.keys(s).sort()).toEqual(['actors', 'demand', 'objects', 'placement_groups', 'tasks']);
  });

  it('answers a single node alone, and gathers every node through the GCS in a cluster', async () => {
    const host = new FakeHost();
    host.groups.push(group('local', {}));
    const svc = new StateService(host);
    const nodes = (await svc.stateCall('nodes')) as Record<string, unknown>[];
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({
      nodeId: SELF,
      alive: true,
      isHead: true,
      address: 'ipc:///tmp/x',
      labels: { zone: 'a' },
      startTime: 123,
      resourcesTotal: { CPU: 4, GPU: 1 },
    });
    expect(await svc.stateCall('placement_groups')).toEqual([expect.objectContaining({ placementGroupId: 'local' })]);
    expect(await svc.stateCall('jobs')).toEqual([]);

    const snapshots = [{ placement_groups: [{ placementGroupId: 'x' }] }, { placement_groups: [{ placementGroupId: 'y' }] }, {}];
    const remote: tsray.v1.INodeInfo = {
      nodeId: 'n2',
      alive: true,
      address: 'tcp://h2:1',
      hostname: 'h2',
      total: [{ name: 'CPU', units: 20_000 }],
      available: [{ name: 'CPU', units: 10_000 }],
    };
    host.gcsReply = (call) => ('stateGather' in call ? { state: { json: snapshots.map((d) => JSON.stringify(d)) } } : { nodes: { nodes: [remote] } });
    expect(await svc.stateCall('placement_groups')).toEqual([{ placementGroupId: 'x' }, { placementGroupId: 'y' }]);
    expect(await svc.stateCall('nodes')).toEqual([
      expect.objectContaining({ nodeId: 'n2', alive: true, address: 'tcp://h2:1', resourcesTotal: { CPU: 2 }, resourcesAvailable: { CPU: 1 } }),
    ]);
    expect(host.gcsCalls).toEqual([{ stateGather: { what: 'placement_groups' } }, { listNodes: {} }]);
    await expect(svc.stateCall('bogus')).rejects.toThrow('unknown state call "bogus"');
  });

  it('counts objects, store use, workers and tasks; lists the pids of workers with a process', () => {
    const host = new FakeHost();
    host.taskMap.set('t', queuedTask('t', { CPU: 1 }));
    host.workerMap.set('w1', { proc: { pid: 42 } } as unknown as WorkerHandle);
    host.workerMap.set('driver', { proc: undefined } as unknown as WorkerHandle);
    const svc = new StateService(host);
    expect(svc.stats()).toEqual({ objects: 0, sealed: 0, storeUsed: 10, storeCapacity: 100, spilledBytes: 0, workers: 2, tasks: 1 });
    expect(svc.workerPids()).toEqual([42]);
  });

  it('shows the GPU ids each bundle, actor and worker holds (numbers; a GPU UUID stays a string)', () => {
    const host = new FakeHost();
    const r = reserve([{ GPU: 1 }, { CPU: 1 }], 'PACK', host.view);
    if (r.kind !== 'reserved') throw new Error('fixture: reservation failed');
    host.groups.push(
      group('pg1', {
        state: 'created',
        reservation: r.reservation,
        raw: [{ GPU: 1 }, { CPU: 1 }],
        bundles: [ResourceRequest.of({ GPU: 1 }), ResourceRequest.of({ CPU: 1 })],
      }),
    );
    const actor = {
      id: 'a1',
      proxy: false,
      creation: { className: 'Trainer', name: 'tr', maxRestarts: 0, detached: false },
      restartsLeft: 0,
      namespace: 'ns',
      state: 'alive',
      remoteNode: undefined,
      worker: undefined,
      death: undefined,
      allocation: { gpuIds: ['3'] },
    } as unknown as ActorRecord;
    host.actorList.push(actor);
    const worker = (id: string, pid: number, over: Record<string, unknown>) =>
      ({ id, kind: 'worker', state: 'ready', proc: { pid }, lease: undefined, actor: undefined, ...over }) as unknown as WorkerHandle;
    host.workerMap.set('w1', worker('w1', 11, { actor }));
    host.workerMap.set('w2', worker('w2', 12, { lease: { gpuIds: ['GPU-5f2a'] } }));
    host.workerMap.set('w3', worker('w3', 13, {}));
    host.workerMap.set('gone', worker('gone', 14, { state: 'dead', lease: { gpuIds: ['0'] } }));
    host.workerMap.set('drv', { id: 'drv', kind: 'driver', proc: undefined } as unknown as WorkerHandle);
    const svc = new StateService(host);

    expect((svc.localState('placement_groups')['placement_groups'] as { bundleGpuIds: unknown }[])[0]!.bundleGpuIds).toEqual([[0], []]);
    expect((svc.localState('actors')['actors'] as { gpuIds: unknown }[])[0]!.gpuIds).toEqual([3]);
    expect(svc.localState('workers')['workers']).toEqual([
      { workerId: 'w1', pid: 11, nodeId: SELF, state: 'ACTOR', gpuIds: [3], actorId: 'a1' },
      { workerId: 'w2', pid: 12, nodeId: SELF, state: 'LEASED', gpuIds: ['GPU-5f2a'] },
      { workerId: 'w3', pid: 13, nodeId: SELF, state: 'IDLE', gpuIds: [] },
    ]);
  });

  it("keeps engine load reports (engine:<json>) and shows an engine actor's tensor-parallel size; a malformed report is a ValidationError", async () => {
    const host = new FakeHost();
    host.actorList.push({
      id: 'eng1',
      proxy: false,
      creation: { className: 'EngineActor', name: 'llm', maxRestarts: 0, detached: false },
      restartsLeft: 0,
      namespace: 'ns',
      state: 'alive',
      remoteNode: undefined,
      worker: undefined,
      death: undefined,
      allocation: { gpuIds: ['0'] },
    } as unknown as ActorRecord);
    const svc = new StateService(host);
    const report = {
      actorId: 'eng1',
      name: '',
      model: '/m/tiny',
      backend: 'transformers',
      rank: 0,
      pid: 7,
      tensorParallelSize: 2,
      gpuIds: [0],
      running: 1,
      waiting: 2,
      kvCacheUsage: 0.25,
      tokensPerS: 40,
      ttftP50Ms: 12,
      ttftP99Ms: null,
      requestsFinished: 3,
    };
    expect(await svc.stateCall(`engine:${JSON.stringify(report)}`)).toBeNull();
    expect(await svc.stateCall('engines')).toEqual([{ ...report, nodeId: SELF, reportedAt: expect.any(Number) }]);
    expect((svc.localState('actors')['actors'] as { tensorParallelSize?: number }[])[0]!.tensorParallelSize).toBe(2);
    await expect(svc.stateCall(`engine:${JSON.stringify({ ...report, running: 'many' })}`)).rejects.toThrow(ValidationError);
    await expect(svc.stateCall(`engine:${JSON.stringify({ ...report, running: 'many' })}`)).rejects.toThrow(/running is missing or has the wrong type/);
    await expect(svc.stateCall('engine:{not json')).rejects.toThrow(/engine report is not JSON/);
  });

  it('lists the recent task failures the node keeps (task_failures)', async () => {
    const host = new FakeHost();
    const failures = [
      {
        taskId: 't1',
        name: 'f',
        nodeId: SELF,
        jobId: 'j',
        errorName: 'TypeError',
        message: 'boom',
        stack: 'TypeError: boom\n    at f',
        pid: 9,
        attempt: 0,
        time: 1,
      },
    ];
    const svc = new StateService(Object.assign(host, { taskFailures: () => failures }));
    expect(await svc.stateCall('task_failures')).toEqual(failures);
  });
});
