/**
 * Head node of the seed's design: starts the cluster, an engine actor, and the CPU scheduler actor
 * registered as name "scheduler" in namespace "head"; then keeps running (Ctrl-C stops it).
 *
 * Run: npx tsx examples/07-cluster/head.ts     (then, in another terminal: npx tsx examples/07-cluster/worker.ts)
 */
import { clusterResources, get, init, isMain, shutdown } from '@tsray/core';
import { RemoteEchoEngine, RemoteVllmScheduler } from './actors.js';

if (isMain(import.meta)) {
  const info = await init({ address: 'local', namespace: 'head', numCpus: Number(process.env['HEAD_CPUS'] ?? 4) });
  console.log('nodes:', JSON.stringify([{ NodeID: info.nodeId, Alive: true, Resources: clusterResources() }]));
  const engine = RemoteEchoEngine.remote();
  const scheduler = RemoteVllmScheduler.options({ name: 'scheduler', namespace: 'head', numCpus: 1 }).remote(engine);
  const prompts = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is'];
  console.log('Input Text:', JSON.stringify(prompts));
  console.log('Generated Text:', JSON.stringify(await get(engine.generate.remote(prompts, { temperature: 0.8, topP: 0.95 }))));
  await get(scheduler.schedule.remote(['warm-up']));
  console.log(`head ready at ${info.address} (scheduler actor "scheduler" in namespace "head")`);
  const stop = async () => {
    await shutdown();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Keep the handles alive while the head runs (the seed's `while True: pass`).
  setInterval(() => void [engine, scheduler], 60_000);
}
