import { describe, expect, it } from 'vitest';
import {
  ClusterView,
  NodeResources,
  ResourceRequest,
  ResourceValidationError,
  SchedulingOptionError,
  UnknownStrategyError,
  labelDoesNotExist,
  labelExists,
  labelIn,
  labelNotIn,
  resourceRequestFromOptions,
  schedule,
  type ScheduleDecision,
} from '../src/index.js';
import { RankScratch, selectRank } from '../src/policy/select.js';
import { cluster, rng } from './helpers.js';

const cpu = (x: number) => ResourceRequest.of({ CPU: x });
const nodeOf = (d: ScheduleDecision) => (d.kind === 'infeasible' ? undefined : d.nodeId);

/** Takes `frac` of a node's CPUs. */
function load(v: ClusterView, id: string, cpus: number) {
  if (cpus > 0) v.get(id)!.allocate(cpu(cpus));
}

describe('DEFAULT (hybrid) policy', () => {
  it('prefers the local node while it stays under the spread threshold', () => {
    const v = cluster(10, () => new NodeResources({ CPU: 4 }));
    const opts = { localNodeId: 'n0003', rng: rng(1) };
    const picks: string[] = [];
    for (let i = 0; i < 4; i++) {
      const d = schedule(cpu(1), v, 'DEFAULT', opts);
      picks.push(nodeOf(d)!);
      v.get(nodeOf(d)!)!.allocate(cpu(1));
    }
    // after placement: 0.25, 0.5 -> only the first one is under 0.5; then the local node scores 0.75 > 0.
    expect(picks[0]).toBe('n0003');
    expect(picks.slice(1)).not.toContain('n0003');
  });

  it('picks uniformly among the top k of the least utilized nodes', () => {
    // 10 nodes, k = max(1, floor(10 * 0.2)) = 2; all above the threshold so scores differ.
    const v = cluster(10, () => new NodeResources({ CPU: 100 }));
    for (let i = 0; i < 10; i++) load(v, `n000${i}`, 60 + i * 3); // n0000 least loaded, then n0001
    const counts = new Map<string, number>();
    const r = rng(7);
    for (let i = 0; i < 4000; i++) {
      const id = nodeOf(schedule(cpu(1), v, 'DEFAULT', { rng: r }))!;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['n0000', 'n0001']);
    expect(Math.abs(counts.get('n0000')! - 2000)).toBeLessThan(200);
  });

  it('honours topKFraction and spreadThreshold', () => {
    const v = cluster(10, () => new NodeResources({ CPU: 100 }));
    for (let i = 0; i < 10; i++) load(v, `n000${i}`, 60 + i * 3);
    const seen = new Set<string>();
    const r = rng(3);
    for (let i = 0; i < 2000; i++) seen.add(nodeOf(schedule(cpu(1), v, 'DEFAULT', { rng: r, topKFraction: 0.5 }))!);
    expect(seen.size).toBe(5);
    // threshold 1: every node scores 0 -> uniform over all 10
    seen.clear();
    for (let i = 0; i < 2000; i++) seen.add(nodeOf(schedule(cpu(1), v, 'DEFAULT', { rng: r, spreadThreshold: 1 }))!);
    expect(seen.size).toBe(10);
  });

  it('matches the exact top-k distribution against a brute-force reference', () => {
    // Mixed scores, some under the threshold, pool smaller and larger than k.
    for (const [n, frac, busy] of [
      [12, 0.5, 0],
      [12, 0.5, 9],
      [6, 0.2, 0],
      [20, 0.2, 17],
    ] as const) {
      const v = cluster(n, () => new NodeResources({ CPU: 20 }));
      const loads = Array.from({ length: n }, (_, i) => (i < busy ? 20 : [0, 4, 8, 11, 13, 15][i % 6]!));
      loads.forEach((l, i) => {
        load(v, `n${String(i).padStart(4, '0')}`, l);
      });
      const ids = v.nodeIds();
      const k = Math.max(1, Math.floor(n * frac));
      // reference: pool = nodes that fit; score after placement; best k with random tie break; uniform.
      const pool = ids
        .map((id) => ({ id, node: v.get(id)! }))
        .filter((x) => x.node.canFit(cpu(1)))
        .map((x) => ({ id: x.id, s: x.node.scoreAfter(cpu(1)) < 0.5 ? 0 : x.node.scoreAfter(cpu(1)) }));
      const expected = new Map<string, number>();
      const sorted = [...pool].sort((a, b) => a.s - b.s);
      const kk = Math.min(k, pool.length);
      const cut = sorted[kk - 1]!.s;
      const below = pool.filter((x) => x.s < cut);
      const tied = pool.filter((x) => x.s === cut);
      for (const x of below) expected.set(x.id, 1 / kk);
      for (const x of tied) expected.set(x.id, (kk - below.length) / tied.length / kk);
      const counts = new Map<string, number>();
      const r = rng(11);
      const N = 20000;
      for (let i = 0; i < N; i++) {
        const id = nodeOf(schedule(cpu(1), v, 'DEFAULT', { rng: r, topKFraction: frac }))!;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      for (const id of ids) {
        const p = expected.get(id) ?? 0;
        const got = (counts.get(id) ?? 0) / N;
        expect(Math.abs(got - p), `${id} n=${n} busy=${busy}`).toBeLessThan(0.02);
      }
    }
  });

  it('keeps CPU-only work off GPU nodes while a CPU node can run it', () => {
    const v = new ClusterView();
    v.addNode('gpu', new NodeResources({ CPU: 8, GPU: 1 }));
    v.addNode('cpu', new NodeResources({ CPU: 2 }));
    const r = rng(5);
    expect(nodeOf(schedule(cpu(1), v, 'DEFAULT', { rng: r }))).toBe('cpu');
    v.get('cpu')!.allocate(cpu(2));
    expect(schedule(cpu(1), v, 'DEFAULT', { rng: r })).toEqual({ kind: 'node', nodeId: 'gpu' });
    expect(schedule(ResourceRequest.of({ CPU: 1, GPU: 1 }), v, 'DEFAULT', { rng: r })).toEqual({ kind: 'node', nodeId: 'gpu' });
    v.get('cpu')!.release(v.get('cpu')!.allocate(cpu(0))!); // no-op allocation round trip
    // avoidGpuNodes: false lets the GPU node compete.
    const w = new ClusterView();
    w.addNode('gpu', new NodeResources({ CPU: 8, GPU: 1 }));
    w.addNode('cpu', new NodeResources({ CPU: 2 }));
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(nodeOf(schedule(cpu(1), w, 'DEFAULT', { rng: r, avoidGpuNodes: false, topKAbsolute: 2 }))!);
    expect(seen).toEqual(new Set(['gpu', 'cpu']));
  });

  it('returns wait with a feasible busy node, and infeasible with the missing resources', () => {
    const v = cluster(3, () => new NodeResources({ CPU: 2 }));
    for (const id of v.nodeIds()) load(v, id, 2);
    const d = schedule(cpu(1), v);
    expect(d.kind).toBe('wait');
    expect(v.nodeIds()).toContain(nodeOf(d));
    expect(schedule(cpu(3), v)).toMatchObject({ kind: 'infeasible', missing: ['CPU'] });
    expect(schedule(resourceRequestFromOptions({ numGpus: 1 }), v)).toMatchObject({ kind: 'infeasible', missing: ['GPU'] });
    expect(schedule(resourceRequestFromOptions({ resources: { custom_x: 1 } }), v)).toMatchObject({ kind: 'infeasible', missing: ['custom_x'] });
    expect(schedule(cpu(1), new ClusterView())).toMatchObject({ kind: 'infeasible', reason: 'no alive node in the cluster' });
  });

  it('reports the union of what nodes lack when no single node has everything', () => {
    const v = new ClusterView();
    v.addNode('a', new NodeResources({ CPU: 4 }));
    v.addNode('b', new NodeResources({ GPU: 1 }));
    expect(schedule(ResourceRequest.of({ CPU: 1, GPU: 1 }), v)).toMatchObject({ kind: 'infeasible', missing: ['CPU', 'GPU'] });
  });

  it('never picks a dead node', () => {
    const v = cluster(50, () => new NodeResources({ CPU: 4 }));
    for (let i = 0; i < 49; i++) v.setAlive(`n${String(i).padStart(4, '0')}`, false);
    const r = rng(2);
    for (let i = 0; i < 100; i++) expect(nodeOf(schedule(cpu(1), v, 'DEFAULT', { rng: r, localNodeId: 'n0000' }))).toBe('n0049');
    v.setAlive('n0049', false);
    expect(schedule(cpu(1), v).kind).toBe('infeasible');
  });

  it('schedules 100k tasks over 1,000 nodes without over-allocating', () => {
    const v = cluster(1000, (i) => new NodeResources(i % 5 === 0 ? { CPU: 16, GPU: 4 } : { CPU: 32, memory: 64e9 }));
    const shapes = [cpu(1), cpu(0.5), ResourceRequest.of({ CPU: 1, GPU: 0.5 }), ResourceRequest.of({ CPU: 2, memory: 4e9 })];
    const r = rng(9);
    const running: [NodeResources, ReturnType<NodeResources['allocate']>][] = [];
    let placed = 0;
    for (let i = 0; i < 100_000; i++) {
      const req = shapes[i % shapes.length]!;
      const d = schedule(req, v, 'DEFAULT', { rng: r });
      if (d.kind === 'node') {
        const node = v.get(d.nodeId)!;
        const a = node.allocate(req);
        expect(a).not.toBeNull();
        running.push([node, a]);
        placed++;
      } else {
        expect(d.kind).toBe('wait');
        for (let j = 0; j < 1000 && running.length > 0; j++) {
          const [node, a] = running.pop()!;
          node.release(a!);
        }
      }
    }
    expect(placed).toBeGreaterThan(90_000);
    for (const [node, a] of running) node.release(a!);
    for (const id of v.nodeIds()) expect(v.get(id)!.utilization()).toBe(0);
  });
});

describe('SPREAD policy', () => {
  it('round-robins over nodes sorted by id, skipping busy ones, then waits', () => {
    const v = new ClusterView();
    for (const id of ['c', 'a', 'b']) v.addNode(id, new NodeResources({ CPU: 1 }));
    load(v, 'b', 1);
    const picks = [0, 1, 2].map(() => nodeOf(schedule(cpu(0.5), v, 'SPREAD')));
    expect(picks).toEqual(['a', 'c', 'a']);
    load(v, 'a', 0.5);
    load(v, 'c', 1);
    expect(schedule(cpu(1), v, { type: 'SPREAD' }).kind).toBe('wait');
    expect(schedule(cpu(2), v, 'SPREAD')).toMatchObject({ kind: 'infeasible', missing: ['CPU'] });
  });

  it('keeps the round robin over feasible nodes when every node is busy (each gets an equal share to queue)', () => {
    const v = new ClusterView();
    for (const id of ['c', 'a', 'b']) v.addNode(id, new NodeResources({ CPU: 1 }));
    for (const id of ['a', 'b', 'c']) load(v, id, 1);
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 60; i++) {
      const d = schedule(cpu(1), v, 'SPREAD');
      expect(d.kind).toBe('wait');
      counts[nodeOf(d)!]!++;
    }
    expect(counts).toEqual({ a: 20, b: 20, c: 20 });
  });

  it('skips nodes with queued work in the first pass but still queues on them in turn', () => {
    const v = new ClusterView();
    for (const id of ['a', 'b', 'c']) v.addNode(id, new NodeResources({ CPU: 1 }));
    // 'a' looks free but holds queued work: a burst goes to b and c first, then round robin over all.
    const queuedNodes = new Set(['a']);
    const picks: string[] = [];
    for (let i = 0; i < 8; i++) {
      const d = schedule(cpu(1), v, 'SPREAD', { queuedNodes });
      picks.push(`${d.kind}:${nodeOf(d)}`);
      if (d.kind === 'node') load(v, d.nodeId, 1);
    }
    expect(picks).toEqual(['node:b', 'node:c', 'wait:a', 'wait:b', 'wait:c', 'wait:a', 'wait:b', 'wait:c']);
  });

  it('availableOnly picks only nodes that can run now and leaves the round robin alone when none can', () => {
    const v = new ClusterView();
    for (const id of ['a', 'b', 'c', 'd']) v.addNode(id, new NodeResources({ CPU: 1 }));
    for (const id of ['a', 'b', 'c', 'd']) load(v, id, 1);
    expect(nodeOf(schedule(cpu(1), v, 'SPREAD'))).toBe('a'); // cursor -> b
    // Spill attempts while everything is busy: answered 'wait', the cursor stays on b.
    for (let i = 0; i < 3; i++) expect(schedule(cpu(1), v, 'SPREAD', { availableOnly: true }).kind).toBe('wait');
    expect(nodeOf(schedule(cpu(1), v, 'SPREAD'))).toBe('b');
    const free = new NodeResources({ CPU: 1 });
    v.addNode('e', free);
    expect(schedule(cpu(1), v, 'SPREAD', { availableOnly: true })).toEqual({ kind: 'node', nodeId: 'e' });
    expect(() => schedule(cpu(1), v, 'SPREAD', { queuedNodes: ['a'] as unknown as Set<string> })).toThrow(SchedulingOptionError);
  });
});

