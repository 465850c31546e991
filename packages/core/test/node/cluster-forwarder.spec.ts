/**
 * ClusterForwarder without sockets or processes: a fake link to the GCS (node tables are fed through
 * the handler the forwarder gives it), recording peers, a real cluster view and object transfer, and a
 * fake rest of the node that records what the forwarder asks of it.
 */
import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { tsray } from '@tsray/protocol';
import { ClusterView, NodeResources, type ResourceRequest } from '@tsray/scheduler';
import { errorFromPayload } from '../../src/error-payload.js';
import type { LinkHandler } from '../../src/cluster/link.js';
import { answerGcsRequest } from '../../src/cluster/control-plane.js';
import { GcsClient } from '../../src/cluster/gcs-client.js';
import { ClusterForwarder, type ClusterForwarderHost, type ClusterLinkApi } from '../../src/node/cluster-forwarder.js';
import { ObjectTable, type StoredObject } from '../../src/node/object-table.js';
import { ObjectTransfer } from '../../src/node/object-transfer.js';
import type { ActorRecord, TaskRecord } from '../../src/node/records.js';
import { FakeStore, recordingPeer, taskRecord, type SentMessage } from './cluster-fakes.js';

const LOCAL = 'n1';

/** A node table entry: `cpus` CPUs in total, `free` of them available. */
function nodeInfo(id: string, cpus: number, free = cpus, alive = true): tsray.v1.INodeInfo {
  return {
    nodeId: id,
    address: `tcp://10.0.0.${id.slice(1)}:7000`,
    total: [{ name: 'CPU', units: cpus * 10_000 }],
    available: [{ name: 'CPU', units: free * 10_000 }],
    alive,
    ...(alive ? {} : { deathReason: 'missed heartbeats' }),
  };
}

/** A forwarder on node n1 of a fake cluster, with what it asked of the node recorded. */
async function setup(localCpus = 4) {
  const store = new FakeStore(1 << 20);
  const objects = new ObjectTable((d) => store.release(d));
  const transfer = new ObjectTransfer(
    {
      objects,
      store,
      sendFrames: () => undefined,
      send: () => undefined,
      unpinView: (id) => objects.unpin(id),
      dataPlane: { token: 't', nodeId: LOCAL, bindHost: '127.0.0.1' },
    },
    1024,
  );
  const resources = new NodeResources({ CPU: localCpus });
  const cluster = new ClusterView();
  cluster.addNode(LOCAL, resources);
  const tasks = new Map<string, TaskRecord>();
  const actors = new Map<string, ActorRecord>();
  const log = {
    finished: [] as { t: TaskRecord; data: StoredObject | undefined }[],
    enqueued: [] as { t: TaskRecord; front: boolean | undefined }[],
    gone: [] as string[],
    dispatches: 0,
    queued: false,
  };
  const host: ClusterForwarderHost = {
    nodeId: LOCAL,
    address: 'ipc:///tmp/n1',
    tcpAddress: 'tcp://10.0.0.1:7000',
    token: 'secret',
    resources,
    cluster,
    objects,
    store,
    nodePool: { key: '', resources, pg: undefined, bundleIndex: -1 },
    transfer,
    task: (id) => tasks.get(id),
    submit: () => undefined,
    hasQueuedWork: () => log.queued,
    finishTask: (t, data) => {
      t.state = 'done';
      log.finished.push({ t, data });
    },
    enqueue: (t, front) => void log.enqueued.push({ t, front }),
    scheduleDispatch: () => void log.dispatches++,
    resetFeasibility: () => undefined,
    actorRecords: () => actors.values(),
    actorDead: () => undefined,
    remoteActorDied: () => undefined,
    proxyNodeDied: () => undefined,
    pumpActor: () => undefined,
    maybeStopActor: () => undefined,
    gcsActorUpdate: () => undefined,
    placementGroup: () => undefined,
    onRemotePgPart: () => undefined,
    placementGroupsNodeDied: () => undefined,
    peerClientGone: (id) => void log.gone.push(id),
    endJob: () => undefined,
    localState: () => ({}),
    runtimeEnvAgent: () => {
      throw new Error('no runtime envs in this test');
    },
  };
  const peers = new Map<string, SentMessage[]>();
  const dropped: string[] = [];
  let handler: LinkHandler | undefined;
  const link: ClusterLinkApi = {
    ready: Promise.resolve(),
    gcs: new GcsClient(() => Promise.resolve({ ok: true })),
    peer: (id) => {
      if (!peers.has(id)) peers.set(id, []);
      return recordingPeer(peers.get(id)).peer;
    },
    existingPeer: (id) => (peers.has(id) ? recordingPeer(peers.get(id)).peer : undefined),
    dropPeer: (id) => void dropped.push(id),
    close: () => undefined,
  };
  const fwd = new ClusterForwarder(host, {
    sessionDir: '/tmp/unused',
    createLink: (_opts, h) => {
      handler = h;
      return link;
    },
  });
  await fwd.joinCluster('127.0.0.1:6379');
  const table = (...nodes: tsray.v1.INodeInfo[]) => handler!.onNodeTable({ nodes: [nodeInfo(LOCAL, localCpus), ...nodes] });
  return { fwd, host, cluster, objects, store, tasks, log, peers, dropped, table, handler: handler! };
}

