import fc from 'fast-check';
import { ClusterView, NodeResources, ResourceRequest, ResourceValidationError } from '@tsray/scheduler';
import { describe, expect, it } from 'vitest';
import {
  EmptyBundleListError,
  InvalidBundleError,
  PlanMismatchError,
  Reservation,
  ReservationStateError,
  UnknownPlacementStrategyError,
  planPlacement,
  reserve,
  type PlacementStrategy,
} from '../src/index.js';

function view(nodes: Record<string, Record<string, number>>): ClusterView {
  const v = new ClusterView();
  for (const [id, total] of Object.entries(nodes)) v.addNode(id, new NodeResources(total));
  return v;
}
const snap = (v: ClusterView) => v.nodeIds().map((id) => v.get(id)!.snapshot());

describe('planPlacement', () => {
  it('STRICT_PACK puts every bundle on one node, GPUs in bundle order', () => {
    const v = view({ a: { CPU: 4, GPU: 2 }, b: { CPU: 8, GPU: 4 } });
    const bundles = [
      { CPU: 1, GPU: 1 },
      { CPU: 1, GPU: 1 },
      { CPU: 1, GPU: 1 },
    ];
    const plan = planPlacement(bundles, 'STRICT_PACK', v);
    expect(plan).toEqual({ kind: 'placed', nodeIds: ['b', 'b', 'b'] });
    const r = reserve(bundles, 'STRICT_PACK', v);
    expect(r.kind).toBe('reserved');
    if (r.kind !== 'reserved') return;
    expect([0, 1, 2].map((i) => r.reservation.gpuIds(i))).toEqual([['0'], ['1'], ['2']]);
    expect(planPlacement([{ CPU: 3, GPU: 2 }, { CPU: 3 }], 'STRICT_PACK', v)).toMatchObject({ kind: 'wait' });
    expect(planPlacement([{ CPU: 5 }, { CPU: 5 }], 'STRICT_PACK', v)).toMatchObject({ kind: 'infeasible', missing: [] });
  });

  it('STRICT_PACK checks GPU instances, not only sums', () => {
    const v = view({ a: { GPU: 2 } });
    v.get('a')!.allocate(planBundle({ GPU: 0.5 }));
    // 1.5 GPUs free in total, but two whole GPUs are not.
    expect(planPlacement([{ GPU: 1 }, { GPU: 0.5 }], 'STRICT_PACK', v).kind).toBe('placed');
    expect(planPlacement([{ GPU: 1 }, { GPU: 1 }], 'STRICT_PACK', v).kind).toBe('wait');
  });

  it('a group of one bundle goes to the least-utilized node that fits it, lowest id on ties, GPU instances checked', () => {
    const v = view({ a: { CPU: 4 }, b: { CPU: 8 }, c: { CPU: 8 } });
    for (const s of ['STRICT_PACK', 'PACK'] as const) expect(planPlacement([{ CPU: 2 }], s, v)).toEqual({ kind: 'placed', nodeIds: ['b'] });
    v.get('b')!.allocate(planBundle({ CPU: 1 }));
    expect(planPlacement([{ CPU: 2 }], 'STRICT_PACK', v)).toEqual({ kind: 'placed', nodeIds: ['c'] });
    // g has a whole GPU's worth free in halves only (one per instance); h is busier but has a whole GPU.
    const w = view({ g: { CPU: 8, GPU: 2 }, h: { CPU: 1, GPU: 1 } });
    const g = w.get('g')!;
    g.allocate(planBundle({ GPU: 0.5 }));
    const second = g.allocate(planBundle({ GPU: 0.5 }))!;
    g.allocate(planBundle({ GPU: 0.5 }));
    g.release(second);
    expect(g.availableOf('GPU')).toBe(10_000);
    w.get('h')!.allocate(planBundle({ CPU: 0.5 }));
    expect(planPlacement([{ GPU: 1 }], 'STRICT_PACK', w)).toEqual({ kind: 'placed', nodeIds: ['h'] });
    expect(planPlacement([{ GPU: 0.5 }], 'STRICT_PACK', w)).toEqual({ kind: 'placed', nodeIds: ['g'] });
    expect(planPlacement([{ CPU: 9 }], 'STRICT_PACK', w)).toMatchObject({ kind: 'infeasible', missing: ['CPU'] });
  });

  it('PACK packs onto one node when it can, else fills nodes in order', () => {
    const v = view({ a: { CPU: 2 }, b: { CPU: 2 }, c: { CPU: 4 } });
    expect(planPlacement([{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }], 'PACK', v)).toEqual({ kind: 'placed', nodeIds: ['c', 'c', 'c'] });
    // 7 CPUs cannot go on one node: the first bundles fill the least-utilized node (c), each later one
    // goes to a node the group already uses when it fits, else to a new node (a, then b).
    expect(planPlacement([{ CPU: 2 }, { CPU: 2 }, { CPU: 2 }, { CPU: 1 }], 'PACK', v)).toEqual({ kind: 'placed', nodeIds: ['c', 'c', 'a', 'b'] });
  });

  it('SPREAD uses distinct nodes when it can and reuses when it must', () => {
    const v = view({ a: { CPU: 4 }, b: { CPU: 4 } });
    const p = planPlacement([{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }], 'SPREAD', v) as { nodeIds: readonly string[] };
    expect(new Set(p.nodeIds.slice(0, 2)).size).toBe(2);
    expect(p.nodeIds).toHaveLength(3);
  });

  it('STRICT_SPREAD uses distinct nodes, finds a matching where greedy fails, and says when it cannot', () => {
    // Greedy would put bundle 0 (CPU 1) on the least-utilized node 'big', leaving bundle 1 (GPU) nowhere.
    const v = view({ big: { CPU: 64, GPU: 1 }, small: { CPU: 2 } });
    expect(planPlacement([{ CPU: 1 }, { GPU: 1 }], 'STRICT_SPREAD', v)).toEqual({ kind: 'placed', nodeIds: ['small', 'big'] });
    expect(planPlacement([{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }], 'STRICT_SPREAD', v)).toMatchObject({ kind: 'infeasible', missing: [] });
    v.get('small')!.allocate(planBundle({ CPU: 2 }));
    expect(planPlacement([{ CPU: 1 }, { CPU: 1 }], 'STRICT_SPREAD', v).kind).toBe('wait');
  });

  it('names missing resources and ignores dead nodes', () => {
    const v = view({ a: { CPU: 4 }, b: { CPU: 4, GPU: 8 } });
    expect(planPlacement([{ CPU: 1, custom_x: 1 }], 'PACK', v)).toMatchObject({ kind: 'infeasible', missing: ['custom_x'] });
    v.setAlive('b', false);
    expect(planPlacement([{ GPU: 1 }], 'SPREAD', v)).toMatchObject({ kind: 'infeasible', missing: ['GPU'] });
    expect(planPlacement([{ CPU: 1 }], 'SPREAD', new ClusterView())).toMatchObject({ kind: 'infeasible', reason: /no alive node/ });
  });

  it('is deterministic', () => {
    const make = () => {
      const v = new ClusterView();
      for (let i = 0; i < 50; i++) v.addNode(`n${i}`, new NodeResources({ CPU: 8, GPU: i % 3 }));
      return v;
    };
    const bundles = Array.from({ length: 20 }, (_, i) => ({ CPU: 1 + (i % 3), GPU: i % 4 === 0 ? 1 : 0 }));
    for (const s of ['PACK', 'SPREAD', 'STRICT_SPREAD', 'STRICT_PACK'] as PlacementStrategy[]) {
      expect(planPlacement(bundles, s, make())).toEqual(planPlacement(bundles, s, make()));
    }
  });

  it('plans on 1,000 nodes', () => {
    const v = new ClusterView();
    for (let i = 0; i < 1000; i++) v.addNode(`n${String(i).padStart(4, '0')}`, new NodeResources({ CPU: 16, GPU: 8 }));
    const bundles = Array.from({ length: 200 }, () => ({ CPU: 2, GPU: 1 }));
    const ss = planPlacement(bundles, 'STRICT_SPREAD', v) as { nodeIds: readonly string[] };
    expect(new Set(ss.nodeIds).size).toBe(200);
    const pk = reserve(bundles, 'PACK', v);
    expect(pk.kind).toBe('reserved');
    if (pk.kind === 'reserved') {
      expect(new Set(pk.reservation.nodeIds).size).toBe(25); // 8 GPUs per node
      expect(pk.reservation.gpuIds(8)).toEqual(['0']); // first bundle of the second node
    }
  });

  it('rejects bad input with typed errors', () => {
    const v = view({ a: { CPU: 4 } });
    expect(() => planPlacement([], 'PACK', v)).toThrow(EmptyBundleListError);
    expect(() => planPlacement('x' as never, 'PACK', v)).toThrow(EmptyBundleListError);
    expect(() => planPlacement([{ CPU: 0 }], 'PACK', v)).toThrow(InvalidBundleError);
    expect(() => planPlacement([{}], 'PACK', v)).toThrow(/bundles\[0\] asks for no resource/);
    expect(() => planPlacement([{ CPU: -1 }], 'PACK', v)).toThrow(ResourceValidationError);
    expect(() => planPlacement([{ CPU: 1 }], 'PACKED' as never, v)).toThrow(UnknownPlacementStrategyError);
  });
});

