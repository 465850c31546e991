// 16 tasks that need the `slot` resource only worker nodes have: they wait until the head's
// autoscaler has added enough workers (2 of `{CPU: 4, slot: 8}`), then run there.
import { get, init, isMain, remote, shutdown } from '@tsray/core';

export const work = remote(function work(i: number) {
  return { i, square: i * i, pid: process.pid };
});

if (isMain(import.meta)) {
  await init({ address: process.env['TSRAY_ADDRESS'] ?? 'auto' });
  const refs = Array.from({ length: 16 }, (_, i) => work.options({ numCpus: 0.5, resources: { slot: 1 } }).remote(i));
  const results = await get(refs);
  console.log(`16 tasks done: sum of squares ${results.reduce((s, r) => s + r.square, 0)} in ${new Set(results.map((r) => r.pid)).size} worker process(es)`);
  await shutdown();
}
