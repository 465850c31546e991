/**
 * Group formation races: a rank's first collective may run before its group is visible, and a driver may
 * drop `createGroup`'s result (under CPU load, collective.spec's 64 MiB case failed with "no such group"
 * when the coordinator, whose only handle was that dropped result, was collected). Each test forces the
 * ordering: the group is created only after every rank has missed it; the driver's handle is collected
 * (full GCs) before the ranks look the group up.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { get, init, kill, listActors, shutdown } from '@tsray/core';
import { COLLECTIVE_NAMESPACE, coordinatorName, createGroup, destroyGroup } from '@tsray/collective';
import { RemoteTsRank } from './fixtures/ranks.js';

beforeAll(async () => {
  await init({ numCpus: 8, objectStoreMemory: 256 * 1024 * 1024, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

const LARGE = 300_007; // the object-store path

/** Full GCs with a macrotask between them, so finalizers (handle releases) run and reach the node. */
async function collectGarbage(rounds = 10): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc (see vitest.config.mts)');
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

it('a rank whose first collective runs before the group exists waits for it', async () => {
  const actors = Array.from({ length: 3 }, (_, r) => RemoteTsRank.options({ numCpus: 0 }).remote(r));
  const job = { kind: 'allreduce', dtype: 'float32', n: LARGE, op: 'sum', group: 'late' } as const;
  const results = actors.map((a) => a.runBeforeGroup.remote(job, 3));
  // Every rank has looked the group up and missed it before it is created.
  await get(actors.map((a) => a.groupMissingSeen.remote()));
  const g = await createGroup(actors, { name: 'late' });
  expect(await get(results)).toEqual([null, null, null]);
  g.destroy();
  for (const a of actors) kill(a);
});

it('a collective on a group that never appears fails with CollectiveGroupNotFoundError after its timeoutMs', async () => {
  const a = RemoteTsRank.options({ numCpus: 0 }).remote(0);
  const err = await get(a.allreduceCatch.remote(LARGE, 'never', 300));
  expect(err.name).toBe('CollectiveGroupNotFoundError');
  expect(err.message).toMatch(/collective group 'never': no such group \(waited 300 ms/);
  kill(a);
});

it("the group's coordinator outlives createGroup's dropped result until destroyGroup", async () => {
  const actors = Array.from({ length: 2 }, (_, r) => RemoteTsRank.options({ numCpus: 0 }).remote(r));
  await createGroup(actors, { name: 'dropped' }); // the result (and the driver's coordinator handle) dropped
  await collectGarbage();
  const coordinator = async () => (await listActors()).find((x) => x.name === coordinatorName('dropped') && x.namespace === COLLECTIVE_NAMESPACE);
  expect((await coordinator())?.state).toBe('ALIVE');
  expect(await get(actors.map((a) => a.run.remote({ kind: 'allreduce', dtype: 'float32', n: LARGE, op: 'sum', group: 'dropped' }, 2)))).toEqual([null, null]);
  await destroyGroup('dropped');
  for (const a of actors) kill(a);
});
