import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NodeResources, ResourceRequest, schedule, type Allocation } from '../src/index.js';
import { cluster, rng } from './helpers.js';

const nodeArb = fc.record({
  CPU: fc.integer({ min: 0, max: 16 }),
  GPU: fc.integer({ min: 0, max: 4 }),
  memory: fc.integer({ min: 0, max: 8 }).map((x) => x * 1e9),
  custom: fc.integer({ min: 0, max: 3 }),
});
const reqArb = fc
  .record({
    CPU: fc.constantFrom(0, 0.1, 0.2, 0.3, 0.5, 1, 2),
    GPU: fc.constantFrom(0, 0, 0.1, 0.25, 0.3, 0.5, 0.7, 1, 2),
    memory: fc.constantFrom(0, 0, 5e8, 1e9),
    custom: fc.constantFrom(0, 0, 0.5, 1),
  })
  .map((r) => ResourceRequest.of(r));
const opArb = fc.oneof(
  fc.record({ kind: fc.constant('alloc' as const), req: reqArb, strategy: fc.constantFrom('DEFAULT' as const, 'SPREAD' as const) }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
);

function checkNode(n: NodeResources) {
  const s = n.snapshot();
  for (const [name, total] of n.total) {
    expect(s.available[name]).toBeGreaterThanOrEqual(0);
    expect(s.available[name]).toBeLessThanOrEqual(total);
  }
  for (const free of Object.values(s.gpuFree)) {
    expect(free).toBeGreaterThanOrEqual(0); // per-GPU fractional sum <= 1
    expect(free).toBeLessThanOrEqual(10_000);
  }
}

describe('invariants (fast-check)', () => {
  it('never over-allocates, keeps per-GPU sums <= 1, and releasing everything restores the view exactly', () => {
    fc.assert(
      fc.property(fc.array(nodeArb, { minLength: 1, maxLength: 12 }), fc.array(opArb, { maxLength: 150 }), fc.integer(), (nodes, ops, seed) => {
        const v = cluster(nodes.length, (i) => new NodeResources(nodes[i]!));
        const initial = v.nodeIds().map((id) => v.get(id)!.snapshot());
        const live: [NodeResources, Allocation][] = [];
        const r = rng(seed);
        for (const op of ops) {
          if (op.kind === 'alloc') {
            const d = schedule(op.req, v, op.strategy, { rng: r });
            if (d.kind === 'node') {
              const node = v.get(d.nodeId)!;
              const a = node.allocate(op.req);
              expect(a).not.toBeNull(); // a 'node' decision always fits
              live.push([node, a!]);
            } else if (d.kind === 'wait') {
              expect(v.get(d.nodeId)!.isFeasible(op.req)).toBe(true);
              expect(v.nodeIds().some((id) => v.get(id)!.canFit(op.req))).toBe(false);
            } else {
              expect(v.nodeIds().some((id) => v.get(id)!.isFeasible(op.req))).toBe(false);
            }
          } else if (live.length > 0) {
            const [node, a] = live.splice(op.pick % live.length, 1)[0]!;
            node.release(a);
          }
          for (const id of v.nodeIds()) checkNode(v.get(id)!);
        }
        for (const [node, a] of live.reverse()) node.release(a);
        expect(v.nodeIds().map((id) => v.get(id)!.snapshot())).toEqual(initial);
      }),
      { numRuns: 200 },
    );
  });

  it('release in any order restores the node exactly', () => {
    fc.assert(
      fc.property(nodeArb, fc.array(reqArb, { maxLength: 40 }), fc.integer(), (total, reqs, seed) => {
        const n = new NodeResources(total);
        const before = n.snapshot();
        const allocs = reqs.map((q) => n.allocate(q)).filter((a): a is Allocation => a !== null);
        checkNode(n);
        const r = rng(seed);
        for (const a of allocs.sort(() => r() - 0.5)) n.release(a);
        expect(n.snapshot()).toEqual(before);
      }),
    );
  });
});
