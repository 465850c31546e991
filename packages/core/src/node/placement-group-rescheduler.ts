/**
 * Rescheduling of placement-group bundles whose node died (as Ray's GCS placement group scheduler):
 * the group goes RESCHEDULING, each lost bundle is reserved again on an alive node that can hold it
 * (STRICT_SPREAD: a node none of the group's other bundles is on; STRICT_PACK: one node for all), on
 * this node at once or on another node as a new part (`PlacementGroupRequest{no_wait}`), and the group
 * is CREATED again once every new part answered. The bundles that survived keep their reservations and
 * their work. Tasks and actors aimed at the group wait meanwhile (actors that lost their node restart,
 * per `maxRestarts`, inside the new bundles). A lost bundle that fits nowhere now is tried again after
 * the next resource reports.
 * @internal
 */
import { Reservation, reserve } from '@tsray/placement';
import type { ClusterView } from '@tsray/scheduler';
import { logger } from '../logger.js';
import type { PgRecord, Pool } from './records.js';

/** A lost bundle that found no node is planned again after this long (ms). */
const RETRY_MS = 500;

/** What the rescheduler needs from its placement group manager. */
export interface RescheduleHost {
  readonly nodeId: string;
  readonly localView: ClusterView;
  clusterView(): ClusterView | undefined;
  /** Ask node `node` to reserve `indices` of `pg` as its part (answered through the part's ready object). */
  requestPart(pg: PgRecord, node: string, indices: number[]): void;
  /** The group is whole again: hand it the tasks that waited. */
  created(pg: PgRecord): void;
  scheduleDispatch(): void;
}

/** Bundles moved to a node other than the one the group's reservation names. */
const movedTo = new WeakMap<Pool, string>();

/** The node each bundle of `pg` is on now (the reservation's, or where it was rescheduled). */
export function bundleNodesOf(pg: PgRecord): string[] {
  return (pg.reservation?.nodeIds ?? []).map((n, b) => {
    const pool = pg.pools[b];
    return (pool && (movedTo.get(pool) ?? pool.remoteNode)) ?? n;
  });
}

interface Rescheduling {
  /** Lost bundles not reserved anywhere yet. */
  lost: number[];
  /** Not planned before this time (ms). */
  retryAt: number;
}

/** The groups of one node being rescheduled, and the reservations their moved bundles hold. */
export class PlacementGroupRescheduler {
  private readonly groups = new Map<string, Rescheduling>();
  /** Reservations of moved bundles, by group (released with the group). */
  private readonly moved = new Map<string, Reservation[]>();

  constructor(private readonly host: RescheduleHost) {}

  /** True while some group is being rescheduled. */
  get active(): boolean {
    return this.groups.size > 0;
  }

  /** Node `nodeId` died: every created group with a bundle there is RESCHEDULING. */
  nodeDied(pgs: Iterable<PgRecord>, nodeId: string): void {
    for (const pg of pgs) {
      if (pg.noWait || (pg.state !== 'created' && pg.state !== 'rescheduling')) continue;
      const nodes = bundleNodesOf(pg);
      const lost = nodes.flatMap((n, b) => (n === nodeId ? [b] : []));
      if (lost.length === 0) continue;
      pg.remoteParts?.delete(nodeId);
      pg.state = 'rescheduling';
      pg.preparing = true;
      const r = this.groups.get(pg.id) ?? { lost: [], retryAt: 0 };
      r.lost = [...new Set([...r.lost, ...lost])];
      this.groups.set(pg.id, r);
      logger().warn({ pg: pg.id, name: pg.name, node: nodeId, bundles: lost }, 'placement group lost bundles with their node; rescheduling them');
    }
    this.host.scheduleDispatch();
  }

  /** Reserve the lost bundles where they fit now (called from dispatch). */
  place(pgs: ReadonlyMap<string, PgRecord>): void {
    for (const [id, r] of this.groups) {
      const pg = pgs.get(id);
      if (pg?.state !== 'rescheduling') {
        this.groups.delete(id);
        continue;
      }
      if (r.lost.length === 0 || r.retryAt > Date.now()) continue;
      const targets = this.plan(pg, r.lost);
      if (!targets) {
        r.retryAt = Date.now() + RETRY_MS;
        const t = setTimeout(() => this.host.scheduleDispatch(), RETRY_MS + 50);
        t.unref();
        continue;
      }
      const byNode = new Map<string, number[]>();
      for (const [i, b] of r.lost.entries()) byNode.set(targets[i]!, [...(byNode.get(targets[i]!) ?? []), b]);
      r.lost = [];
      for (const [node, indices] of byNode) this.reserveOn(pg, node, indices);
      this.maybeDone(pg);
    }
  }

