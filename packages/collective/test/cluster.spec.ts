/**
 * A group spanning two nodes (a head and a node daemon on this machine, real processes): ranks on both
 * nodes, inline and chunked payloads, every op equal to the reference. Allreduce runs in each node's
 * shared-memory segment, the lanes (the l-th rank of each node) combining the nodes' sums over direct rings; the other
 * ops' chunks cross between the nodes inside the coordinator calls (see the package README).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { get, init, kill, shutdown } from '@tsray/core';
import { createGroup, destroyGroup } from '@tsray/collective';
import { RemoteTsRank, type Job } from './fixtures/ranks.js';

/** The part of @tsray/cluster's test harness used here (imported by URL: it is another package's test file). */
interface Harness {
  startHead(spec: object): Promise<unknown>;
  addNode(spec: object): Promise<unknown>;
  attachHere(): void;
  detachHere(): void;
  stop(): Promise<void>;
}
const harness = new URL('../../cluster/test/fixtures/cluster-harness.ts', import.meta.url).href;
const { TestCluster } = (await import(harness)) as { TestCluster: new () => Harness };
const c = new TestCluster();

beforeAll(async () => {
  await c.startHead({ numCpus: 4, resources: { nodeA: 100 }, objectStoreMemory: 256 * 1024 * 1024 });
  await c.addNode({ numCpus: 4, resources: { nodeB: 100 }, objectStoreMemory: 256 * 1024 * 1024 });
  c.attachHere();
  await init({ address: 'auto', logToDriver: false });
}, 60_000);
afterAll(async () => {
  await shutdown();
  c.detachHere();
  await c.stop();
}, 30_000);

it('4 ranks on two nodes: allreduce, allgather, reducescatter, broadcast equal the reference', async () => {
  const actors = [0, 1, 2, 3].map((r) => RemoteTsRank.options({ numCpus: 0, resources: { [r % 2 === 0 ? 'nodeA' : 'nodeB']: 1 } }).remote(r));
  await createGroup(actors, { name: 'two-nodes' });
  const ok = [null, null, null, null];
  const run = (job: Job) => get(actors.map((a) => a.run.remote({ ...job, group: 'two-nodes' }, 4)));
  // Allreduce: each node's ranks reduce in their node's shared-memory segment, the leaders combine.
  expect(await get(actors.map((a) => a.transport.remote('two-nodes')))).toEqual(['shm', 'shm', 'shm', 'shm']);
  // Two lanes: ranks 0 and 2 are node A's first and second rank, 1 and 3 node B's.
  expect(await get(actors.map((a) => a.lane.remote('two-nodes')))).toEqual([0, 0, 1, 1].map((lane) => ({ lane, lanes: 2, nodes: 2 })));
  for (const n of [1000, 300_007]) {
    expect(await run({ kind: 'allreduce', dtype: 'float32', n, op: 'sum' }), `allreduce ${n}`).toEqual(ok);
    expect(await run({ kind: 'allreduce', dtype: 'float64', n, op: 'mean' }), `allreduce mean ${n}`).toEqual(ok);
    expect(await run({ kind: 'allreduce', dtype: 'int32', n, op: 'max' }), `allreduce max ${n}`).toEqual(ok);
    expect(await run({ kind: 'barrier', dtype: 'float32', n: 0 }), 'barrier').toEqual(ok);
    expect(await run({ kind: 'allgather', dtype: 'int32', n }), `allgather ${n}`).toEqual(ok);
    expect(await run({ kind: 'reducescatter', dtype: 'float32', n, op: 'max' }), `reducescatter ${n}`).toEqual(ok);
    expect(await run({ kind: 'broadcast', dtype: 'float32', n, srcRank: 1 }), `broadcast ${n}`).toEqual(ok);
  }
  await destroyGroup('two-nodes');
  for (const a of actors) kill(a);
});

// Uneven nodes: 3 ranks on A, 2 on B, so two lanes and node A's third rank carries none (it waits in its
// node's segment while the lanes exchange the nodes' sums).
it('5 ranks on two nodes (3 + 2): two lanes, allreduce equals the reference', async () => {
  const nodeOf = ['nodeA', 'nodeB', 'nodeA', 'nodeB', 'nodeA'];
  const actors = nodeOf.map((node, r) => RemoteTsRank.options({ numCpus: 0, resources: { [node]: 1 } }).remote(r));
  await createGroup(actors, { name: 'uneven' });
  const ok = actors.map(() => null);
  const run = (job: Job) => get(actors.map((a) => a.run.remote({ ...job, group: 'uneven' }, 5)));
  expect(await get(actors.map((a) => a.lane.remote('uneven')))).toEqual([
    { lane: 0, lanes: 2, nodes: 2 },
    { lane: 0, lanes: 2, nodes: 2 },
    { lane: 1, lanes: 2, nodes: 2 },
    { lane: 1, lanes: 2, nodes: 2 },
    null,
  ]);
  for (const n of [1000, 300_007]) {
    expect(await run({ kind: 'allreduce', dtype: 'float32', n, op: 'sum' }), `allreduce ${n}`).toEqual(ok);
    expect(await run({ kind: 'allreduce', dtype: 'float64', n, op: 'mean' }), `allreduce mean ${n}`).toEqual(ok);
  }
  await destroyGroup('uneven');
  for (const a of actors) kill(a);
});

// The killed rank is node B's lane 0: rank 0 (node A's lane 0) waits for its frames, rank 3 (node B's lane 1)
// for it in node B's segment after its own lane's exchange with rank 2. (The owner's entry of an actor hosted on node B stays ALIVE with pid 0 after the
// host's says DEAD: the coordinator must believe the host.)
it('a lane rank killed mid-allreduce fails it on every rank of both nodes with CollectiveRankDiedError', { timeout: 120_000 }, async () => {
  const actors = [0, 1, 2, 3].map((r) => RemoteTsRank.options({ numCpus: 0, resources: { [r % 2 === 0 ? 'nodeA' : 'nodeB']: 1 } }).remote(r));
  await createGroup(actors, { name: 'two-nodes-fail' });
  const n = 300_007;
  expect(await get(actors.map((a) => a.run.remote({ kind: 'allreduce', dtype: 'float32', n, op: 'sum', group: 'two-nodes-fail' }, 4)))).toEqual([
    null,
    null,
    null,
    null,
  ]);
  const victim = 1;
  const pid = await get(actors[victim]!.pid.remote());
  const busy = actors[victim]!.busyThenAllreduce.remote(600_000, n, 'two-nodes-fail');
  const others = [0, 2, 3].map((r) => actors[r]!.allreduceCatch.remote(n, 'two-nodes-fail'));
  process.kill(pid, 'SIGKILL');
  for (const e of await get(others)) {
    expect(e.name).toBe('CollectiveRankDiedError');
    expect(e.rank).toBe(victim);
  }
  await expect(get(busy)).rejects.toThrow();
  await destroyGroup('two-nodes-fail');
  for (const a of actors) kill(a);
});
