/**
 * Node managers in separate network namespaces: a bridge in the root namespace (the head binds its
 * address) and two namespaces wired to it by veth pairs, each running a node daemon bound to its own
 * address, so GCS heartbeats, peer connections and object chunks cross a real network stack. This
 * test process is a driver attached to the head's node. Needs root (or CAP_NET_ADMIN) and iproute2;
 * when the namespaces cannot be made, every test is skipped with the exact reason, printed.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, nodes, type NodeState } from '@tsray/core';
import { until } from './fixtures/cluster-harness.js';
import type { NetnsLab } from './fixtures/netns.js';
import { NetnsCluster } from './fixtures/netns-cluster.js';
import { digestOf, makeBlob, netInfo } from './fixtures/netns-fns.js';

/** nodes(), failing (instead of hanging the test) when the head does not answer in 5 s. */
async function nodesNow(): Promise<NodeState[]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      nodes(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('nodes() got no answer within 5 s')), 5000))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('node managers in separate network namespaces (veth pairs on a private bridge)', () => {
  const net = new NetnsCluster('netns.spec');

  beforeAll(async () => {
    if (!(await net.start('netns', { nodeDeathTimeoutS: 2 }))) return;
    await until(async () => (await nodesNow()).filter((n) => n.alive).length === 3, 10_000, 'the head and both namespace nodes in the table');
  }, 50_000);

  afterAll(() => net.stop(), 30_000);

  it('both namespace nodes join, each advertising its namespace address', async (ctx) => {
    const l = net.needLab(ctx);
    const byId = new Map((await nodesNow()).map((n) => [n.nodeId, n]));
    const head = byId.get(net.cluster.head.ready.nodeId)!;
    const a = byId.get(net.nodeA.ready.nodeId)!;
    const b = byId.get(net.nodeB.ready.nodeId)!;
    expect(head.address).toMatch(new RegExp(`^tcp://${l.bridgeIp.replaceAll('.', '\\.')}:\\d+$`));
    expect(a.address).toMatch(new RegExp(`^tcp://${l.namespaces[0]!.ip.replaceAll('.', '\\.')}:\\d+$`));
    expect(b.address).toMatch(new RegExp(`^tcp://${l.namespaces[1]!.ip.replaceAll('.', '\\.')}:\\d+$`));
    expect([a.alive, b.alive, a.resourcesTotal['ns_a'], b.resourcesTotal['ns_b']]).toEqual([true, true, 1, 1]);
    expect(net.cluster.gcsAddress).toBe(`${l.bridgeIp}:${net.cluster.gcsAddress.split(':')[1]}`);
  });

  it("a task pinned by a custom resource runs in each namespace (its worker sees only that namespace's network)", async (ctx) => {
    const l = net.needLab(ctx);
    const [onA, onB] = await get([netInfo.options({ resources: { ns_a: 1 } }).remote(), netInfo.options({ resources: { ns_b: 1 } }).remote()]);
    expect(onA).toEqual([net.nodeA.ready.nodeId, [l.namespaces[0]!.ip]]);
    expect(onB).toEqual([net.nodeB.ready.nodeId, [l.namespaces[1]!.ip]]);
  }, 30_000);

  it('a 32 MiB object made in namespace A is consumed in namespace B, content intact, bytes crossing both veths', async (ctx) => {
    const l = net.needLab(ctx);
    const [nsA, nsB] = l.namespaces as [NetnsLab['namespaces'][0], NetnsLab['namespaces'][0]];
    const a0 = l.counters(nsA);
    const b0 = l.counters(nsB);
    const blob = makeBlob.options({ resources: { ns_a: 1 } }).remote(32);
    const [sum, len, where] = await get(digestOf.options({ resources: { ns_b: 1 } }).remote(blob));
    const local = await get(blob);
    expect([sum, len, where]).toEqual([createHash('sha256').update(local).digest('hex'), 32 * 1024 * 1024, net.nodeB.ready.nodeId]);
    const a1 = l.counters(nsA);
    const b1 = l.counters(nsB);
    // A sent the object out of its namespace (the root side received it), B's namespace received it.
    expect(a1.rx - a0.rx).toBeGreaterThanOrEqual(32 * 1024 * 1024);
    expect(b1.tx - b0.tx).toBeGreaterThanOrEqual(32 * 1024 * 1024);
  }, 40_000);

  it('kill -9 of a namespace node is detected: declared dead, the other one keeps serving', async (ctx) => {
    net.needLab(ctx);
    const victim = net.nodeA;
    victim.proc.kill('SIGKILL');
    await until(() => victim.proc.signalCode === 'SIGKILL', 5000, 'node A to exit after SIGKILL');
    const dead = await until(async () => (await nodesNow()).find((n) => n.nodeId === victim.ready.nodeId && !n.alive), 10_000, 'node A declared dead');
    expect(dead.deathReason).toMatch(/no heartbeat/);
    expect((await nodesNow()).find((n) => n.nodeId === net.nodeB.ready.nodeId)?.alive).toBe(true);
    const [onB] = await get(netInfo.options({ resources: { ns_b: 1 } }).remote(), { timeout: 15 });
    expect(onB).toBe(net.nodeB.ready.nodeId);
  }, 30_000);
});
