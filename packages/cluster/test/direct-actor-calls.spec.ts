/**
 * Direct actor calls across nodes (issue #16 points 1 and 5): real daemons, a head A (this test
 * process is the driver attached to it, and owns the actor), node B hosting the actor, node C calling
 * it. C's node sends the calls straight to B (the GCS actor directory gives B and a version); when B
 * dies the owner restarts the actor on A, C's node finds the new incarnation in the directory and
 * resends its unfinished calls there in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, nodeCounters, nodes, shutdown, type NodeCounters } from '@tsray/core';
import { TestCluster, until, type DaemonProc } from './fixtures/cluster-harness.js';
import { Caller, Recorder, SlowRecorder, type Recorded } from './fixtures/direct-fns.js';

/** Calls C makes; the test kills B once this many have their result (so the rest are in flight or queued). */
const CALLS = 400;
const KILL_AFTER = 40;

describe('direct actor calls: node C calls an actor owned by A and hosted on B (separate processes)', () => {
  const c = new TestCluster();
  let b!: DaemonProc;
  let third!: DaemonProc;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, nodeDeathTimeoutS: 2, resources: { directHost: 1 } });
    [b, third] = await Promise.all([c.addNode({ numCpus: 1, resources: { directHost: 1 } }), c.addNode({ numCpus: 1, resources: { directCaller: 1 } })]);
    c.attachHere();
    await init({ address: 'auto' });
    await until(async () => (await nodes()).filter((x) => x.alive).length === 3, 30_000, '3 nodes alive');
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  const counters = async (): Promise<Map<string, NodeCounters>> => new Map((await nodeCounters()).map((n) => [n.nodeId, n]));

  it('calls made on C before the actor is ALIVE wait there and then go straight to its host, in order', async () => {
    const onB = { type: 'NODE_AFFINITY' as const, nodeId: b.ready.nodeId, soft: false };
    const before = await counters();
    // Not awaited: C looks the actor up while its constructor still runs (the directory says PENDING or STARTING).
    const rec = SlowRecorder.options({ schedulingStrategy: onB }).remote(1500);
    const caller = Caller.remote();
    expect(await get(caller.start.remote(rec, 50))).toBe(50);
    const results = (await get(caller.finish.remote(), { timeout: 120 })) as Recorded[];
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(results.every((r) => r.node === b.ready.nodeId)).toBe(true);
    const after = await counters();
    expect(after.get(c.head.ready.nodeId)?.actorCallsRelayed).toBe(before.get(c.head.ready.nodeId)?.actorCallsRelayed);
  }, 120_000);

  it("C's calls skip the owner A (relay counter 0) and keep their order across a restart on A after B dies", async () => {
    const a = c.head.ready.nodeId;
    const onB = { type: 'NODE_AFFINITY' as const, nodeId: b.ready.nodeId, soft: true };
    const rec = Recorder.options({ schedulingStrategy: onB }).remote();
    expect(await get(rec.node.remote())).toBe(b.ready.nodeId);
    const caller = Caller.remote();
    expect(await get(caller.start.remote(rec, CALLS))).toBe(CALLS);
    await until(async () => (await get(caller.progress.remote())) >= KILL_AFTER, 60_000, `${KILL_AFTER} calls done`);

    // Before B dies: C sent its calls to B itself; A relayed none of them.
    const before = await counters();
    expect(before.get(a)?.actorCallsRelayed).toBe(0);
    expect(before.get(third.ready.nodeId)?.actorCallsSentDirect).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(before.get(b.ready.nodeId)?.actorCallsFromPeers).toBeGreaterThanOrEqual(KILL_AFTER);

    b.proc.kill('SIGKILL');
    const results = (await get(caller.finish.remote(), { timeout: 120 })) as Recorded[];

    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: CALLS }, (_, i) => i));
    // Two incarnations: results from B's form a prefix, the rest come from the one restarted on A.
    const firstPid = results[0]!.pid;
    const cut = results.findIndex((r) => r.pid !== firstPid);
    expect(cut).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(results.slice(0, cut).every((r) => r.node === b.ready.nodeId)).toBe(true);
    const second = results.slice(cut);
    expect(second.length).toBeGreaterThan(0);
    expect(new Set(second.map((r) => r.pid)).size).toBe(1);
    expect(second.every((r) => r.node === a)).toBe(true);
    // Per-caller order inside each incarnation: positions grow with the sequence numbers, and the new
    // incarnation ran C's resent calls first, in order (its first call is the first unfinished one).
    for (const part of [results.slice(0, cut), second]) {
      for (let i = 1; i < part.length; i++) expect(part[i]!.index).toBeGreaterThan(part[i - 1]!.index);
    }
    expect(second[0]!.index).toBe(1);

    // After the restart too, nothing went through a relay: C sent every call itself (resends included).
    const after = await counters();
    expect(after.get(a)?.actorCallsRelayed).toBe(0);
    expect(after.get(third.ready.nodeId)?.actorCallsSentDirect).toBeGreaterThanOrEqual(CALLS);
    // The new host took C's numbered calls (resends first) without refusing any as out of order.
    expect(after.get(a)?.actorCallsFromPeers).toBeGreaterThanOrEqual(second.length);
    expect(after.get(a)?.actorCallsOutOfOrder).toBe(0);
  }, 180_000);
});
