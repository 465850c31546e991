/**
 * A rank killed (SIGKILL) while the others are in an allreduce: every other rank gets
 * CollectiveRankDiedError naming it (no hang), and the group re-forms once the actor has restarted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { get, init, kill, shutdown } from '@tsray/core';
import { createGroup, destroyGroup } from '@tsray/collective';
import { RemoteTsRank } from './fixtures/ranks.js';

beforeAll(async () => {
  await init({ numCpus: 8, objectStoreMemory: 256 * 1024 * 1024, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

it('a rank killed mid-allreduce fails it on every rank with CollectiveRankDiedError; the group re-forms after the restart', { timeout: 120_000 }, async () => {
  const actors = Array.from({ length: 4 }, (_, r) => RemoteTsRank.options({ numCpus: 0, maxRestarts: 1 }).remote(r));
  await createGroup(actors, { name: 'fail' });
  const victim = 2;
  const pid = await get(actors[victim]!.pid.remote());
  const n = 300_007; // the object-store path
  // The victim is busy before its allreduce; the others are in it, waiting for the victim.
  const busy = actors[victim]!.busyThenAllreduce.remote(600_000, n, 'fail');
  const others = actors.filter((_, r) => r !== victim).map((a) => a.allreduceCatch.remote(n, 'fail'));
  process.kill(pid, 'SIGKILL');
  await expect(get(busy)).rejects.toThrow();
  const errors = await get(others);
  for (const e of errors) {
    expect(e.name).toBe('CollectiveRankDiedError');
    expect(e.rank).toBe(victim);
    expect(e.message).toMatch(/rank 2 died/);
  }
  // The victim restarted (maxRestarts: 1); every rank calls the next collective: the group re-forms.
  const restartedPid = await get(actors[victim]!.pid.remote());
  expect(restartedPid).not.toBe(pid);
  expect(await get(actors.map((a) => a.run.remote({ kind: 'allreduce', dtype: 'float32', n: 300_007, op: 'sum', group: 'fail' }, 4)))).toEqual([
    null,
    null,
    null,
    null,
  ]);
  await destroyGroup('fail');
  for (const a of actors) kill(a);
});
