import { NodeResources, type Allocation, type ClusterView, type ResourceRequest } from '@tsray/scheduler';
import { validateBundles, type BundleSpec, type PlacementStrategy } from './bundles.js';
import { PlanMismatchError, ReservationStateError } from './errors.js';
import { planPlacement } from './planner.js';

/** Life cycle of a {@link Reservation} (Ray: PREPARED -> CREATED -> REMOVED). */
export type ReservationState = 'prepared' | 'committed' | 'rolled_back' | 'released';

/** Outcome of {@link Reservation.prepare}: a prepared reservation, or which bundle failed (nothing is held). */
export type PrepareResult =
  | { readonly ok: true; readonly reservation: Reservation }
  | { readonly ok: false; readonly bundleIndex: number; readonly nodeId: string; readonly reason: string };

/** Outcome of {@link reserve}. */
export type ReserveResult =
  | { readonly kind: 'reserved'; readonly reservation: Reservation }
  | { readonly kind: 'wait'; readonly reason: string }
  | { readonly kind: 'infeasible'; readonly missing: readonly string[]; readonly reason: string };

/**
 * Resources of a placement group held on node views: two-phase and atomic across nodes. `prepare` takes
 * every bundle's resources on its planned node in bundle order (so bundles sharing a node get its GPUs
 * in bundle order) or, if any bundle fails, gives back what it took and holds nothing. Then `commit` (the
 * group exists) or `rollback` (give everything back); a committed group is given back with `release`.
 */
export class Reservation {
  #state: ReservationState = 'prepared';

  private constructor(
    /** The bundles, in order. */
    readonly bundles: readonly ResourceRequest[],
    /** Node id of each bundle. */
    readonly nodeIds: readonly string[],
    /** Allocation of each bundle on its node (GPU ids included). */
    readonly allocations: readonly Allocation[],
    private readonly nodes: readonly NodeResources[],
  ) {}

  /**
   * Phase one: takes each bundle's resources on `nodeIds[i]` (in bundle order). On the first failure
   * (node unknown, dead, or no longer fitting) everything taken is given back.
   * @throws PlanMismatchError when `nodeIds` does not have one entry per bundle; bundle validation errors.
   */
  static prepare(bundles: readonly BundleSpec[], nodeIds: readonly string[], cluster: ClusterView): PrepareResult {
    const reqs = validateBundles(bundles);
    if (!Array.isArray(nodeIds) || nodeIds.length !== reqs.length) {
      throw new PlanMismatchError(
        `a plan needs one node id per bundle: ${reqs.length} bundle(s), ${Array.isArray(nodeIds) ? nodeIds.length : 'no'} node id(s)`,
      );
    }
    const allocs: Allocation[] = [];
    const nodes: NodeResources[] = [];
    const undo = () => {
      for (let k = allocs.length - 1; k >= 0; k--) nodes[k]!.release(allocs[k]!);
    };
    for (let i = 0; i < reqs.length; i++) {
      const id = nodeIds[i]!;
      const node = cluster.get(id);
      let reason: string | undefined;
      let a: Allocation | null = null;
      if (node === undefined) reason = `node ${id} is not in the cluster`;
      else if (!cluster.isAlive(id)) reason = `node ${id} is dead`;
      else if ((a = node.allocate(reqs[i]!)) === null) reason = `node ${id} cannot fit bundle ${i} ${JSON.stringify(reqs[i]!.toJSON())} now`;
      if (a === null || node === undefined) {
        undo();
        return { ok: false, bundleIndex: i, nodeId: id, reason: reason! };
      }
      allocs.push(a);
      nodes.push(node);
    }
    return { ok: true, reservation: new Reservation(reqs, [...nodeIds], allocs, nodes) };
  }

  /** Current state. */
  get state(): ReservationState {
    return this.#state;
  }

  /** GPU instance ids held by bundle `i` on its node. */
  gpuIds(i: number): readonly string[] {
    return this.allocations[i]?.gpuIds ?? [];
  }

  /** Phase two: the group now exists. @throws ReservationStateError unless prepared */
  commit(): void {
    if (this.#state !== 'prepared') throw new ReservationStateError('commit', this.#state);
    this.#state = 'committed';
  }

  /** Abandons a prepared reservation, giving every bundle back. @throws ReservationStateError unless prepared */
  rollback(): void {
    if (this.#state !== 'prepared') throw new ReservationStateError('roll back', this.#state);
    this.giveBack();
    this.#state = 'rolled_back';
  }

  /** Removes a committed group, giving every bundle back. @throws ReservationStateError unless committed */
  release(): void {
    if (this.#state !== 'committed') throw new ReservationStateError('release', this.#state);
    this.giveBack();
    this.#state = 'released';
  }

  /**
   * Bundle `i` seen as a small node: totals are what the bundle holds, GPU ids are the bundle's, so tasks
   * placed in the bundle can allocate from it (and get those GPU ids).
   */
  bundleView(i: number, opts?: { labels?: Readonly<Record<string, string>> }): NodeResources {
    const a = this.allocations[i];
    if (a === undefined) throw new RangeError(`bundle index ${i} is out of range (0..${this.allocations.length - 1})`);
    return NodeResources.fromAllocation(a, opts);
  }

  private giveBack(): void {
    for (let k = this.allocations.length - 1; k >= 0; k--) this.nodes[k]!.release(this.allocations[k]!);
  }
}

/**
 * Plan, prepare and commit in one step (a single-process cluster, or tests). Returns `wait` /
 * `infeasible` from the planner, or `wait` if preparing failed (the cluster changed in between).
 */
export function reserve(bundles: readonly BundleSpec[], strategy: PlacementStrategy, cluster: ClusterView): ReserveResult {
  const plan = planPlacement(bundles, strategy, cluster);
  if (plan.kind !== 'placed') return plan;
  const p = Reservation.prepare(bundles, plan.nodeIds, cluster);
  if (!p.ok) return { kind: 'wait', reason: p.reason };
  p.reservation.commit();
  return { kind: 'reserved', reservation: p.reservation };
}