type Setup = Awaited<ReturnType<typeof setup>>;

function req(t: TaskRecord): ResourceRequest {
  return t.request;
}

describe('ClusterForwarder.forwardTask', () => {
  it('sends a peer the holds, then the argument objects (nested ones first), then the task, then the subscription to its returns', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4));
    const inner = randomBytes(100);
    const arg = randomBytes(100);
    s.objects.incRef('inner');
    s.objects.seal('inner', { encoding: 'raw', rawKind: 'Buffer', inline: inner, size: inner.length, contained: [] });
    s.objects.incRef('arg');
    s.objects.seal('arg', { encoding: 'raw', rawKind: 'Buffer', inline: arg, size: arg.length, contained: ['inner'] });
    const t = taskRecord('t1', { args: [{ kind: 'ref', id: 'arg' }] });
    s.fwd.forwardTask(t, 'n2');

    const sent = s.peers.get('n2')!;
    expect(sent.map((m) => m.kind)).toEqual(['refUpdates', 'putObjects', 'submitTasks', 'refUpdates', 'subscribeObjects']);
    expect(sent[0]!.body.refUpdates!.add).toEqual(['inner', 'arg', 't1.0']);
    expect(sent[1]!.body.putObjects!.objects!.map((o) => o.objectId)).toEqual(['inner', 'arg']);
    expect(sent[2]!.body.submitTasks!.tasks!.map((x) => x.taskId)).toEqual(['t1']);
    expect(sent[3]!.body.refUpdates!.remove).toEqual(['inner', 'arg']);
    expect(sent[4]!.body.subscribeObjects!.objectIds).toEqual(['t1.0']);
    expect(t).toMatchObject({ state: 'dispatched', remote: 'n2', remoteLeft: 1 });
    expect(s.fwd.forwardedTo('n2')).toEqual([t]);
  });

  it('fails the task with NodeDiedError when the target is not in the cluster', async () => {
    const s = await setup();
    const t = taskRecord('t1');
    s.fwd.forwardTask(t, 'n9');
    expect(s.log.finished).toHaveLength(1);
    const e = errorFromPayload(s.log.finished[0]!.data!.inline!);
    expect(e.name).toBe('NodeDiedError');
    expect(e.message).toMatch(/node n9 is not in the cluster/);
  });

  it('finishes the task when its return comes back from the peer, and tells the peer to drop its copy', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4));
    const t = taskRecord('t1');
    s.tasks.set('t1', t);
    s.objects.incRef('t1.0');
    s.fwd.forwardTask(t, 'n2');
    s.handler.onPeerMessage(
      'n2',
      'objectsReady',
      tsray.v1.Envelope.create({ objectsReady: { objects: [{ objectId: 't1.0', size: 0, inline: { frame: 0, offset: 0, length: 0 } }] } }),
      [Buffer.alloc(0)],
    );
    expect(s.log.finished.map((f) => [f.t.spec.taskId, f.data])).toEqual([['t1', undefined]]);
    expect(s.objects.get('t1.0')?.data).toBeDefined();
    expect(s.peers.get('n2')!.at(-1)!.body.refUpdates!.remove).toEqual(['t1.0']);
    expect(s.fwd.forwardedTo('n2')).toEqual([]);
  });
});