describe('NODE_AFFINITY policy', () => {
  const v = new ClusterView();
  v.addNode('a', new NodeResources({ CPU: 2 }));
  v.addNode('b', new NodeResources({ CPU: 2 }));
  v.addNode('dead', new NodeResources({ CPU: 2 }), { alive: false });
  v.get('a')!.allocate(cpu(2));
  it('runs on the target, waits on it when busy, fails when hard and impossible', () => {
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'b', soft: false })).toEqual({ kind: 'node', nodeId: 'b' });
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'a', soft: false })).toEqual({ kind: 'wait', nodeId: 'a' });
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'a', soft: true })).toEqual({ kind: 'wait', nodeId: 'a' });
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'dead', soft: false })).toMatchObject({ kind: 'infeasible', reason: /dead/ });
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'nope', soft: false })).toMatchObject({ kind: 'infeasible', reason: /not in the cluster/ });
    expect(schedule(cpu(3), v, { type: 'NODE_AFFINITY', nodeId: 'b', soft: false })).toMatchObject({ kind: 'infeasible', missing: ['CPU'] });
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'a', soft: false, failOnUnavailable: true }).kind).toBe('infeasible');
  });
  it('falls back to DEFAULT when soft', () => {
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'dead', soft: true })).toEqual({ kind: 'node', nodeId: 'b' });
    expect(schedule(cpu(1), v, { type: 'NODE_AFFINITY', nodeId: 'a', soft: true, spillOnUnavailable: true })).toEqual({ kind: 'node', nodeId: 'b' });
  });
});

