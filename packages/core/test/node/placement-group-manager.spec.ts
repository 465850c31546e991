/**
 * PlacementGroupManager alone: real resource views (pure logic), fakes for the rest of the node (objects,
 * store, peers, tasks). No sockets, no processes.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClusterView, NodeResources } from '@tsray/scheduler';
import type { EnvelopeBody } from '@tsray/protocol';
import { errorFromPayload } from '../../src/error-payload.js';
import { PlacementGroupError } from '../../src/errors.js';
import { deserialize, serialize, type SerializedValue } from '../../src/serialization.js';
import type { StoredObject } from '../../src/node/object-table.js';
import { errorObject } from '../../src/node/node-support.js';
import { PlacementGroupManager, type PlacementGroupHost, type PlacementGroupPeer } from '../../src/node/placement-group-manager.js';
import type { PgRecord, TaskRecord } from '../../src/node/records.js';

const SELF = 'node-a';

class FakePeer implements PlacementGroupPeer {
  readonly sent: EnvelopeBody[] = [];
  send(body: EnvelopeBody): void {
    this.sent.push(body);
  }
}

/** The node around the manager: records what the manager asked of it. */
class FakeHost implements PlacementGroupHost {
  readonly nodeId = SELF;
  readonly jobId = 'job-1';
  readonly sealed = new Map<string, StoredObject>();
  readonly refs: string[] = [];
  released = 0;
  readonly objects: PlacementGroupHost['objects'] = {
    incRef: (id: string) => void this.refs.push(id),
    seal: (id: string, d: StoredObject) => {
      this.sealed.set(id, d);
      return true;
    },
  };
  readonly store = {
    store: (sv: SerializedValue): StoredObject => ({
      encoding: sv.encoding,
      rawKind: sv.rawKind,
      inline: Buffer.from(sv.bytes),
      size: sv.bytes.byteLength,
      contained: [],
    }),
    release: () => void this.released++,
    bytes: (d: StoredObject) => d.inline!,
  } as PlacementGroupHost['store'];
  readonly localView = new ClusterView();
  /** Set to a multi-node view to let groups span nodes. */
  cluster: ClusterView | undefined;
  readonly peers = new Map<string, FakePeer>();
  readonly enqueued: TaskRecord[] = [];
  readonly finished: { task: TaskRecord; data: StoredObject | undefined }[] = [];
  readonly failedGroups: { pg: PgRecord; reason: string }[] = [];
  dispatches = 0;

  constructor(readonly self: NodeResources) {
    this.localView.addNode(SELF, self);
  }
  clusterView(): ClusterView | undefined {
    return this.cluster;
  }
  peerFor(nodeId: string): PlacementGroupPeer {
    const p = this.peers.get(nodeId);
    if (!p) throw new Error(`node ${nodeId} is not in the cluster`);
    return p;
  }
  existingPeer(nodeId: string): PlacementGroupPeer | undefined {
    return this.peers.get(nodeId);
  }
  enqueue(t: TaskRecord): void {
    this.enqueued.push(t);
  }
  finishTask(task: TaskRecord, data: StoredObject | undefined): void {
    this.finished.push({ task, data });
  }
  failWorkOfGroup(pg: PgRecord, reason: string): void {
    this.failedGroups.push({ pg, reason });
  }
  scheduleDispatch(): void {
    this.dispatches++;
  }

  /** The group's ready object as a value (throws the stored error if it is one). */
  ready(pgId: string): { id: string; bundles: { nodeId: string; gpuIds: string[] }[] } {
    const d = this.sealed.get(`${pgId}.ready`);
    if (!d) throw new Error(`${pgId}.ready is not sealed`);
    if (d.encoding === 'error') throw errorFromPayload(d.inline!);
    return deserialize(d.encoding, d.rawKind, d.inline!) as { id: string; bundles: { nodeId: string; gpuIds: string[] }[] };
  }
}

function task(name: string): TaskRecord {
  return { spec: { name } } as unknown as TaskRecord;
}

function cpus(r: NodeResources): number {
  return (r.available().get('CPU') ?? 0) / 10_000;
}

