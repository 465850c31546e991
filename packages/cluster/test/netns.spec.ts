/**
 * Node managers in separate network namespaces: a bridge in the root namespace (the head binds its
 * address) and two namespaces wired to it by veth pairs, each running a node daemon bound to its own
 * address, so GCS heartbeats, peer connections and object chunks cross a real network stack. This
 * test process is a driver attached to the head's node. Needs root (or CAP_NET_ADMIN) and iproute2;
 * when the namespaces cannot be made, every test is skipped with the exact reason, printed.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { get, init, nodes, shutdown, type NodeState } from '@tsray/core';
import { TestCluster, until, type DaemonProc } from './fixtures/cluster-harness.js';
import { createNetnsLab, type NetnsLab } from './fixtures/netns.js';
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
  let lab: NetnsLab | undefined;
  let skipReason: string | undefined;
  let c: TestCluster | undefined;
  let savedTmp: string | undefined;
  let tmpSet = false;
  let driver = false;
  const nodeA: { d?: DaemonProc } = {};
  const nodeB: { d?: DaemonProc } = {};

  /** Skip (with the reason, printed) when the lab could not be made. */
  const needLab = (ctx: TestContext): NetnsLab => {
    if (!lab) ctx.skip(`network namespaces unavailable: ${skipReason}`);
    return lab!;
  };

  beforeAll(async () => {
    const made = createNetnsLab(2);
    if (!made.lab) {
      skipReason = made.reason;
      process.stderr.write(`[netns.spec] SKIPPED: could not create network namespaces: ${made.reason}\n`);
      return;
    }
    lab = made.lab;
    const [nsA, nsB] = lab.namespaces as [NetnsLab['namespaces'][0], NetnsLab['namespaces'][0]];
    c = new TestCluster();
    await c.startHead({ numCpus: 1, host: lab.bridgeIp, nodeDeathTimeoutS: 2 });
    [nodeA.d, nodeB.d] = await Promise.all([
      c.addNode({ numCpus: 1, resources: { ns_a: 1 }, host: nsA.ip, wrap: ['ip', 'netns', 'exec', nsA.name] }),
      c.addNode({ numCpus: 1, resources: { ns_b: 1 }, host: nsB.ip, wrap: ['ip', 'netns', 'exec', nsB.name] }),
    ]);
    savedTmp = process.env['TMPDIR'];
    process.env['TMPDIR'] = c.tmp;
    tmpSet = true;
    await init({ address: 'auto', namespace: 'netns' });
    driver = true;
    await until(async () => (await nodesNow()).filter((n) => n.alive).length === 3, 10_000, 'the head and both namespace nodes in the table');
  }, 50_000);

  afterAll(async () => {
    try {
      if (driver) await shutdown();
    } finally {
      if (tmpSet && savedTmp === undefined) delete process.env['TMPDIR'];
      else if (tmpSet) process.env['TMPDIR'] = savedTmp;
      try {
        await c?.stop();
      } finally {
        const left = lab?.cleanup() ?? [];
        // biome-ignore lint/correctness/noUnsafeFinally: leftover namespaces must fail the test even when the body failed first
        if (left.length > 0) throw new Error(`network namespace lab left behind: ${left.join('; ')}`);
      }
    }
  }, 30_000);

  it('both namespace nodes join, each advertising its namespace address', async (ctx) => {
    const l = needLab(ctx);
    const byId = new Map((await nodesNow()).map((n) => [n.nodeId, n]));
    const head = byId.get(c!.head.ready.nodeId)!;
    const a = byId.get(nodeA.d!.ready.nodeId)!;
    const b = byId.get(nodeB.d!.ready.nodeId)!;
    expect(head.address).toMatch(new RegExp(`^tcp://${l.bridgeIp.replaceAll('.', '\\.')}:\\d+$`));
    expect(a.address).toMatch(new RegExp(`^tcp://${l.namespaces[0]!.ip.replaceAll('.', '\\.')}:\\d+$`));
    expect(b.address).toMatch(new RegExp(`^tcp://${l.namespaces[1]!.ip.replaceAll('.', '\\.')}:\\d+$`));
    expect([a.alive, b.alive, a.resourcesTotal['ns_a'], b.resourcesTotal['ns_b']]).toEqual([true, true, 1, 1]);
    expect(c!.gcsAddress).toBe(`${l.bridgeIp}:${c!.gcsAddress.split(':')[1]}`);
  });

  it("a task pinned by a custom resource runs in each namespace (its worker sees only that namespace's network)", async (ctx) => {
    const l = needLab(ctx);
    const [onA, onB] = await get([netInfo.options({ resources: { ns_a: 1 } }).remote(), netInfo.options({ resources: { ns_b: 1 } }).remote()]);
    expect(onA).toEqual([nodeA.d!.ready.nodeId, [l.namespaces[0]!.ip]]);
    expect(onB).toEqual([nodeB.d!.ready.nodeId, [l.namespaces[1]!.ip]]);
  }, 30_000);

  it('a 32 MiB object made in namespace A is consumed in namespace B, content intact, bytes crossing both veths', async (ctx) => {
    const l = needLab(ctx);
    const [nsA, nsB] = l.namespaces as [NetnsLab['namespaces'][0], NetnsLab['namespaces'][0]];
    const a0 = l.counters(nsA);
    const b0 = l.counters(nsB);
    const blob = makeBlob.options({ resources: { ns_a: 1 } }).remote(32);
    const [sum, len, where] = await get(digestOf.options({ resources: { ns_b: 1 } }).remote(blob));
    const local = await get(blob);
    expect([sum, len, where]).toEqual([createHash('sha256').update(local).digest('hex'), 32 * 1024 * 1024, nodeB.d!.ready.nodeId]);
    const a1 = l.counters(nsA);
    const b1 = l.counters(nsB);
    // A sent the object out of its namespace (the root side received it), B's namespace received it.
    expect(a1.rx - a0.rx).toBeGreaterThanOrEqual(32 * 1024 * 1024);
    expect(b1.tx - b0.tx).toBeGreaterThanOrEqual(32 * 1024 * 1024);
  }, 40_000);

  it('kill -9 of a namespace node is detected: declared dead, the other one keeps serving', async (ctx) => {
    needLab(ctx);
    const victim = nodeA.d!;
    victim.proc.kill('SIGKILL');
    await until(() => victim.proc.signalCode === 'SIGKILL', 5000, 'node A to exit after SIGKILL');
    const dead = await until(async () => (await nodesNow()).find((n) => n.nodeId === victim.ready.nodeId && !n.alive), 10_000, 'node A declared dead');
    expect(dead.deathReason).toMatch(/no heartbeat/);
    expect((await nodesNow()).find((n) => n.nodeId === nodeB.d!.ready.nodeId)?.alive).toBe(true);
    const [onB] = await get(netInfo.options({ resources: { ns_b: 1 } }).remote(), { timeout: 15 });
    expect(onB).toBe(nodeB.d!.ready.nodeId);
  }, 30_000);
});