describe('NODE_LABEL policy', () => {
  const v = new ClusterView();
  v.addNode('a', new NodeResources({ CPU: 2 }, { labels: { zone: 'us-1', ssd: 'yes' } }));
  v.addNode('b', new NodeResources({ CPU: 2 }, { labels: { zone: 'us-2' } }));
  v.addNode('c', new NodeResources({ CPU: 2 }, { labels: { zone: 'eu-1' } }));
  const pick = (hard?: Parameters<typeof labelIn>[] extends never ? never : ReturnType<typeof labelIn>[], soft?: ReturnType<typeof labelIn>[]) => {
    const seen = new Set<string>();
    const r = rng(4);
    for (let i = 0; i < 200; i++) {
      const d = schedule(cpu(1), v, { type: 'NODE_LABEL', hard, soft }, { rng: r });
      seen.add(d.kind === 'infeasible' ? 'infeasible' : d.nodeId);
    }
    return [...seen].sort();
  };
  it('filters with in / not_in / exists / does_not_exist', () => {
    expect(pick([labelIn('zone', 'us-1', 'us-2')])).toEqual(['a', 'b']);
    expect(pick([labelNotIn('zone', 'us-1')])).toEqual(['b', 'c']);
    expect(pick([labelExists('ssd')])).toEqual(['a']);
    expect(pick([labelDoesNotExist('ssd')])).toEqual(['b', 'c']);
    expect(pick([labelIn('ray.io/node-id', 'c')])).toEqual(['c']);
    expect(pick([labelIn('zone', 'mars')])).toEqual(['infeasible']);
  });
  it('prefers soft matches and waits on a busy match', () => {
    expect(pick(undefined, [labelIn('zone', 'eu-1')])).toEqual(['c']);
    const w = new ClusterView();
    w.addNode('x', new NodeResources({ CPU: 1 }, { labels: { gpu: 'h100' } }));
    w.get('x')!.allocate(cpu(1));
    expect(schedule(cpu(1), w, { type: 'NODE_LABEL', hard: [labelExists('gpu')] })).toEqual({ kind: 'wait', nodeId: 'x' });
  });
  it('rejects malformed selectors', () => {
    expect(() => schedule(cpu(1), v, { type: 'NODE_LABEL', hard: [{ key: 'zone', op: 'near' as never }] })).toThrow(ResourceValidationError);
    expect(() => schedule(cpu(1), v, { type: 'NODE_LABEL', hard: [{ key: 'zone', op: 'in', values: [] }] })).toThrow(/values must be a non-empty/);
  });
});