/** A ready object as another node's part seals it. */
function partReady(gpuIds: string[][]): StoredObject {
  const sv = serialize({ bundles: gpuIds.map((g) => ({ gpuIds: g })) });
  return { encoding: sv.encoding, rawKind: sv.rawKind, inline: Buffer.from(sv.bytes), size: sv.bytes.byteLength, contained: [] };
}

describe('PlacementGroupManager on one node', () => {
  it('reserves all bundles or none: a group that does not fit stays pending, holds nothing, and is created once resources are freed', () => {
    const node = new NodeResources({ CPU: 4 });
    const host = new FakeHost(node);
    const pgs = new PlacementGroupManager(host);

    pgs.createPlacementGroup('big', [{ CPU: 3 }], 'PACK', 'big', false);
    pgs.createPlacementGroup('pair', [{ CPU: 1 }, { CPU: 1 }], 'PACK', 'pair', false);
    expect(host.refs).toEqual(['big.ready', 'pair.ready']);
    expect(host.dispatches).toBe(2);
    pgs.placePending();

    expect(pgs.pgs.get('big')!.state).toBe('created');
    expect(host.ready('big').bundles).toEqual([{ nodeId: SELF, gpuIds: [], resources: { CPU: 3 } }]);
    // One CPU is left: the first bundle of "pair" would fit, but the group takes both or nothing.
    expect(pgs.pgs.get('pair')!.state).toBe('pending');
    expect(pgs.pendingPgs.map((p) => p.id)).toEqual(['pair']);
    expect(cpus(node)).toBe(1);
    expect(host.sealed.has('pair.ready')).toBe(false);

    const waiter = task('in-pair');
    pgs.pgs.get('pair')!.waiting.push(waiter);
    pgs.placePending();
    expect(pgs.pgs.get('pair')!.state).toBe('pending');
    expect(host.enqueued).toEqual([]);

    pgs.removePlacementGroup('big');
    expect(cpus(node)).toBe(4);
    pgs.placePending();
    expect(pgs.pgs.get('pair')!.state).toBe('created');
    expect(pgs.pendingPgs).toEqual([]);
    expect(cpus(node)).toBe(2);
    expect(host.ready('pair').bundles.map((b) => b.nodeId)).toEqual([SELF, SELF]);
    // Work that waited for the group is queued once it exists.
    expect(host.enqueued).toEqual([waiter]);
    // Each bundle is a pool of its own, holding what the bundle reserved.
    expect(pgs.pgs.get('pair')!.pools.map((p) => [p.key, cpus(p.resources)])).toEqual([
      ['pg:pair:0', 1],
      ['pg:pair:1', 1],
    ]);
  });

  it('hands out GPU ids per bundle in the ready object', () => {
    const host = new FakeHost(new NodeResources({ CPU: 2, GPU: 2 }, { gpuIds: ['4', '5'] }));
    const pgs = new PlacementGroupManager(host);
    pgs.createPlacementGroup('g', [{ GPU: 1 }, { GPU: 1 }], 'STRICT_PACK', '', false);
    pgs.placePending();
    expect(host.ready('g').bundles.map((b) => b.gpuIds)).toEqual([['4'], ['5']]);
  });

  it('removal gives the resources back, fails the work waiting for the group and the work in it, and seals an error', () => {
    const node = new NodeResources({ CPU: 2 });
    const host = new FakeHost(node);
    const pgs = new PlacementGroupManager(host);
    pgs.createPlacementGroup('held', [{ CPU: 2 }], 'PACK', 'held', false);
    pgs.createPlacementGroup('starved', [{ CPU: 1 }], 'PACK', 'starved', false);
    pgs.placePending();
    expect(cpus(node)).toBe(0);
    const waiter = task('waits');
    pgs.pgs.get('starved')!.waiting.push(waiter);

    pgs.removePlacementGroup('starved');
    expect(host.finished).toHaveLength(1);
    expect(host.finished[0]!.task).toBe(waiter);
    expect(errorFromPayload(host.finished[0]!.data!.inline!).message).toBe('task waits: its placement group starved was removed');
    expect(pgs.pendingPgs).toEqual([]);
    expect(() => host.ready('starved')).toThrow('placement group starved was removed');
    expect(cpus(node)).toBe(0); // a pending group held nothing, so nothing is given back

    pgs.removePlacementGroup('held');
    expect(cpus(node)).toBe(2);
    expect(host.failedGroups.map((f) => [f.pg.id, f.reason])).toEqual([
      ['starved', 'its placement group starved was removed'],
      ['held', 'its placement group held was removed'],
    ]);
    expect(pgs.pgs.get('held')!.state).toBe('removed');
    expect(() => host.ready('held')).toThrow(/was removed/);
    expect(() => pgs.removePlacementGroup('held')).toThrow(PlacementGroupError);
    expect(() => pgs.removePlacementGroup('nope')).toThrow(/does not exist/);
    // A later placement round does not bring a removed group back.
    pgs.placePending();
    expect(cpus(node)).toBe(2);
  });

  it('a part of a group planned elsewhere (noWait) that does not fit fails at once instead of waiting', () => {
    const host = new FakeHost(new NodeResources({ CPU: 1 }));
    const pgs = new PlacementGroupManager(host);
    pgs.createPlacementGroup('part', [{ CPU: 2 }], 'STRICT_PACK', 'part', false, true);
    pgs.placePending();
    expect(pgs.pgs.get('part')!.state).toBe('removed');
    expect(pgs.pendingPgs).toEqual([]);
    expect(() => host.ready('part')).toThrow(/cannot reserve its bundles/);
  });

  it('rejects bad bundles and strategies with a typed error, creating nothing', () => {
    const host = new FakeHost(new NodeResources({ CPU: 1 }));
    const pgs = new PlacementGroupManager(host);
    expect(() => pgs.createPlacementGroup('x', [], 'PACK', '', false)).toThrow();
    expect(() => pgs.createPlacementGroup('y', [{ CPU: 1 }], 'SIDEWAYS', '', false)).toThrow(/strategy/i);
    expect(pgs.pgs.size).toBe(0);
    expect(host.refs).toEqual([]);
  });
});

