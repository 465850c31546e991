// The autoscaler's decisions as pure functions: how many nodes of which type the demand needs (no
// more), placement-group strategies, limits (max_workers, per type, upscaling speed), requestResources,
// and which idle nodes go (never a busy one, never below min_workers).
import { describe, expect, it } from 'vitest';
import { type CapacityNode, parseClusterConfig, planScaleDown, planScaleUp, type PlanInput } from '../src/index.js';

const config = parseClusterConfig(`cluster_name: t
max_workers: 4
idle_timeout_minutes: 1
provider: { type: local }
available_node_types:
  head: { resources: { CPU: 1 }, max_workers: 0 }
  worker: { resources: { CPU: 4, slot: 8 }, max_workers: 4 }
  big: { resources: { CPU: 16, GPU: 2 }, max_workers: 1 }
head_node_type: head
`);
const head: CapacityNode = { id: 'head', type: 'head', free: { CPU: 1 }, total: { CPU: 1 } };

function plan(p: Partial<PlanInput>): ReturnType<typeof planScaleUp> {
  return planScaleUp({ config, nodes: [{ ...head, free: { ...head.free } }], workers: {}, launching: 0, shapes: [], groups: [], requested: [], ...p });
}

describe('planScaleUp', () => {
  it('16 tasks of {CPU: 0.5, slot: 1} → 2 workers (bin-packed, not one per task)', () => {
    const p = plan({ shapes: [{ shape: { CPU: 0.5, slot: 1 }, count: 16 }] });
    expect(p.launch).toEqual({ worker: 2 });
    expect(p.unfulfilled).toEqual([]);
  });

  it('counts free capacity and launching nodes before adding', () => {
    const launching: CapacityNode = { id: 'l1', type: 'worker', free: { CPU: 4, slot: 8 }, total: { CPU: 4, slot: 8 } };
    expect(plan({ nodes: [head, launching], workers: { worker: 1 }, launching: 1, shapes: [{ shape: { CPU: 0.5, slot: 1 }, count: 16 }] }).launch).toEqual({
      worker: 1,
    });
    expect(plan({ nodes: [head, launching], workers: { worker: 1 }, launching: 1, shapes: [{ shape: { CPU: 0.5, slot: 1 }, count: 8 }] }).launch).toEqual({});
    expect(plan({ shapes: [{ shape: { CPU: 1 }, count: 1 }] }).launch).toEqual({});
  });

  it('picks the node type that has the resource', () => {
    expect(plan({ shapes: [{ shape: { GPU: 1 }, count: 2 }] }).launch).toEqual({ big: 1 });
  });

  it('never goes past max_workers or a type max, and says why', () => {
    const p = plan({ shapes: [{ shape: { slot: 8 }, count: 10 }] });
    expect(p.launch).toEqual({ worker: 4 });
    expect(p.unfulfilled).toEqual(['pending {slot: 8}: max_workers (4) reached']);
    const g = plan({ shapes: [{ shape: { GPU: 2 }, count: 3 }] });
    expect(g.launch).toEqual({ big: 1 });
    expect(g.unfulfilled[0]).toMatch(/every node type with \{GPU: 2\} is at its max_workers/);
    expect(plan({ shapes: [{ shape: { TPU: 1 }, count: 1 }] }).unfulfilled).toEqual(['pending {TPU: 1}: no node type has {TPU: 1}']);
  });

  it('upscaling speed: at most max(5, speed × nodes) launching at once', () => {
    const fast = parseClusterConfig(`cluster_name: t
max_workers: 100
provider: { type: local }
available_node_types:
  head: { resources: { CPU: 1 }, max_workers: 0 }
  worker: { resources: { slot: 1 } }
head_node_type: head
`);
    const p = planScaleUp({ config: fast, nodes: [head], workers: {}, launching: 0, shapes: [{ shape: { slot: 1 }, count: 50 }], groups: [], requested: [] });
    expect(p.launch).toEqual({ worker: 5 });
    const q = planScaleUp({
      config: fast,
      nodes: [head],
      workers: { worker: 5 },
      launching: 5,
      shapes: [{ shape: { slot: 1 }, count: 50 }],
      groups: [],
      requested: [],
    });
    expect(q.launch).toEqual({});
  });

  it('STRICT_SPREAD of 3 bundles on a 1-node cluster → 2 new nodes; STRICT_PACK → 1; PACK fills', () => {
    const one = { CPU: 1 };
    expect(plan({ groups: [{ bundles: [one, one, one], strategy: 'STRICT_SPREAD' }] }).launch).toEqual({ worker: 2 });
    expect(plan({ groups: [{ bundles: [one, one, one], strategy: 'STRICT_PACK' }] }).launch).toEqual({ worker: 1 });
    expect(plan({ groups: [{ bundles: [one, one, one], strategy: 'PACK' }] }).launch).toEqual({ worker: 1 });
    expect(plan({ groups: [{ bundles: [{ CPU: 4 }, { CPU: 4 }], strategy: 'STRICT_PACK' }] }).launch).toEqual({ big: 1 });
  });

  it('requestResources bundles count against totals, used or not', () => {
    const busyHead: CapacityNode = { id: 'head', type: 'head', free: { CPU: 0 }, total: { CPU: 1 } };
    expect(plan({ nodes: [busyHead], requested: [{ CPU: 1 }] }).launch).toEqual({});
    expect(plan({ nodes: [busyHead], requested: [{ CPU: 1 }, { CPU: 4 }, { CPU: 4 }] }).launch).toEqual({ worker: 2 });
  });

  it('launches up to min_workers', () => {
    const c = parseClusterConfig(`cluster_name: t
max_workers: 3
provider: { type: local }
available_node_types:
  head: { resources: { CPU: 1 }, max_workers: 0 }
  worker: { resources: { CPU: 1 }, min_workers: 2 }
head_node_type: head
`);
    expect(planScaleUp({ config: c, nodes: [head], workers: { worker: 1 }, launching: 0, shapes: [], groups: [], requested: [] }).launch).toEqual({
      worker: 1,
    });
  });
});

describe('planScaleDown', () => {
  const now = 1_000_000;
  it('removes workers idle past idle_timeout_minutes, longest idle first; never a busy one', () => {
    const out = planScaleDown(
      config,
      [
        { id: 'a', type: 'worker', idleSince: now - 30_000 },
        { id: 'b', type: 'worker', idleSince: now - 120_000 },
        { id: 'c', type: 'worker', idleSince: undefined },
        { id: 'd', type: 'worker', idleSince: now - 61_000 },
      ],
      now,
    );
    expect(out.map((w) => w.id)).toEqual(['b', 'd']);
  });

  it('keeps min_workers of each type', () => {
    const c = parseClusterConfig(`cluster_name: t
max_workers: 3
idle_timeout_minutes: 0
provider: { type: local }
available_node_types:
  head: { resources: { CPU: 1 }, max_workers: 0 }
  worker: { resources: { CPU: 1 }, min_workers: 1 }
head_node_type: head
`);
    const out = planScaleDown(
      c,
      [
        { id: 'a', type: 'worker', idleSince: now - 5 },
        { id: 'b', type: 'worker', idleSince: now - 10 },
      ],
      now,
    );
    expect(out.map((w) => w.id)).toEqual(['b']);
  });
});
