/**
 * The node's placement groups (Ray's PlacementGroupResourceManager): creation, all-or-none reservation
 * of the bundles (on this node, or across nodes in two phases), and removal. It owns the groups; tasks,
 * actors, peers and objects are reached through {@link PlacementGroupHost}.
 * @internal
 */
import type { ClusterView } from '@tsray/scheduler';
import { reserve, validateBundles, validateStrategy, type Reservation } from '@tsray/placement';
import type { EnvelopeBody } from '@tsray/protocol';
import { PlacementGroupError } from '../errors.js';
import { logger, warnUser } from '../logger.js';
import { deserialize, serialize } from '../serialization.js';
import type { ObjectTable, StoredObject } from './object-table.js';
import type { NodeStore } from './store.js';
import { ENC_ERROR, errorObject } from './node-support.js';
import type { PgRecord, TaskRecord } from './records.js';
import { PlacementGroupRescheduler } from './placement-group-rescheduler.js';

/** After a spanning group's part failed, it is not planned again for this long (ms): the views were stale. */
const REPLAN_DELAY_MS = 500;

/** A connection to another node, as the placement groups use it. */
export interface PlacementGroupPeer {
  send(body: EnvelopeBody): void;
}

/** What the placement group manager needs from the rest of the node. */
export interface PlacementGroupHost {
  readonly nodeId: string;
  /** The job of this node's embedded driver (the default owner of a new group). */
  readonly jobId: string;
  readonly objects: Pick<ObjectTable, 'incRef' | 'seal'>;
  readonly store: Pick<NodeStore, 'store' | 'release' | 'bytes'>;
  /** This node alone: groups that must fit here are planned on it. */
  readonly localView: ClusterView;
  /** The cluster's view while other nodes are alive (a group may span nodes), else undefined. */
  clusterView(): ClusterView | undefined;
  /** A connection to node `nodeId`. @throws when that node is not in the cluster. */
  peerFor(nodeId: string): PlacementGroupPeer;
  /** The open connection to `nodeId`, if any (none is made). */
  existingPeer(nodeId: string): PlacementGroupPeer | undefined;
  /** Queue a task (or actor creation) that waited for its group. */
  enqueue(t: TaskRecord): void;
  /** End a task with `data` as its result (an error object here). */
  finishTask(t: TaskRecord, data: StoredObject | undefined): void;
  /**
   * Kill the group's actors and cancel its queued and running tasks (running ones with their worker);
   * each fails with `<what>: <reason>`.
   */
  failWorkOfGroup(pg: PgRecord, reason: string): void;
  /** Run the dispatch loop soon (resources were freed, or a group may now be placed). */
  scheduleDispatch(): void;
}

/** Placement groups of one node: pending ones reserved in creation order, all bundles or none. */
export class PlacementGroupManager {
  /** Every group this node created or holds a part of, by id (removed ones stay, marked removed). */
  readonly pgs = new Map<string, PgRecord>();
  /** Groups waiting for resources, in creation order. */
  readonly pendingPgs: PgRecord[] = [];
  /** Groups that lost bundles with a node: their bundles reserved again elsewhere. */
  private readonly rescheduler: PlacementGroupRescheduler;

  constructor(private readonly host: PlacementGroupHost) {
    this.rescheduler = new PlacementGroupRescheduler({
      nodeId: host.nodeId,
      localView: host.localView,
      clusterView: () => host.clusterView(),
      requestPart: (pg, node, indices) => this.requestPart(pg, node, indices),
      created: (pg) => {
        for (const t of pg.waiting.splice(0)) host.enqueue(t);
        host.scheduleDispatch();
      },
      scheduleDispatch: () => host.scheduleDispatch(),
    });
  }

  /** True while a group waits for its lost bundles to be reserved again (dispatch then calls placePending). */
  get rescheduling(): boolean {
    return this.rescheduler.active;
  }

  /** Node `nodeId` died: groups created here with bundles there are rescheduled (RESCHEDULING, then CREATED). */
  nodeDied(nodeId: string): void {
    this.rescheduler.nodeDied(this.pgs.values(), nodeId);
  }