describe('Reservation', () => {
  it('prepares atomically: a failing bundle rolls back the ones before it', () => {
    const v = view({ a: { CPU: 2 }, b: { CPU: 1 } });
    const before = snap(v);
    const p = Reservation.prepare([{ CPU: 2 }, { CPU: 2 }], ['a', 'b'], v);
    expect(p).toMatchObject({ ok: false, bundleIndex: 1, nodeId: 'b' });
    expect(snap(v)).toEqual(before);
    expect(Reservation.prepare([{ CPU: 1 }], ['zz'], v)).toMatchObject({ ok: false, reason: /not in the cluster/ });
    v.setAlive('b', false);
    expect(Reservation.prepare([{ CPU: 1 }, { CPU: 1 }], ['a', 'b'], v)).toMatchObject({ ok: false, reason: /dead/ });
    expect(snap(v)).toEqual(before);
    expect(() => Reservation.prepare([{ CPU: 1 }], ['a', 'b'], v)).toThrow(PlanMismatchError);
  });

  it('commits, releases, rolls back, and guards its states', () => {
    const v = view({ a: { CPU: 2, GPU: 2 } });
    const before = snap(v);
    const p = Reservation.prepare([{ CPU: 1, GPU: 1 }, { GPU: 0.5 }], ['a', 'a'], v);
    if (!p.ok) throw new Error(p.reason);
    const r = p.reservation;
    expect(r.state).toBe('prepared');
    r.commit();
    expect(() => r.commit()).toThrow(ReservationStateError);
    expect(() => r.rollback()).toThrow(ReservationStateError);
    const bv = r.bundleView(1);
    expect(bv.toJSON().gpus).toEqual({ '1': 0.5 });
    r.release();
    expect(r.state).toBe('released');
    expect(() => r.release()).toThrow(ReservationStateError);
    expect(snap(v)).toEqual(before);
    const q = Reservation.prepare([{ CPU: 2 }], ['a'], v);
    if (!q.ok) throw new Error(q.reason);
    q.reservation.rollback();
    expect(q.reservation.state).toBe('rolled_back');
    expect(snap(v)).toEqual(before);
  });
});