describe('ClusterForwarder.nodeDied', () => {
  let s: Setup;
  beforeEach(async () => {
    s = await setup();
    s.table(nodeInfo('n2', 4), nodeInfo('n3', 4));
  });

  it('retries a forwarded task that has retries left (queued at the front, one retry used)', () => {
    const t = taskRecord('t1', {}, 2);
    s.fwd.forwardTask(t, 'n2');
    s.table(nodeInfo('n2', 4, 4, false), nodeInfo('n3', 4));
    expect(s.log.enqueued.map((e) => [e.t.spec.taskId, e.front])).toEqual([['t1', true]]);
    expect(t).toMatchObject({ state: 'deps', remote: undefined, retriesLeft: 1, attempt: 1 });
    expect(s.log.finished).toEqual([]);
    expect(s.fwd.forwardedTo('n2')).toEqual([]);
  });

  it('keeps retrying a task with unlimited retries (-1)', () => {
    const t = taskRecord('t1', {}, -1);
    s.fwd.forwardTask(t, 'n2');
    s.fwd.peerUnreachable('n2', 'no answer from tcp://10.0.0.2:7000');
    expect(s.log.enqueued).toHaveLength(1);
    expect(t.retriesLeft).toBe(-1);
  });

  it('fails a forwarded task with no retries left with NodeDiedError naming the node and the reason', () => {
    const t = taskRecord('t1', {}, 0);
    s.fwd.forwardTask(t, 'n2');
    s.table(nodeInfo('n2', 4, 4, false), nodeInfo('n3', 4));
    expect(s.log.enqueued).toEqual([]);
    expect(s.log.finished).toHaveLength(1);
    const e = errorFromPayload(s.log.finished[0]!.data!.inline!);
    expect(e.name).toBe('NodeDiedError');
    expect(e.message).toBe('task task-t1 was running on node n2, which died (missed heartbeats); no retries left (maxRetries)');
  });

  it('fails a cancelled forwarded task as cancelled, not retried', () => {
    const t = taskRecord('t1', {}, 3);
    s.fwd.forwardTask(t, 'n2');
    t.cancelled = { forced: false };
    s.fwd.nodeDied('n2', 'gone');
    expect(s.log.enqueued).toEqual([]);
    expect(errorFromPayload(s.log.finished[0]!.data!.inline!).name).toBe('TaskCancelledError');
  });

  it('leaves the tasks on other nodes alone, drops the dead peer and its connection to this node', () => {
    const t2 = taskRecord('t2', {}, 0);
    const t3 = taskRecord('t3', {}, 0);
    s.fwd.forwardTask(t2, 'n2');
    s.fwd.forwardTask(t3, 'n3');
    s.fwd.nodeDied('n2', 'gone');
    expect(s.log.finished.map((f) => f.t)).toEqual([t2]);
    expect(s.fwd.forwardedTo('n3')).toEqual([t3]);
    expect(t3.remote).toBe('n3');
    expect(s.dropped).toEqual(['n2']);
    expect(s.log.gone).toEqual(['n2']);
  });

  it('marks an unreachable peer dead in the cluster view and never again alive, whatever the head says', () => {
    s.fwd.peerUnreachable('n2', 'no answer');
    expect(s.cluster.isAlive('n2')).toBe(false);
    s.table(nodeInfo('n2', 4), nodeInfo('n3', 4));
    expect(s.cluster.isAlive('n2')).toBe(false);
    expect(s.cluster.isAlive('n3')).toBe(true);
  });
});

