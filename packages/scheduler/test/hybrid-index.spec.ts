import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClusterView, NodeResources, ResourceRequest, schedule, type Allocation, type ScheduleOptions } from '../src/index.js';
import type { NodeClassIndex } from '../src/node-classes.js';
import { WeightedRankScratch, weightedRankValue } from '../src/policy/select.js';
import { rng } from './helpers.js';
import { referenceHybrid, type ReferenceDecision } from './reference.js';

// Few distinct shapes and amounts, so that classes hold several nodes and scores tie often.
const nodeArb = fc.oneof(
  fc.record({ CPU: fc.constantFrom(0, 1, 2, 4, 8), GPU: fc.constantFrom(0, 0, 1, 2), memory: fc.constantFrom(0, 4e9, 8e9) }),
  fc.record({ CPU: fc.constantFrom(2, 4), object_store_memory: fc.constantFrom(1e9, 2e9), custom: fc.constantFrom(0, 1, 2) }),
  fc.constant({ CPU: 4 }),
  fc.constant({ CPU: 4, GPU: 2 }),
);
const reqArb = fc
  .record({
    CPU: fc.constantFrom(0, 0.5, 1, 1, 2, 3),
    GPU: fc.constantFrom(0, 0, 0, 0.25, 0.5, 1, 2),
    memory: fc.constantFrom(0, 0, 0, 1e9, 4e9),
    object_store_memory: fc.constantFrom(0, 0, 5e8),
    custom: fc.constantFrom(0, 0, 0, 1),
  })
  .map((r) => ResourceRequest.of(r));
const optsArb = fc.record({
  spreadThreshold: fc.constantFrom(0, 0.3, 0.5, 0.5, 0.8, 1),
  topKFraction: fc.constantFrom(0, 0.2, 0.2, 0.5, 1),
  topKAbsolute: fc.constantFrom(1, 1, 2, 5),
  avoidGpuNodes: fc.boolean(),
  scoreAfterPlacement: fc.boolean(),
  local: fc.option(fc.nat(), { nil: undefined }),
});
type Op =
  | { kind: 'schedule'; req: ResourceRequest; opts: typeof optsArb extends fc.Arbitrary<infer T> ? T : never }
  | { kind: 'alloc'; node: number; req: ResourceRequest }
  | { kind: 'release'; pick: number }
  | { kind: 'alive'; node: number; alive: boolean }
  | { kind: 'remove'; node: number }
  | { kind: 'add'; total: Record<string, number> };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('schedule' as const), req: reqArb, opts: optsArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('alloc' as const), node: fc.nat(), req: reqArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('alive' as const), node: fc.nat(), alive: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), node: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('add' as const), total: nodeArb }) },
);

/** Counts the draws so that both sides can be checked to consume the rng alike. */
function counted(seed: number): { next: () => number; calls: () => number } {
  const r = rng(seed);
  let calls = 0;
  return {
    next: () => {
      calls++;
      return r();
    },
    calls: () => calls,
  };
}

const strip = (d: ReturnType<typeof schedule>): ReferenceDecision => (d.kind === 'infeasible' ? { kind: 'infeasible' } : { kind: d.kind, nodeId: d.nodeId });

function classIndexOf(v: ClusterView): NodeClassIndex {
  return (v as unknown as { classIndex(): NodeClassIndex }).classIndex();
}