describe('invariants (fast-check)', () => {
  const nodeArb = fc.record({ CPU: fc.integer({ min: 0, max: 8 }), GPU: fc.integer({ min: 0, max: 4 }), x: fc.integer({ min: 0, max: 2 }) });
  const bundleArb = fc
    .record({ CPU: fc.constantFrom(0, 0.5, 1, 2), GPU: fc.constantFrom(0, 0.25, 0.5, 1, 2), x: fc.constantFrom(0, 0, 1) })
    .filter((b) => b.CPU + b.GPU + b.x > 0);
  const stratArb = fc.constantFrom<PlacementStrategy>('PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD');

  it('plans apply cleanly, respect the strategy, never over-allocate, and releasing restores the view', () => {
    fc.assert(
      fc.property(
        fc.array(nodeArb, { minLength: 0, maxLength: 10 }),
        fc.array(fc.tuple(fc.array(bundleArb, { minLength: 1, maxLength: 6 }), stratArb), { minLength: 1, maxLength: 8 }),
        (nodes, groups) => {
          const v = new ClusterView();
          nodes.forEach((t, i) => {
            v.addNode(`n${i}`, new NodeResources(t));
          });
          const before = snap(v);
          const held: Reservation[] = [];
          for (const [bundles, strategy] of groups) {
            const plan = planPlacement(bundles, strategy, v);
            if (plan.kind !== 'placed') continue;
            if (strategy === 'STRICT_PACK') expect(new Set(plan.nodeIds).size).toBe(1);
            if (strategy === 'STRICT_SPREAD') expect(new Set(plan.nodeIds).size).toBe(bundles.length);
            const p = Reservation.prepare(bundles, plan.nodeIds, v);
            expect(p.ok).toBe(true); // a plan made on this state always applies
            if (!p.ok) continue;
            p.reservation.commit();
            held.push(p.reservation);
            // GPUs within a node follow bundle order
            const byNode = new Map<string, number[]>();
            plan.nodeIds.forEach((id, i) => {
              const whole = p.reservation.allocations[i]!.gpuUnits.every((u) => u === 10_000);
              if (whole) for (const g of p.reservation.gpuIds(i)) byNode.set(id, [...(byNode.get(id) ?? []), Number(g)]);
            });
            for (const ids of byNode.values()) expect(ids).toEqual([...ids].sort((a, b) => a - b));
            for (const id of v.nodeIds()) {
              const s = v.get(id)!.snapshot();
              for (const x of Object.values(s.available)) expect(x).toBeGreaterThanOrEqual(0);
              for (const x of Object.values(s.gpuFree)) expect(x).toBeGreaterThanOrEqual(0);
            }
          }
          for (const r of held.reverse()) r.release();
          expect(snap(v)).toEqual(before);
        },
      ),
      { numRuns: 300 },
    );
  });
});

function planBundle(b: Record<string, number>) {
  return ResourceRequest.of(b);
}
