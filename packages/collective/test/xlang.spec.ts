/**
 * Python ranks (tsray.collective, numpy and torch CPU tensors) alone and mixed with TypeScript ranks in
 * one group: every op for world sizes 2, 3, 4 and 8, inline and object-store sizes, results equal to
 * the same reference on both sides; a killed Python rank fails the collective on the TypeScript ranks.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, init, kill, python, shutdown, type ActorHandle } from '@tsray/core';
import { createGroup, destroyGroup } from '@tsray/collective';
import { RemoteTsRank, type Job, type TsRank } from './fixtures/ranks.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

interface PyRankApi {
  pid(): number;
  init(world: number, rank: number, group: string): void;
  run(job: Job & { torch?: boolean }, world: number): string | null;
  allreduce_catch(n: number, group: string): { name: string; rank?: number; message: string };
}
const PyRank = python.actor<PyRankApi>('collective_ranks:PyRank', { numCpus: 0 });

beforeAll(async () => {
  process.env['PYTHONPATH'] = `${fileURLToPath(new URL('./fixtures/py', import.meta.url))}:${repo}python`;
  await init({ numCpus: 16, objectStoreMemory: 512 * 1024 * 1024, python: `${repo}.venv/bin/python`, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

type AnyRank = ActorHandle<TsRank> | ActorHandle<PyRankApi>;
let seq = 0;

/** Ranks by language pattern: 'p' Python, 't' TypeScript, in rank order. */
async function group(pattern: string): Promise<{ actors: AnyRank[]; name: string }> {
  const actors: AnyRank[] = [...pattern].map((c, r) => (c === 'p' ? PyRank.remote(r) : RemoteTsRank.options({ numCpus: 0 }).remote(r)));
  const name = `x${++seq}`;
  await createGroup(actors, { name });
  return { actors, name };
}

function runAll(actors: AnyRank[], job: Job & { torch?: boolean }): Promise<(string | null)[]> {
  return get(actors.map((a) => (a as ActorHandle<TsRank>).run.remote(job, actors.length)));
}

describe.each(['pp', 'tpt', 'pptt', 'ptptptpt'])('ranks %s (p = Python, t = TypeScript)', (pattern) => {
  const world = pattern.length;
  let actors: AnyRank[];
  let name: string;
  beforeAll(async () => {
    ({ actors, name } = await group(pattern));
  });
  afterAll(async () => {
    await destroyGroup(name);
    for (const a of actors) kill(a);
  });

  it.each([1, 1000, 300_007])('every op over %i elements equals the reference', async (n) => {
    const ok = Array(world).fill(null);
    for (const op of ['sum', 'mean', 'min', 'max'] as const) {
      expect(await runAll(actors, { kind: 'allreduce', dtype: 'float32', n, op, group: name }), op).toEqual(ok);
    }
    expect(await runAll(actors, { kind: 'allreduce', dtype: 'int32', n, op: 'mean', group: name })).toEqual(ok);
    expect(await runAll(actors, { kind: 'allgather', dtype: 'float64', n, group: name })).toEqual(ok);
    expect(await runAll(actors, { kind: 'reducescatter', dtype: 'float32', n, op: 'sum', group: name })).toEqual(ok);
    expect(await runAll(actors, { kind: 'broadcast', dtype: 'float32', n, srcRank: world - 1, group: name })).toEqual(ok);
    expect(await runAll(actors, { kind: 'barrier', dtype: 'float32', n: 0, group: name })).toEqual(ok);
  });
});

it('Python ranks allreduce CPU torch tensors in place', async () => {
  const { actors, name } = await group('pp');
  expect(await runAll(actors, { kind: 'allreduce', dtype: 'float32', n: 300_007, op: 'sum', group: name, torch: true })).toEqual([null, null]);
  await destroyGroup(name);
  for (const a of actors) kill(a);
});

it('Python ranks that join with init_collective_group(world_size, rank, name)', async () => {
  const name = 'imperative';
  const g = await createGroup(3, { name });
  const actors = [PyRank.remote(0), PyRank.remote(1), PyRank.remote(2)];
  await get(actors.map((a, r) => a.init.remote(3, r, name)));
  expect(await get(actors.map((a) => a.run.remote({ kind: 'allreduce', dtype: 'float32', n: 300_007, op: 'sum', group: name }, 3)))).toEqual([
    null,
    null,
    null,
  ]);
  g.destroy();
  for (const a of actors) kill(a);
});

it('a Python rank killed mid-allreduce fails it on the TypeScript and Python ranks with the rank named', { timeout: 120_000 }, async () => {
  const { actors, name } = await group('tpp');
  const pid = await get((actors[1] as ActorHandle<PyRankApi>).pid.remote());
  const others = [
    (actors[0] as ActorHandle<TsRank>).allreduceCatch.remote(300_007, name),
    (actors[2] as ActorHandle<PyRankApi>).allreduce_catch.remote(300_007, name),
  ];
  process.kill(pid, 'SIGKILL');
  for (const e of await get(others)) {
    expect(e.name).toBe('CollectiveRankDiedError');
    expect(e.rank).toBe(1);
    expect(e.message).toMatch(/rank 1 died/);
  }
  await destroyGroup(name);
  kill(actors[0]!);
  kill(actors[2]!);
});
