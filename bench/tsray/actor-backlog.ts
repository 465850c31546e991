/**
 * One actor, a backlog of N calls submitted at once from the driver (N = 10,000, 50,000, 100,000):
 * seconds until all results are back. Measures how the queues on the way (the node's actor call
 * queue, the socket outboxes, the worker's task queue) scale with their length: as arrays they
 * drained in O(n) per element past ~16k entries (V8's large-object space), see packages/core/src/deque.ts.
 * tsray only (Ray has no such queue in the driver); numbers in BENCHMARKS.md "Actor call backlog".
 *
 * Usage (repo root, after `npx nx run-many -t build`): npx tsx bench/tsray/actor-backlog.ts [label]
 */
import { actor, get, init, isMain, shutdown } from '@tsray/core';

/** The smallest stateful actor: each call returns the next count. */
export class Counter {
  private n = 0;

  inc(): number {
    return ++this.n;
  }
}

/** The remote class (workers import this module; it stays at top level). */
export const RemoteCounter = actor(Counter);

if (isMain(import.meta)) {
  const label = process.argv[2] ?? 'tsray';
  await init({ numCpus: 2 });
  const a = RemoteCounter.remote();
  await get(a.inc.remote());
  let expected = 1;
  for (const n of [10_000, 50_000, 100_000]) {
    const t0 = performance.now();
    const last = await get(Array.from({ length: n }, () => a.inc.remote()));
    expected += n;
    if (last[n - 1] !== expected) throw new Error(`actor-backlog: the last call returned ${last[n - 1]}, want ${expected}`);
    console.log(JSON.stringify({ label, calls: n, seconds: Number(((performance.now() - t0) / 1000).toFixed(2)) }));
  }
  await shutdown();
}
