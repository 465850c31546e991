/**
 * SPREAD (and DEFAULT spillback) on a real cluster of three 1-CPU nodes (separate processes): work that
 * finds every node busy is still shared out round robin, and work queued on a busy node moves to idle ones.
 * Every check reads node ids and times recorded inside the tasks, never the test's own clock.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, nodes, shutdown } from '@tsray/core';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { holdUntil, span, type Span } from './fixtures/spread-fns.js';

function countByNode(spans: Span[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of spans) m.set(s.node, (m.get(s.node) ?? 0) + 1);
  return m;
}

/** True when two tasks recorded on the same node overlap in time (a 1-CPU node runs one at a time). */
function overlapsOnOneNode(spans: Span[]): boolean {
  const byNode = new Map<string, Span[]>();
  for (const s of spans) byNode.set(s.node, [...(byNode.get(s.node) ?? []), s]);
  for (const list of byNode.values()) {
    list.sort((a, b) => a.start - b.start);
    for (let i = 1; i < list.length; i++) if (list[i]!.start < list[i - 1]!.end) return true;
  }
  return false;
}

describe('SPREAD on three 1-CPU nodes', () => {
  const c = new TestCluster();
  const ids: string[] = [];
  let seq = 0;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1 });
    await Promise.all([c.addNode({ numCpus: 1 }), c.addNode({ numCpus: 1 })]);
    ids.push(c.head.ready.nodeId, ...c.nodes.map((n) => n.ready.nodeId));
    c.attachHere();
    await init({ address: 'auto' });
    await until(async () => (await nodes()).filter((n) => n.alive).length === 3, 10_000, 'all 3 nodes in the table');
    // Warm a worker on every node, so the checks below measure placement rather than worker start-up.
    await get(ids.map((nodeId) => span.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId, soft: false } }).remote(0)));
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  /** Blocks the head's only CPU until the returned release function runs. */
  async function blockHead(): Promise<{ release: () => void; done: Promise<string> }> {
    const n = seq++;
    const started = join(c.tmp, `hold-${n}.started`);
    const released = join(c.tmp, `hold-${n}.release`);
    const done = get(holdUntil.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: ids[0]!, soft: false } }).remote(started, released));
    await until(() => existsSync(started), 30_000, 'the head to run the blocking task');
    return { release: () => writeFileSync(released, ''), done };
  }

  it('shares a burst of 60 short tasks out evenly', async () => {
    const spans = await get(Array.from({ length: 60 }, () => span.options({ schedulingStrategy: 'SPREAD' }).remote(5)));
    const counts = countByNode(spans);
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    for (const [node, n] of counts) expect({ node, n, ok: n >= 15 && n <= 25 }).toMatchObject({ ok: true });
  }, 60_000);

  it('runs 30 tasks of 200 ms on all three nodes at once, about 10 each', async () => {
    const spans = await get(Array.from({ length: 30 }, () => span.options({ schedulingStrategy: 'SPREAD' }).remote(200)));
    const counts = countByNode(spans);
    expect(counts.size).toBe(3);
    for (const [node, n] of counts) expect({ node, n, ok: n >= 8 && n <= 12 }).toMatchObject({ ok: true });
    expect(overlapsOnOneNode(spans)).toBe(false);
    // The three nodes worked side by side: each one's first task started before any node's last task ended.
    const perNode = [...counts.keys()].map((node) => spans.filter((s) => s.node === node));
    const latestFirstStart = Math.max(...perNode.map((l) => Math.min(...l.map((s) => s.start))));
    const earliestLastEnd = Math.min(...perNode.map((l) => Math.max(...l.map((s) => s.end))));
    expect(latestFirstStart).toBeLessThan(earliestLastEnd);
  }, 60_000);

  it('moves SPREAD work queued on a busy node to the idle nodes', async () => {
    const hold = await blockHead();
    try {
      // A third of these queue on the head (round robin); the head stays busy until they all finished,
      // so they can only finish by moving to the other two nodes.
      // (A bound for a clear failure if they stay queued on the head: GetTimeoutError, not a hung test.)
      const spans = await get(
        Array.from({ length: 12 }, () => span.options({ schedulingStrategy: 'SPREAD' }).remote(50)),
        { timeout: 30 },
      );
      expect(spans.some((s) => s.node === ids[0])).toBe(false);
      expect(new Set(spans.map((s) => s.node))).toEqual(new Set(ids.slice(1)));
    } finally {
      hold.release();
    }
    expect(await hold.done).toBe(ids[0]);
  }, 60_000);

  it('DEFAULT work queued on a busy node still spills to the idle nodes', async () => {
    const hold = await blockHead();
    try {
      const spans = await get(
        Array.from({ length: 8 }, () => span.remote(50)),
        { timeout: 30 },
      );
      expect(spans.some((s) => s.node === ids[0])).toBe(false);
      expect(new Set(spans.map((s) => s.node))).toEqual(new Set(ids.slice(1)));
    } finally {
      hold.release();
    }
    expect(await hold.done).toBe(ids[0]);
  }, 60_000);
});