  /**
   * Create a group; it is reserved on the next dispatch (or stays pending until it fits).
   * `noWait`: this node's part of a group planned elsewhere (reserve now or fail).
   * @throws bundle / strategy validation errors
   */
  createPlacementGroup(
    id: string,
    bundles: Record<string, number>[],
    strategy: string,
    name: string,
    detached: boolean,
    noWait = false,
    jobId = this.host.jobId,
  ): void {
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
    this.host.objects.incRef(`${id}.ready`);
    this.pendingPgs.push(pg);
    this.host.scheduleDispatch();
  }

  /** Try to reserve pending groups, in creation order (atomic: all bundles or none). */
  placePending(): void {
    const host = this.host;
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
      const cluster = pg.noWait ? undefined : host.clusterView();
      const r = reserve(pg.bundles, pg.strategy, cluster ?? host.localView);
      if (r.kind !== 'reserved' && pg.noWait) {
        // One node's part of a group planned elsewhere: it fits now or the planner must try again.
        this.pendingPgs.splice(i, 1);
        pg.state = 'removed';
        host.objects.seal(
          `${pg.id}.ready`,
          errorObject({
            type: 'Other',
            name: 'PlacementGroupError',
            message: `node ${host.nodeId} cannot reserve its bundles of placement group ${pg.name || pg.id} now: ${r.reason}`,
          }),
        );
        continue;
      }
      if (r.kind !== 'reserved') {
        if (r.kind === 'infeasible' && !pg.warned) {
          pg.warned = true;
          const msg = `tsray: placement group ${pg.name || pg.id} (${pg.strategy}, bundles ${JSON.stringify(pg.raw)}) cannot be placed on this cluster: ${r.reason}; it stays pending until nodes that can hold it join`;
          warnUser(msg, { pg: pg.id });
        }
        i++;
        continue;
      }
      this.pendingPgs.splice(i, 1);
      pg.reservation = r.reservation;
      pg.pools = pg.bundles.map((_, b) => ({ key: `pg:${pg.id}:${b}`, resources: r.reservation.bundleView(b), pg, bundleIndex: b }));
      if (r.reservation.nodeIds.some((n) => n !== host.nodeId)) {
        this.prepareRemoteParts(pg, r.reservation);
        continue;
      }
      pg.state = 'created';
      const info = {
        id: pg.id,
        strategy: pg.strategy,
        bundles: pg.bundles.map((req, b) => ({ nodeId: r.reservation.nodeIds[b]!, gpuIds: [...r.reservation.gpuIds(b)], resources: req.toJSON() })),
      };
      host.objects.seal(`${pg.id}.ready`, host.store.store(serialize(info)));
      for (const t of pg.waiting.splice(0)) host.enqueue(t);
    }
    this.rescheduler.place(this.pgs);
  }

  /**
   * Remove a group: its resources are given back (other nodes' parts too), work waiting for it fails,
   * its actors die and its tasks are cancelled.
   * @throws PlacementGroupError when the group does not exist or was already removed
   */
  removePlacementGroup(id: string): void {
    const host = this.host;
    const pg = this.pgs.get(id);
    if (!pg) throw new PlacementGroupError(`placement group ${id} does not exist`);
    if (pg.state === 'removed') throw new PlacementGroupError(`placement group ${pg.name || id} was already removed`);
    const wasCreated = pg.state === 'created' || pg.state === 'rescheduling' || pg.preparing;
    pg.state = 'removed';
    this.rescheduler.released(pg);
    pg.preparing = false;
    for (const node of pg.remoteParts?.keys() ?? []) host.existingPeer(node)?.send({ placementGroupRequest: { placementGroupId: id, remove: true } });
    const reason = `its placement group ${pg.name || id} was removed`;
    for (const t of pg.waiting.splice(0))
      host.finishTask(t, errorObject({ type: 'Other', name: 'PlacementGroupError', message: `task ${t.spec.name}: ${reason}` }));
    // Actors in the group die; tasks in it are cancelled (running ones with their worker).
    host.failWorkOfGroup(pg, reason);
    if (wasCreated) pg.reservation!.release();
    const pi = this.pendingPgs.indexOf(pg);
    if (pi !== -1) this.pendingPgs.splice(pi, 1);
    host.objects.seal(`${id}.ready`, errorObject({ type: 'Other', name: 'PlacementGroupError', message: `placement group ${pg.name || id} was removed` }));
    host.scheduleDispatch();
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
      if (node === this.host.nodeId) return;
      let part = pg.remoteParts!.get(node);
      if (!part) pg.remoteParts!.set(node, (part = { indices: [], ready: undefined }));
      pg.pools[b]!.remoteNode = node;
      pg.pools[b]!.remoteIndex = part.indices.length;
      part.indices.push(b);
    });
    for (const [node, part] of pg.remoteParts) {
      let peer: PlacementGroupPeer;
      try {
        peer = this.host.peerFor(node);
      } catch {
        this.abortRemoteParts(pg, `node ${node} left the cluster`);
        return;
      }
      this.sendPartRequest(peer, pg, part.indices);
    }
  }

  /** Ask `peer` to reserve bundles `indices` of `pg` now as its part; it answers through the part's ready object. */
  private sendPartRequest(peer: PlacementGroupPeer, pg: PgRecord, indices: number[]): void {
    const bundles = indices.map((b) => ({ resources: [...pg.bundles[b]!.amounts].map(([name, units]) => ({ name, units })) }));
    peer.send({ refUpdates: { add: [`${pg.id}.ready`] } });
    peer.send({ placementGroupRequest: { placementGroupId: pg.id, bundles, strategy: 'STRICT_PACK', name: pg.name, detached: pg.detached, noWait: true } });
    peer.send({ subscribeObjects: { objectIds: [`${pg.id}.ready`] } });
  }

  /** A rescheduled part on `node` (a node that left in the meantime counts as a refusal). */
  private requestPart(pg: PgRecord, node: string, indices: number[]): void {
    try {
      this.sendPartRequest(this.host.peerFor(node), pg, indices);
    } catch {
      this.rescheduler.partAnswered(pg, node, undefined);
    }
  }

  /** Node `node` answered for its part of `pg` (its ready object, or an error): phase two once all did. */
  onRemotePgPart(pg: PgRecord, node: string, d: StoredObject): void {
    const store = this.host.store;
    const part = pg.remoteParts?.get(node);
    if (!part || !pg.preparing) {
      store.release(d);
      return;
    }
    if (pg.state === 'rescheduling') {
      const ready = d.encoding === ENC_ERROR ? undefined : readyBundles(store, d, part.indices.length);
      store.release(d);
      this.rescheduler.partAnswered(pg, node, ready);
      return;
    }
    if (d.encoding === ENC_ERROR) {
      store.release(d);
      this.abortRemoteParts(pg, `node ${node} could not reserve its bundles`);
      return;
    }
    let info: { bundles: { gpuIds: string[] }[] } | undefined;
    try {
      info = deserialize(d.encoding, d.rawKind, store.bytes(d)) as { bundles: { gpuIds: string[] }[] };
    } catch {
      info = undefined;
    }
    store.release(d);
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
    this.host.objects.seal(`${pg.id}.ready`, store.store(serialize({ id: pg.id, strategy: pg.strategy, bundles })));
    for (const t of pg.waiting.splice(0)) this.host.enqueue(t);
  }

  /** A part of a spanning group failed: give every part back and plan the group again later. */
  private abortRemoteParts(pg: PgRecord, why: string): void {
    logger().info({ pg: pg.id, why }, 'placement group parts rolled back; it will be planned again');
    for (const node of pg.remoteParts?.keys() ?? []) this.host.existingPeer(node)?.send({ placementGroupRequest: { placementGroupId: pg.id, remove: true } });
    pg.remoteParts = undefined;
    pg.preparing = false;
    pg.reservation?.release();
    pg.reservation = undefined;
    pg.pools = [];
    pg.state = 'pending';
    // Plan again after the next resource reports (the views that led here were stale).
    pg.retryAt = Date.now() + REPLAN_DELAY_MS;
    this.pendingPgs.push(pg);
    const t = setTimeout(() => this.host.scheduleDispatch(), REPLAN_DELAY_MS + 50);
    t.unref();
  }
}

/** The bundles (their GPU ids) a part's ready object names; one empty entry per bundle when it does not read. */
function readyBundles(store: Pick<NodeStore, 'bytes'>, d: StoredObject, n: number): { gpuIds: string[] }[] {
  try {
    const info = deserialize(d.encoding, d.rawKind, store.bytes(d)) as { bundles?: { gpuIds: string[] }[] };
    return info.bundles ?? Array.from({ length: n }, () => ({ gpuIds: [] }));
  } catch {
    return Array.from({ length: n }, () => ({ gpuIds: [] }));
  }
}