describe('ClusterForwarder.placeRemote', () => {
  it('SPREAD takes the nodes in turn, this node included (undefined = here)', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4), nodeInfo('n3', 4));
    const picks = [1, 2, 3, 4, 5, 6].map((i) => {
      const t = taskRecord(`t${i}`, { scheduling: { type: 'SPREAD' } });
      return s.fwd.placeRemote(t, req(t));
    });
    expect(picks).toEqual([undefined, 'n2', 'n3', undefined, 'n2', 'n3']);
  });

  it('SPREAD skips this node while its queues hold work', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4), nodeInfo('n3', 4));
    s.log.queued = true;
    const picks = [1, 2, 3].map((i) => {
      const t = taskRecord(`t${i}`, { scheduling: { type: 'SPREAD' } });
      return s.fwd.placeRemote(t, req(t));
    });
    expect(picks).toEqual(['n2', 'n3', 'n2']);
  });

  it('counts what it placed on a node until that node reports again (a burst does not all go to one node)', async () => {
    const s = await setup(0.5);
    s.table(nodeInfo('n2', 1));
    const a = taskRecord('a');
    const b = taskRecord('b');
    expect(s.fwd.placeRemote(a, req(a))).toBe('n2');
    // n2 is now full in this node's view; the task is feasible nowhere else, so it queues on n2 (wait).
    expect(s.fwd.placeRemote(b, req(b))).toBe('n2');
    expect(s.cluster.get('n2')!.available().get('CPU')).toBe(0);
  });

  it('NODE_AFFINITY (hard) goes to the named node even when it is busy; to this node means here', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4), nodeInfo('n3', 4, 0));
    const aff = (nodeId: string, soft = false) => taskRecord('t', { scheduling: { type: 'NODE_AFFINITY', nodeId, soft } });
    const busy = aff('n3');
    expect(s.fwd.placeRemote(busy, req(busy))).toBe('n3');
    const here = aff(LOCAL);
    expect(s.fwd.placeRemote(here, req(here))).toBeUndefined();
    const softDead = aff('n9', true);
    expect(s.fwd.placeRemote(softDead, req(softDead))).toBeUndefined();
  });

  it('DEFAULT keeps work here while this node has room; work another node forwarded here stays here', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4));
    const t = taskRecord('t');
    expect(s.fwd.placeRemote(t, req(t))).toBeUndefined();
    const fromPeer = taskRecord('p', { scheduling: { type: 'NODE_AFFINITY', nodeId: 'n2', soft: false } });
    fromPeer.owner = { kind: 'peer' } as TaskRecord['owner'];
    expect(s.fwd.placeRemote(fromPeer, req(fromPeer))).toBeUndefined();
  });

  it('never places on a node the head reports dead', async () => {
    const s = await setup();
    s.table(nodeInfo('n2', 4, 4, false), nodeInfo('n3', 4));
    const picks = [1, 2, 3, 4].map((i) => {
      const t = taskRecord(`t${i}`, { scheduling: { type: 'SPREAD' } });
      return s.fwd.placeRemote(t, req(t));
    });
    expect(picks).not.toContain('n2');
    expect(picks).toContain('n3');
  });
});

describe('ClusterForwarder: control calls from the GCS', () => {
  it("answers a state snapshot with this node's rows as one JSON document", async () => {
    const s = await setup();
    s.host.localState = (what) => ({ [what]: [{ row: 1 }] });
    const r = await s.handler.onGcsRequest({ requestId: 1, stateSnapshot: { what: 'actors' } });
    expect('state' in r && r.state.json?.map((d) => JSON.parse(d))).toEqual([{ actors: [{ row: 1 }] }]);
  });

  it('refuses a call it does not serve, and a request without a call, as UNKNOWN_MESSAGE naming the node', async () => {
    const s = await setup();
    const notHere = await answerGcsRequest({ requestId: 7, kvGet: { key: 'k' } }, (q) => s.handler.onGcsRequest(q));
    expect(notHere).toEqual({
      requestId: 7,
      error: { code: tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE, message: 'node n1 does not serve the control call kvGet' },
    });
    const none = await answerGcsRequest({ requestId: 8 }, (q) => s.handler.onGcsRequest(q));
    expect(none.error?.code).toBe(tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE);
  });
});
