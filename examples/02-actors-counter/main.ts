/**
 * The seed's Counter actor, in TypeScript.
 *
 *   @ray.remote
 *   class Counter:
 *       def __init__(self): self.value = 0
 *       def increment(self):
 *           time.sleep(1); self.value += 1; print(f'counter: {self.value}'); return self.value
 *       def get_counter(self): return self.value
 *   c = Counter.remote()
 *   for _ in range(10):
 *       print(f'scheduler: {_}'); c.increment.remote()
 *   print(ray.get(c.get_counter.remote()))
 *
 * Output: scheduler: 0..9 at once, then "(Counter pid=N) counter: 1" ... "counter: 10" a second apart
 * (the actor runs calls in submission order, in its own process), then 10.
 *
 * Run: npx tsx examples/02-actors-counter/main.ts
 */
import { actor, get, init, isMain, shutdown } from '@tsray/core';

/** A blocking sleep: the seed's time.sleep(1) (the actor's calls run one at a time anyway). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class Counter {
  private value = 0;

  increment(): number {
    sleepSync(Number(process.env['COUNTER_SLEEP_MS'] ?? 1000));
    this.value += 1;
    console.log(`counter: ${this.value}`);
    return this.value;
  }

  getCounter(): number {
    return this.value;
  }
}

export const RemoteCounter = actor(Counter);

if (isMain(import.meta)) {
  await init();
  const c = RemoteCounter.remote();
  for (let i = 0; i < 10; i++) {
    console.log(`scheduler: ${i}`);
    c.increment.remote();
  }
  console.log(await get(c.getCounter.remote()));
  await shutdown();
}
