/**
 * Objects whose data lives on another node, and that node's death (issue #18, point 3), with real
 * daemons: a head (this test process attached to it as the driver) and nodes B (`lineageB`, where the
 * work is pinned) and C (where retries can go); nodes D and E join for the lineage reconstruction cases.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, listTransferStats, nodes, ObjectLostError, shutdown } from '@tsray/core';
import { TestCluster, until, type DaemonProc } from './fixtures/cluster-harness.js';
import { bigNext, bigResult, lcgBytes, readNested, RefMakerActor, stage } from './fixtures/lineage-fns.js';
import { sha as shaTask } from './fixtures/pull-fns.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** Node ids written by each run of `bigResult` into `file`. */
const runsIn = (file: string) => readFileSync(file, 'utf8').trim().split('\n');

describe('objects made on a node that dies (head + 2 nodes, separate processes)', () => {
  const c = new TestCluster();
  let b!: DaemonProc;
  let third!: DaemonProc;
  let n = 0;
  const gate = () => join(c.tmp, `gate-${n++}`);

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, nodeDeathTimeoutS: 2 });
    [b, third] = await Promise.all([c.addNode({ numCpus: 2, resources: { lineageB: 1 } }), c.addNode({ numCpus: 1 })]);
    c.attachHere();
    await init({ address: 'auto' });
    await until(async () => (await nodes()).filter((x) => x.alive).length === 3, 30_000, '3 nodes alive');
  }, 90_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 60_000);

  it('a ref to a task made on node B, returned inside an actor reply, is fetched from B once that task ends', async () => {
    const maker = RefMakerActor.remote();
    expect(await get(maker.node.remote())).toBe(b.ready.nodeId);
    const g = gate();
    const [inner] = await get(maker.taskRef.remote(g, 'made on B'));
    writeFileSync(g, '');
    // Before: the driver's node never got its data (it did not exist when the reply left B); get hung.
    expect(await get(inner, { timeout: 60 })).toBe('made on B');
  }, 90_000);

  it("that ref passed on inside an argument to a task on node C is fetched there too (C asks the driver's node, which asks B)", async () => {
    const maker = RefMakerActor.remote();
    const g = gate();
    const [inner] = await get(maker.taskRef.remote(g, 'passed on'));
    const onC = { schedulingStrategy: { type: 'NODE_AFFINITY' as const, nodeId: third.ready.nodeId, soft: false } };
    const read = readNested.options(onC).remote([inner]);
    writeFileSync(g, '');
    expect(await get(read, { timeout: 60 })).toEqual(['passed on', third.ready.nodeId]);
  }, 90_000);

  it('a large put made by an actor on B, sealed after the reply that carries its ref, is read on the driver', async () => {
    const maker = RefMakerActor.remote();
    const [ref] = await get(maker.putRef.remote(4, 7));
    const buf = await get(ref, { timeout: 60 });
    expect(buf.length).toBe(4 * 1024 * 1024);
    expect(buf[0]).toBe(7);
    expect(buf[buf.length - 1]).toBe(7);
  }, 90_000);

  it('D dies holding the only copy of 32 MiB results nobody read: get rebuilds them by re-running their tasks (a 2-stage chain too); with maxRetries 0 it is ObjectLostError', async () => {
    const d = await c.addNode({ numCpus: 2 });
    const onD = { schedulingStrategy: { type: 'NODE_AFFINITY' as const, nodeId: d.ready.nodeId, soft: true } };
    // The head's view has D (a soft affinity to a node it does not know yet runs elsewhere).
    await until(async () => (await get(stage.options(onD).remote('x', 'probe', '')))[1] === d.ready.nodeId, 30_000, 'a probe task run on D');
    const head = c.head.ready.nodeId;
    const headStats = async () => (await listTransferStats()).find((s) => s.nodeId === head)!;
    const before = (await headStats()).located;
    const [runs, runs0] = [join(c.tmp, 'big-runs'), join(c.tmp, 'big-runs-0')];
    const big = bigResult.options(onD).remote(runs, 32, 5);
    const big0 = bigResult.options({ ...onD, maxRetries: 0 }).remote(runs0, 32, 6);
    // A chain: its second stage's argument is lost too, and rebuilt first (recursion through lineage).
    const [runs1, runs2] = [join(c.tmp, 'chain-1'), join(c.tmp, 'chain-2')];
    const chain = bigNext.options(onD).remote(bigResult.options(onD).remote(runs1, 32, 8), runs2);
    // All done and their results left on D: the head (their owner) knows them by location only.
    await until(async () => (await headStats()).located === before + 4, 60_000, 'the four results located on D');
    expect([runsIn(runs), runsIn(runs0)]).toEqual([[d.ready.nodeId], [d.ready.nodeId]]);
    d.proc.kill('SIGKILL');
    await until(async () => (await nodes()).find((x) => x.nodeId === d.ready.nodeId)?.alive === false, 30_000, 'D declared dead');
    // Before lineage reconstruction: ObjectLostError (D held the only copy).
    const buf = await get(big, { timeout: 60 });
    expect(sha(buf)).toBe(sha(lcgBytes(32, 5)));
    const again = runsIn(runs);
    expect(again).toHaveLength(2);
    expect(again[1]).not.toBe(d.ready.nodeId);
    const chained = await get(chain, { timeout: 60 });
    expect(sha(chained)).toBe(sha(lcgBytes(32, 8).map((x) => (x + 1) & 0xff)));
    expect([runsIn(runs1).length, runsIn(runs2).length]).toEqual([2, 2]);
    expect((await headStats()).lineage.rebuilds).toBe(3);
    const err = await get(big0, { timeout: 60 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ObjectLostError);
    expect((err as ObjectLostError).objectId).toBe(big0.id);
    expect((err as Error).message).toContain(`node ${d.ready.nodeId} died`);
    expect((err as Error).message).toMatch(/not rebuilt: it was made by task bigResult \(t\S+\), which has no retries left/);
    expect(runsIn(runs0)).toHaveLength(1);
  }, 150_000);

  it("E dies while C pulls E's 32 MiB result (owned by the head) for a task: C waits for it from the owner, which rebuilds it", async () => {
    // E serves one chunk, then stops sending (test hook): C's pull is in progress when E is killed.
    const e = await c.addNode({ numCpus: 1, env: { TSRAY_TEST_PULL_PAUSE_AFTER_CHUNKS: '1' } });
    const onE = { schedulingStrategy: { type: 'NODE_AFFINITY' as const, nodeId: e.ready.nodeId, soft: true } };
    await until(async () => (await get(stage.options(onE).remote('x', 'probe', '')))[1] === e.ready.nodeId, 30_000, 'a probe task run on E');
    const stats = async (node: string) => (await listTransferStats()).find((s) => s.nodeId === node)!;
    const head = c.head.ready.nodeId;
    const cNode = third.ready.nodeId;
    const before = (await stats(head)).located;
    const runs = join(c.tmp, 'big-runs-e');
    const big = bigResult.options(onE).remote(runs, 32, 7);
    await until(async () => (await stats(head)).located === before + 1, 60_000, 'the result located on E');
    const pullsBefore = (await stats(cNode)).pulls.pullsStarted;
    const digest = shaTask.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: cNode, soft: false } }).remote(big);
    await until(async () => (await stats(cNode)).pulls.pullsStarted > pullsBefore, 30_000, 'C pulling from E');
    e.proc.kill('SIGKILL');
    await until(async () => (await nodes()).find((x) => x.nodeId === e.ready.nodeId)?.alive === false, 30_000, 'E declared dead');
    // Before: C found no holder left and failed the task's argument with ObjectLostError.
    const [hex, len, where] = await get(digest, { timeout: 60 });
    expect([hex, len, where]).toEqual([sha(lcgBytes(32, 7)), 32 * 1024 * 1024, cNode]);
    expect(runsIn(runs)).toHaveLength(2);
  }, 150_000);

  it('B dies: a 3-stage pipeline on B still ends right (last stage re-run on C); a ref B never sent is ObjectLostError naming it', async () => {
    const onB = { schedulingStrategy: { type: 'NODE_AFFINITY' as const, nodeId: b.ready.nodeId, soft: true } };
    const s1 = stage.options(onB).remote('x', 's1', '');
    const s2 = stage.options(onB).remote(s1, 's2', '');
    expect((await get([s1, s2])).map((r) => r[1])).toEqual([b.ready.nodeId, b.ready.nodeId]);
    const g = gate();
    const s3 = stage.options(onB).remote(s2, 's3', g);
    // A ref to a task of B's own (B owns its lineage), still running when B dies.
    const maker = RefMakerActor.remote();
    const [inner] = await get(maker.taskRef.remote(gate(), 'never'));
    await until(
      async () => (await nodes()).find((x) => x.nodeId === b.ready.nodeId)!.resourcesAvailable['CPU'] === 0,
      30_000,
      's3 and the inner task running on B',
    );
    b.proc.kill('SIGKILL');
    await until(async () => (await nodes()).find((x) => x.nodeId === b.ready.nodeId)?.alive === false, 30_000, 'B declared dead');
    writeFileSync(g, '');
    const [out, where] = await get(s3, { timeout: 60 });
    expect(out).toBe('x>s1>s2>s3');
    expect(where).not.toBe(b.ready.nodeId);
    const err = await get(inner, { timeout: 60 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ObjectLostError);
    expect((err as ObjectLostError).objectId).toBe(inner.id);
    expect((err as Error).message).toContain(`node ${b.ready.nodeId} died`);
    expect((err as Error).message).toMatch(/made by task t\S+, owned by that node.*not rebuilt/);
  }, 120_000);
});