describe('PlacementGroupManager across nodes (STRICT_SPREAD)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Node A (this one) and peers B, C with one CPU each, in one cluster view. */
  function threeNodes() {
    const self = new NodeResources({ CPU: 1 });
    const host = new FakeHost(self);
    const cluster = new ClusterView();
    const b = new NodeResources({ CPU: 1 });
    const c = new NodeResources({ CPU: 1 });
    cluster.addNode(SELF, self);
    cluster.addNode('node-b', b);
    cluster.addNode('node-c', c);
    host.cluster = cluster;
    host.peers.set('node-b', new FakePeer());
    host.peers.set('node-c', new FakePeer());
    const pgs = new PlacementGroupManager(host);
    pgs.createPlacementGroup('spread', [{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }], 'STRICT_SPREAD', 'spread', false);
    pgs.placePending();
    return { host, pgs, pg: pgs.pgs.get('spread')!, self, b, c };
  }

  it('asks every other node for its part; the group is created only when all parts are ready', () => {
    const { host, pgs, pg, self, b, c } = threeNodes();
    expect(pg.preparing).toBe(true);
    expect(pg.state).toBe('pending');
    expect(host.sealed.has('spread.ready')).toBe(false);
    expect([cpus(self), cpus(b), cpus(c)]).toEqual([0, 0, 0]);
    for (const node of ['node-b', 'node-c']) {
      const sent = host.peers.get(node)!.sent;
      expect(sent.map((m) => Object.keys(m)[0])).toEqual(['refUpdates', 'placementGroupRequest', 'subscribeObjects']);
      expect(sent[1]).toMatchObject({
        placementGroupRequest: {
          placementGroupId: 'spread',
          strategy: 'STRICT_PACK',
          noWait: true,
          bundles: [{ resources: [{ name: 'CPU', units: 10_000 }] }],
        },
      });
    }
    const remoteBundle = pg.pools.findIndex((p) => p.remoteNode === 'node-b');
    expect(remoteBundle).toBeGreaterThanOrEqual(0);
    const waiter = task('in-spread');
    pg.waiting.push(waiter);

    pgs.onRemotePgPart(pg, 'node-b', partReady([['7']]));
    expect(pg.preparing).toBe(true);
    expect(host.sealed.has('spread.ready')).toBe(false);
    expect(host.enqueued).toEqual([]);

    pgs.onRemotePgPart(pg, 'node-c', partReady([[]]));
    expect(pg.preparing).toBe(false);
    expect(pg.state).toBe('created');
    const ready = host.ready('spread');
    expect(new Set(ready.bundles.map((x) => x.nodeId))).toEqual(new Set([SELF, 'node-b', 'node-c']));
    // GPU ids of a remote bundle are the ones its node reported.
    expect(ready.bundles[remoteBundle]!.gpuIds).toEqual(['7']);
    expect(host.enqueued).toEqual([waiter]);
    expect(host.released).toBe(2); // each part's ready object was read and let go
  });

  it('one part failing rolls every part back and plans the group again later', () => {
    vi.useFakeTimers();
    const { host, pgs, pg, self, b, c } = threeNodes();
    pgs.onRemotePgPart(pg, 'node-b', partReady([[]]));
    pgs.onRemotePgPart(pg, 'node-c', errorObject({ type: 'Other', name: 'PlacementGroupError', message: 'no room' }));

    expect(pg.state).toBe('pending');
    expect(pg.preparing).toBe(false);
    expect(pg.reservation).toBeUndefined();
    expect(host.sealed.has('spread.ready')).toBe(false);
    expect([cpus(self), cpus(b), cpus(c)]).toEqual([1, 1, 1]);
    // Both other nodes are told to give their part back (the one that failed too: it may hold a part).
    for (const node of ['node-b', 'node-c']) {
      expect(host.peers.get(node)!.sent.at(-1)).toEqual({ placementGroupRequest: { placementGroupId: 'spread', remove: true } });
    }
    expect(pgs.pendingPgs).toEqual([pg]);

    // Not planned again right away (the views were stale) ...
    const sentBefore = host.peers.get('node-b')!.sent.length;
    pgs.placePending();
    expect(pg.preparing).toBe(false);
    expect(host.peers.get('node-b')!.sent.length).toBe(sentBefore);
    // ... but a dispatch is scheduled after the delay, and then it is.
    const dispatches = host.dispatches;
    vi.advanceTimersByTime(600);
    expect(host.dispatches).toBe(dispatches + 1);
    pgs.placePending();
    expect(pg.preparing).toBe(true);
    expect(host.peers.get('node-b')!.sent.at(-2)).toMatchObject({ placementGroupRequest: { placementGroupId: 'spread', noWait: true } });
  });

  it('a node that left before its part was asked for rolls the group back', () => {
    vi.useFakeTimers();
    const self = new NodeResources({ CPU: 1 });
    const host = new FakeHost(self);
    const cluster = new ClusterView();
    const b = new NodeResources({ CPU: 1 });
    cluster.addNode(SELF, self);
    cluster.addNode('node-b', b); // in the view, but no connection can be made
    host.cluster = cluster;
    const pgs = new PlacementGroupManager(host);
    pgs.createPlacementGroup('g', [{ CPU: 1 }, { CPU: 1 }], 'STRICT_SPREAD', '', false);
    pgs.placePending();
    const pg = pgs.pgs.get('g')!;
    expect(pg.state).toBe('pending');
    expect(pg.preparing).toBe(false);
    expect([cpus(self), cpus(b)]).toEqual([1, 1]);
    expect(pgs.pendingPgs).toEqual([pg]);
  });

  it('removing a group while its parts are being prepared gives everything back and tells the other nodes', () => {
    const { host, pgs, pg, self, b, c } = threeNodes();
    pgs.removePlacementGroup('spread');
    expect([cpus(self), cpus(b), cpus(c)]).toEqual([1, 1, 1]);
    for (const node of ['node-b', 'node-c']) {
      expect(host.peers.get(node)!.sent.at(-1)).toEqual({ placementGroupRequest: { placementGroupId: 'spread', remove: true } });
    }
    // A part answering late is let go and does not create the removed group.
    pgs.onRemotePgPart(pg, 'node-b', partReady([[]]));
    expect(pg.state).toBe('removed');
    expect(() => host.ready('spread')).toThrow(/was removed/);
  });
});