describe('bad input', () => {
  const v = cluster(2, () => new NodeResources({ CPU: 1 }));
  it('throws typed errors for unknown strategies and bad options', () => {
    expect(() => schedule(cpu(1), v, 'RANDOM' as never)).toThrow(UnknownStrategyError);
    expect(() => schedule(cpu(1), v, { type: 'NODE_AFFINITY' } as never)).toThrow(UnknownStrategyError);
    expect(() => schedule(cpu(1), v, null as never)).toThrow(UnknownStrategyError);
    expect(() => schedule(cpu(1), v, 'DEFAULT', { spreadThreshold: -1 })).toThrow(SchedulingOptionError);
    expect(() => schedule(cpu(1), v, 'DEFAULT', { topKFraction: NaN })).toThrow(SchedulingOptionError);
    expect(() => schedule(cpu(1), v, 'DEFAULT', { topKAbsolute: 0 })).toThrow(SchedulingOptionError);
    expect(() => schedule({ CPU: 1 } as never, v)).toThrow(ResourceValidationError);
  });
  it('schedules an empty request anywhere', () => {
    expect(schedule(ResourceRequest.EMPTY, v).kind).toBe('node');
  });
});

describe('selectRank', () => {
  it('agrees with sorting', () => {
    const r = rng(12);
    for (let t = 0; t < 300; t++) {
      const n = 1 + Math.floor(r() * 60);
      const scores = Float64Array.from({ length: n }, () => 0.5 + Math.floor(r() * 6) / 10 + (r() < 0.1 ? 1 : 0));
      const sorted = [...scores.keys()].sort((a, b) => scores[a]! - scores[b]! || a - b);
      const rank = Math.floor(r() * n);
      expect(selectRank(scores, n, rank, 0.5, 1, new RankScratch(n))).toBe(sorted[rank]);
    }
  });
});
