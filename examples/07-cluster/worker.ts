/**
 * A second process (the seed's "worker node", simulated on the same machine): connects to the running
 * cluster, finds the scheduler by name and namespace, and schedules ten inputs.
 *
 * Run: npx tsx examples/07-cluster/worker.ts   (with head.ts running; TSRAY_ADDRESS overrides 'auto')
 */
import { type ActorHandle, ActorNotFoundError, ConnectionError, get, getActor, init, isMain, shutdown } from '@tsray/core';
import type { VllmScheduler } from './actors.js';

if (isMain(import.meta)) {
  try {
    await init({ address: process.env['TSRAY_ADDRESS'] ?? 'auto' });
  } catch (e) {
    if (!(e instanceof ConnectionError)) throw e;
    console.log('ModelServer not found in the cluster');
    console.log(`(${e.message})`);
    process.exit(0);
  }
  const inputs = Array.from({ length: 10 }, (_, i) => `test${i}`);
  let scheduler: ActorHandle<VllmScheduler> | undefined;
  try {
    scheduler = await getActor<VllmScheduler>('scheduler', { namespace: 'head' });
  } catch (e) {
    if (!(e instanceof ActorNotFoundError)) throw e;
  }
  if (scheduler === undefined) {
    console.log('ModelServer not found in the cluster');
  } else {
    const result = await get(scheduler.schedule.remote(inputs));
    console.log(JSON.stringify(result));
  }
  await shutdown();
}
