/**
 * 1M queued tasks on one node (Ray's scalability envelope: "1,000,000+ queued tasks on one node",
 * release test single_node.json: 184 s on an m4.16xlarge). Submits N tiny tasks at once on a 1-CPU
 * node, reports submit time, peak memory of the driver, and time until every result is back.
 *
 * Run: npx tsx bench/tsray/queued.bench.ts [N=1000000]
 */
import { get, init, isMain, remote, shutdown } from '@tsray/core';

export const noop = remote(function noop() {
  return 0;
});

if (isMain(import.meta)) {
  const n = Number(process.argv[2] ?? 1_000_000);
  await init({ numCpus: 1, objectStoreMemory: 256 * 1024 * 1024, logToDriver: false });
  await get(noop.remote());
  const mem0 = process.memoryUsage();
  let peakRss = mem0.rss;
  const sample = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  const t0 = performance.now();
  const refs = new Array(n);
  for (let i = 0; i < n; i++) refs[i] = noop.remote();
  const tSubmit = performance.now() - t0;
  const memQueued = process.memoryUsage();
  peakRss = Math.max(peakRss, memQueued.rss);
  const values = await get(refs);
  const tAll = performance.now() - t0;
  clearInterval(sample);
  const mib = (b: number) => Math.round(b / 1048576);
  const out = {
    system: 'tsray',
    metric: 'queued_tasks_1_node',
    tasks: n,
    submit_seconds: +(tSubmit / 1000).toFixed(2),
    total_seconds: +(tAll / 1000).toFixed(2),
    tasks_per_second: Math.round(n / (tAll / 1000)),
    driver_rss_mib_before: mib(mem0.rss),
    driver_rss_mib_all_queued: mib(memQueued.rss),
    driver_peak_rss_mib: mib(peakRss),
    bytes_per_queued_task: Math.round((memQueued.rss - mem0.rss) / n),
    ok: values.length === n && values.every((v) => v === 0),
  };
  console.log(JSON.stringify(out));
  await shutdown();
}