describe('DEFAULT policy fast path (node class index)', () => {
  it('picks exactly what the brute-force reference picks under the same rng, through allocations, releases and membership changes', () => {
    fc.assert(
      fc.property(fc.array(nodeArb, { minLength: 1, maxLength: 24 }), fc.array(opArb, { maxLength: 120 }), fc.integer(), (nodes, ops, seed) => {
        const v = new ClusterView();
        let next = 0;
        const add = (total: Record<string, number>) => v.addNode(`n${String(next++).padStart(3, '0')}`, new NodeResources(total));
        nodes.forEach(add);
        const live: [NodeResources, Allocation][] = [];
        let step = 0;
        for (const op of ops) {
          step++;
          const ids = v.nodeIds();
          if (op.kind === 'schedule') {
            const { local, ...rest } = op.opts;
            const base = { ...rest, ...(local === undefined || ids.length === 0 ? {} : { localNodeId: ids[local % ids.length]! }) };
            const a = counted(seed + step);
            const b = counted(seed + step);
            const got = strip(schedule(op.req, v, 'DEFAULT', { ...base, rng: a.next } as ScheduleOptions));
            const want = referenceHybrid(op.req, v, { ...base, rng: b.next });
            expect(got).toEqual(want);
            expect(a.calls()).toBe(b.calls());
            if (got.kind === 'node') {
              const node = v.get(got.nodeId)!;
              const al = node.allocate(op.req);
              expect(al).not.toBeNull();
              live.push([node, al!]);
            }
          } else if (op.kind === 'alloc' && ids.length > 0) {
            const node = v.get(ids[op.node % ids.length]!)!;
            const al = node.allocate(op.req);
            if (al) live.push([node, al]);
          } else if (op.kind === 'release' && live.length > 0) {
            const [node, al] = live.splice(op.pick % live.length, 1)[0]!;
            node.release(al);
          } else if (op.kind === 'alive' && ids.length > 0) {
            v.setAlive(ids[op.node % ids.length]!, op.alive);
          } else if (op.kind === 'remove' && ids.length > 0) {
            v.removeNode(ids[op.node % ids.length]!);
          } else if (op.kind === 'add') {
            add(op.total);
          }
          expect(classIndexOf(v).check()).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('matches the reference on a large cluster of few shapes, under the threshold and above it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 20, max: 300 }), fc.array(reqArb, { minLength: 50, maxLength: 400 }), fc.integer(), (n, reqs, seed) => {
        const v = new ClusterView();
        for (let i = 0; i < n; i++) v.addNode(`n${i}`, new NodeResources(i % 5 === 0 ? { CPU: 8, GPU: 2, memory: 8e9 } : { CPU: 16, memory: 8e9, custom: 2 }));
        let step = 0;
        for (const req of reqs) {
          const a = counted(seed + ++step);
          const b = counted(seed + step);
          const got = strip(schedule(req, v, 'DEFAULT', { rng: a.next }));
          expect(got).toEqual(referenceHybrid(req, v, { rng: b.next }));
          expect(a.calls()).toBe(b.calls());
          if (got.kind === 'node') v.get(got.nodeId)!.allocate(req);
        }
        expect(classIndexOf(v).check()).toBeUndefined();
      }),
      { numRuns: 40 },
    );
  });

  it('groups nodes of one shape and state into one class and follows allocate/release', () => {
    const v = new ClusterView();
    for (let i = 0; i < 6; i++) v.addNode(`n${i}`, new NodeResources({ CPU: 4 }));
    const cx = classIndexOf(v);
    expect(cx.nActive).toBe(1);
    const a = v.get('n0')!.allocate(ResourceRequest.of({ CPU: 1 }))!;
    v.get('n1')!.allocate(ResourceRequest.of({ CPU: 1 }));
    expect(classIndexOf(v).nActive).toBe(2);
    v.get('n0')!.release(a);
    expect(classIndexOf(v).nActive).toBe(2);
    expect(classIndexOf(v).check()).toBeUndefined();
  });

  it('stops watching the nodes once the view rebuilds its index, and clones do not inherit watchers', () => {
    const node = new NodeResources({ CPU: 4 });
    const v = new ClusterView();
    v.addNode('a', node);
    classIndexOf(v);
    expect(node.watchers).toHaveLength(1);
    expect(node.clone().watchers).toBeNull();
    v.addNode('b', new NodeResources({ CPU: 2 }));
    expect(node.watchers).toBeNull();
    classIndexOf(v);
    expect(node.watchers).toHaveLength(1);
    v.removeNode('a');
    expect(node.watchers).toBeNull();
  });
});

describe('weightedRankValue', () => {
  it('returns the value of the given rank in the multiset (brute force)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            s: fc.oneof(fc.constantFrom(0, 0.5, 0.6, 0.75, 1, 1.25), fc.double({ min: 0, max: 2, noNaN: true })),
            c: fc.integer({ min: 1, max: 5 }),
          }),
          { minLength: 1, maxLength: 300 },
        ),
        fc.nat(),
        (entries, r) => {
          const flat = entries.flatMap((e) => Array<number>(e.c).fill(e.s)).sort((a, b) => a - b);
          const rank = r % flat.length;
          const scores = Float64Array.from(entries.map((e) => e.s));
          const counts = Int32Array.from(entries.map((e) => e.c));
          expect(weightedRankValue(scores, counts, entries.length, rank, new WeightedRankScratch(entries.length))).toBe(flat[rank]);
        },
      ),
    );
  });
});
