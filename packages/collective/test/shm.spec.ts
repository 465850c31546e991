/**
 * The shared-memory data path of a group of TypeScript ranks on one node (`shm-segment.ts`,
 * `shm-allreduce.ts`): the group uses it, leaves nothing in /dev/shm once formed, and its failures are
 * typed and shared by every rank — mismatched calls, a timeout naming the missing rank — after which the
 * group re-forms (a new segment) at the next collective. (A rank killed mid-allreduce: failure.spec.ts.)
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { get, init, kill, listActors, shutdown, type ActorHandle } from '@tsray/core';
import { COLLECTIVE_NAMESPACE, coordinatorName, createGroup, destroyGroup } from '@tsray/collective';
import { RemoteTsRank, type TsRank } from './fixtures/ranks.js';

beforeAll(async () => {
  await init({ numCpus: 8, objectStoreMemory: 256 * 1024 * 1024, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

const LARGE = 300_007;

async function ranks(world: number, name: string): Promise<ActorHandle<TsRank>[]> {
  const actors = Array.from({ length: world }, (_, r) => RemoteTsRank.options({ numCpus: 0 }).remote(r));
  await createGroup(actors, { name });
  return actors;
}

const allreduce = (actors: ActorHandle<TsRank>[], group: string, n = LARGE) =>
  get(actors.map((a) => a.run.remote({ kind: 'allreduce', dtype: 'float32', n, op: 'sum', group }, actors.length)));

it('a group of TypeScript ranks on one node allreduces in a shared-memory segment, unlinked once every rank mapped it', async () => {
  const actors = await ranks(4, 'shm');
  expect(await get(actors.map((a) => a.transport.remote('shm')))).toEqual(['shm', 'shm', 'shm', 'shm']);
  expect(await allreduce(actors, 'shm')).toEqual([null, null, null, null]);
  expect(await allreduce(actors, 'shm', 1)).toEqual([null, null, null, null]);
  expect(await get(actors.map((a) => a.run.remote({ kind: 'barrier', dtype: 'float32', n: 0, group: 'shm' }, 4)))).toEqual([null, null, null, null]);
  const coord = (await listActors()).find((a) => a.name === coordinatorName('shm') && a.namespace === COLLECTIVE_NAMESPACE && a.pid !== 0);
  expect(coord?.pid).toBeGreaterThan(0);
  expect(readdirSync('/dev/shm').filter((f) => f.startsWith(`tsray-${coord!.pid}-`))).toEqual([]);
  await destroyGroup('shm');
  for (const a of actors) kill(a);
});

it('mismatched allreduce lengths fail on every rank with CollectiveUsageError; the group re-forms', async () => {
  const actors = await ranks(3, 'shm-mismatch');
  const errors = await get(actors.map((a, r) => a.allreduceCatch.remote(r === 1 ? LARGE + 1 : LARGE, 'shm-mismatch')));
  for (const e of errors) {
    expect(e.name).toBe('CollectiveUsageError');
    expect(e.message).toMatch(/collective group 'shm-mismatch'/);
  }
  expect(await allreduce(actors, 'shm-mismatch')).toEqual([null, null, null]);
  expect(await get(actors.map((a) => a.transport.remote('shm-mismatch')))).toEqual(['shm', 'shm', 'shm']);
  await destroyGroup('shm-mismatch');
  for (const a of actors) kill(a);
});

it('a rank that never calls fails the others with CollectiveTimeoutError naming it; the group re-forms', async () => {
  const actors = await ranks(3, 'shm-timeout');
  expect(await allreduce(actors, 'shm-timeout')).toEqual([null, null, null]);
  const errors = await get(actors.slice(0, 2).map((a) => a.allreduceCatch.remote(LARGE, 'shm-timeout', 500)));
  for (const e of errors) {
    expect(e.name).toBe('CollectiveTimeoutError');
    expect(e.message).toMatch(/waiting for rank\(s\) 2/);
  }
  // The late rank's allreduce finds the segment failed: it gets the typed error too, then all re-form.
  expect((await get(actors[2]!.allreduceCatch.remote(LARGE, 'shm-timeout', 500))).name).toBe('CollectiveTimeoutError');
  expect(await allreduce(actors, 'shm-timeout')).toEqual([null, null, null]);
  await destroyGroup('shm-timeout');
  for (const a of actors) kill(a);
});