  /**
   * A new part answered: `gpuIds` per bundle, or undefined when it could not reserve (its bundles are
   * lost again and planned anew). True when the answer was for a rescheduled part.
   */
  partAnswered(pg: PgRecord, node: string, ready: { gpuIds: string[] }[] | undefined): boolean {
    if (pg.state !== 'rescheduling') return false;
    const part = pg.remoteParts?.get(node);
    if (!part) return true;
    if (!ready) {
      pg.remoteParts!.delete(node);
      const r = this.groups.get(pg.id) ?? { lost: [], retryAt: 0 };
      r.lost.push(...part.indices);
      r.retryAt = Date.now() + RETRY_MS;
      this.groups.set(pg.id, r);
      const t = setTimeout(() => this.host.scheduleDispatch(), RETRY_MS + 50);
      t.unref();
      return true;
    }
    part.ready = ready;
    this.maybeDone(pg);
    return true;
  }

  /** Release the moved bundles' reservations of a removed group. */
  released(pg: PgRecord): void {
    for (const r of this.moved.get(pg.id) ?? []) r.release();
    this.moved.delete(pg.id);
    this.groups.delete(pg.id);
  }

  /** A node for each lost bundle (in order), or undefined when one fits nowhere now. */
  private plan(pg: PgRecord, lost: number[]): string[] | undefined {
    const view = this.host.clusterView() ?? this.host.localView;
    const nodes = bundleNodesOf(pg);
    const others = new Set(nodes.filter((_, b) => !lost.includes(b)));
    // A node that holds a part of this group already cannot take another (one part per node and group).
    const taken = new Set(pg.remoteParts?.keys() ?? []);
    const alive = view.entries().filter((e) => e.alive && (e.nodeId === this.host.nodeId || !taken.has(e.nodeId)));
    const out: string[] = [];
    const chosen = new Set<string>();
    for (const b of lost) {
      const req = pg.bundles[b]!;
      const fits = alive.filter((e) => {
        if (pg.strategy === 'STRICT_SPREAD' && (others.has(e.nodeId) || chosen.has(e.nodeId))) return false;
        if (pg.strategy === 'STRICT_PACK' && out.length > 0 && e.nodeId !== out[0]) return false;
        return e.resources.canFit(req);
      });
      // PACK prefers a node the group already uses; the others take the first that fits.
      const pick = (pg.strategy === 'PACK' ? fits.find((e) => others.has(e.nodeId) || chosen.has(e.nodeId)) : undefined) ?? fits[0];
      if (!pick) return undefined;
      out.push(pick.nodeId);
      chosen.add(pick.nodeId);
    }
    return out;
  }

  /** Reserve `indices` on `node`: here at once, elsewhere as a new part that answers later. */
  private reserveOn(pg: PgRecord, node: string, indices: number[]): void {
    const view = node === this.host.nodeId ? this.host.localView : (this.host.clusterView() ?? this.host.localView);
    const bundles = indices.map((b) => pg.bundles[b]!);
    const res =
      node === this.host.nodeId
        ? (() => {
            const r = reserve(bundles, 'STRICT_PACK', view);
            return r.kind === 'reserved' ? r.reservation : undefined;
          })()
        : (() => {
            const p = Reservation.prepare(
              bundles,
              indices.map(() => node),
              view,
            );
            if (!p.ok) return undefined;
            p.reservation.commit();
            return p.reservation;
          })();
    if (!res) {
      const r = this.groups.get(pg.id)!;
      r.lost.push(...indices);
      r.retryAt = Date.now() + RETRY_MS;
      return;
    }
    this.moved.set(pg.id, [...(this.moved.get(pg.id) ?? []), res]);
    for (const [i, b] of indices.entries()) {
      const pool: Pool = { key: `pg:${pg.id}:${b}`, resources: res.bundleView(i), pg, bundleIndex: b };
      if (node !== this.host.nodeId) {
        pool.remoteNode = node;
        pool.remoteIndex = i;
      }
      movedTo.set(pool, node);
      pg.pools[b] = pool;
    }
    if (node === this.host.nodeId) return;
    pg.remoteParts ??= new Map();
    pg.remoteParts.set(node, { indices, ready: undefined });
    this.host.requestPart(pg, node, indices);
  }

  /** Every bundle reserved and every new part answered: the group is CREATED again. */
  private maybeDone(pg: PgRecord): void {
    const r = this.groups.get(pg.id);
    if (r && r.lost.length > 0) return;
    for (const p of pg.remoteParts?.values() ?? []) if (!p.ready) return;
    this.groups.delete(pg.id);
    pg.state = 'created';
    pg.preparing = false;
    logger().info({ pg: pg.id, name: pg.name, bundleNodes: bundleNodesOf(pg) }, 'placement group rescheduled');
    this.host.created(pg);
  }
}
