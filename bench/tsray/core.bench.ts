/**
 * tsray side of the core benchmarks: the single-client and actor metrics of Ray's microbenchmark with the
 * workloads, multipliers and timing of Ray 2.58's `python/ray/_private/ray_perf.py` (twin:
 * bench/ray/ray_perf_core.py; timing: ./timeit.ts, a port of Ray's timeit).
 *
 * Usage (repo root, after `npx nx run-many -t build`):
 *   npx tsx bench/tsray/core.bench.ts [--quick] [--metrics a,b,c] [--list]
 *
 * Workers import this module to find `smallValue`, the actor classes and `work`, so remote
 * functions and actor classes stay at top level and all main code sits behind
 * `isMain(import.meta)`; nothing heavy may run at import time.
 *
 * Adding a metric: one `registry.metric(...)` call below (and its twin in ray_perf_core.py).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { actor, get, isMain, kill, placementGroup, put, python, remote, removePlacementGroup, wait, type ActorHandle } from '@tsray/core';
import { benchMain, Registry } from './harness.js';
import { startHelper } from './helper-process.js';

/** ray_perf.py's `small_value` task (Ray returns `b"ok"`). */
const smallValue = remote(function smallValue() {
  return 'ok';
});

/** Submits `n` smallValue tasks (Ray: `[small_value.remote() for _ in range(n)]`). */
function submitSmallValues(n: number): ReturnType<typeof smallValue.remote>[] {
  const refs: ReturnType<typeof smallValue.remote>[] = [];
  for (let i = 0; i < n; i++) refs.push(smallValue.remote());
  return refs;
}

// ---- ray_perf.py's actor classes -------------------------------------------------------------
// Ray's sync methods that block in `ray.get(...)` return get()'s promise here (JS has no blocking
// get); a class with no `async` method stays a sync actor, so such a call still runs alone.

/** ray_perf.py's `Actor` (`@ray.remote(num_cpus=0)`). */
class Actor {
  smallValue(): string {
    return 'ok';
  }

  smallValueArg(_x: unknown): string {
    return 'ok';
  }

  smallValueBatch(n: number): Promise<void> {
    return get(submitSmallValues(n)).then(() => undefined);
  }
}
export const RemoteActor = actor(Actor, { numCpus: 0 });

/** ray_perf.py's `AsyncActor` (`@ray.remote`: async methods make it an async actor). */
class AsyncActor {
  async smallValue(): Promise<string> {
    return 'ok';
  }

  async smallValueWithArg(_x: unknown): Promise<string> {
    return 'ok';
  }

  async smallValueBatch(n: number): Promise<void> {
    // Ray: `await asyncio.wait([...])`, which waits for all of them without raising.
    await Promise.allSettled(submitSmallValues(n).map((r) => get(r)));
  }
}
export const RemoteAsyncActor = actor(AsyncActor);

/** ray_perf.py's `Client` (`@ray.remote(num_cpus=0)`): drives calls on one or more server actors. */
class Client {
  readonly servers: ActorHandle<Actor>[];

  constructor(servers: ActorHandle<Actor> | ActorHandle<Actor>[]) {
    this.servers = Array.isArray(servers) ? servers : [servers];
  }

  smallValueBatch(n: number): Promise<void> {
    const results: ReturnType<ActorHandle<Actor>['smallValue']['remote']>[] = [];
    for (const s of this.servers) for (let i = 0; i < n; i++) results.push(s.smallValue.remote());
    return get(results).then(() => undefined);
  }

  smallValueBatchArg(n: number): Promise<void> {
    const x = put(0);
    const results: ReturnType<ActorHandle<Actor>['smallValueArg']['remote']>[] = [];
    for (const s of this.servers) for (let i = 0; i < n; i++) results.push(s.smallValueArg.remote(x));
    return get(results).then(() => undefined);
  }
}
export const RemoteClient = actor(Client, { numCpus: 0 });

/** ray_perf.py's `n` and `m` of the n:n metric (its `work` closes over them, and over `n_cpu`). */
const NN_CALLS = 5000;
const NN_TASKS = 4;
/** `multiprocessing.cpu_count() // 2`: the number of server actors of the 1:n and n:n metrics. */
const N_CPU = Math.floor(os.cpus().length / 2);

/** ray_perf.py's `work` task of "n:n actor calls async" (a closure inside main() there). */
const work = remote(async function work(actors: ActorHandle<Actor>[]): Promise<void> {
  const refs: ReturnType<ActorHandle<Actor>['smallValue']['remote']>[] = [];
  for (let i = 0; i < NN_CALLS; i++) refs.push(actors[i % N_CPU]!.smallValue.remote());
  await get(refs);
});

/** Ends a metric's actors when it is done (Ray: the handles go out of scope when it returns). */
function killAll(handles: ActorHandle<unknown>[]): void {
  for (const h of handles) kill(h);
}

/** ray_perf.py's large array: `np.zeros(100 * 1024 * 1024, dtype=np.int64)` (800 MiB). */
const LARGE_ELEMENTS = 100 * 1024 * 1024;
/** ray_perf.py counts one 800 MiB put as `8 * 0.1` "GB". */
const LARGE_MULTIPLIER = 8 * 0.1;

export const registry = new Registry();
registry.session('local', null);

// ---- metrics, in ray_perf.py's order ---------------------------------------------------------

registry.metric('single_client_get_calls', {}, async (t) => {
  const value = put(0);
  return t(() => get(value));
});

registry.metric('single_client_put_calls', {}, async (t) => {
  return t(() => {
    put(0);
  });
});

registry.metric(
  'single_client_put_gigabytes',
  {
    unit: 'GB/s',
    note: 'each ref is dropped with ref.release(): what CPython refcounting does when ray.put(arr) is discarded (JS frees only at GC otherwise)',
  },
  async (t) => {
    const arr = new BigInt64Array(LARGE_ELEMENTS);
    return t(() => {
      put(arr).release();
    }, LARGE_MULTIPLIER);
  },
);

registry.metric('single_client_get_gigabytes', { unit: 'GB/s', note: 'not in ray_perf.py: get of the put_gigabytes array, same multiplier' }, async (t) => {
  const ref = put(new BigInt64Array(LARGE_ELEMENTS));
  return t(() => get(ref), LARGE_MULTIPLIER);
});

registry.metric('single_client_tasks_and_get_batch', {}, async (t) => {
  return t(async () => {
    await get(submitSmallValues(1000));
    return 0;
  });
});

registry.metric('single_client_wait_1k_refs', {}, async (t) => {
  return t(async () => {
    const numObjs = 1000;
    let notReady = submitSmallValues(numObjs);
    for (let i = 0; i < numObjs; i++) {
      ({ notReady } = await wait(notReady, { numReturns: 1 }));
    }
  });
});

registry.metric('single_client_tasks_sync', {}, async (t) => {
  return t(() => get(smallValue.remote()));
});

registry.metric('single_client_tasks_async', {}, async (t) => {
  return t(() => get(submitSmallValues(1000)), 1000);
});

// Actor metrics: each creates its actors as ray_perf.py does and kills them when done.

registry.metric('1_1_actor_calls_sync', {}, async (t) => {
  const a = RemoteActor.remote();
  try {
    return await t(() => get(a.smallValue.remote()));
  } finally {
    killAll([a]);
  }
});

registry.metric('1_1_actor_calls_async', {}, async (t) => {
  const a = RemoteActor.remote();
  try {
    return await t(() => {
      const refs: ReturnType<typeof a.smallValue.remote>[] = [];
      for (let i = 0; i < 1000; i++) refs.push(a.smallValue.remote());
      return get(refs);
    }, 1000);
  } finally {
    killAll([a]);
  }
});

registry.metric(
  '1_1_actor_calls_concurrent',
  {
    note: 'Ray runs the sync method on 16 threads (max_concurrency=16); a JS sync method cannot interleave, so tsray runs these calls one at a time (maxConcurrency: 16 passed as in Ray)',
  },
  async (t) => {
    const a = RemoteActor.options({ maxConcurrency: 16 }).remote();
    try {
      return await t(() => {
        const refs: ReturnType<typeof a.smallValue.remote>[] = [];
        for (let i = 0; i < 1000; i++) refs.push(a.smallValue.remote());
        return get(refs);
      }, 1000);
    } finally {
      killAll([a]);
    }
  },
);

registry.metric(
  '1_n_actor_calls_async',
  { note: "the Client actor's method returns get()'s promise where Ray's blocks its thread in ray.get; it stays a sync actor" },
  async (t) => {
    const n = 5000;
    const actors: ActorHandle<Actor>[] = [];
    for (let i = 0; i < N_CPU; i++) actors.push(RemoteActor.remote());
    const client = RemoteClient.remote(actors);
    try {
      return await t(() => get(client.smallValueBatch.remote(n)), n * actors.length);
    } finally {
      killAll([client, ...actors]);
    }
  },
);

registry.metric(
  'n_n_actor_calls_async',
  { note: "the work task awaits get() where Ray's blocks in ray.get; its n and n_cpu are module constants where Ray's closure captures them" },
  async (t) => {
    const a: ActorHandle<Actor>[] = [];
    for (let i = 0; i < N_CPU; i++) a.push(RemoteActor.remote());
    try {
      return await t(() => {
        const refs: ReturnType<typeof work.remote>[] = [];
        for (let i = 0; i < NN_TASKS; i++) refs.push(work.remote(a));
        return get(refs);
      }, NN_TASKS * NN_CALLS);
    } finally {
      killAll(a);
    }
  },
);

registry.metric('1_1_async_actor_calls_async', {}, async (t) => {
  const a = RemoteAsyncActor.remote();
  try {
    return await t(() => {
      const refs: ReturnType<typeof a.smallValue.remote>[] = [];
      for (let i = 0; i < 1000; i++) refs.push(a.smallValue.remote());
      return get(refs);
    }, 1000);
  } finally {
    killAll([a]);
  }
});

// ---- local references (no tsray runtime) -----------------------------------------------------

registry.metric(
  'memcpy_gigabytes',
  {
    unit: 'GB/s',
    session: 'local',
    note: 'reference: Buffer.copy of 800 MiB, heap to heap, both sides pre-faulted; same multiplier as put_gigabytes',
  },
  async (t) => {
    const bytes = LARGE_ELEMENTS * 8;
    // Non-zero source so reads come from real pages (an untouched calloc'd buffer would read the
    // shared zero page); destination written once so no page faults are timed.
    const src = Buffer.alloc(bytes, 1);
    const dst = Buffer.alloc(bytes, 2);
    return t(() => {
      src.copy(dst);
    }, LARGE_MULTIPLIER);
  },
);

registry.metric(
  'memcpy_zeros_gigabytes',
  {
    unit: 'GB/s',
    session: 'local',
    note: 'reference: as memcpy_gigabytes but from an untouched zero-filled array, the source put_gigabytes uses (as np.zeros in Ray): reads hit the shared zero page, so this is far above real memcpy',
  },
  async (t) => {
    const src = Buffer.from(new BigInt64Array(LARGE_ELEMENTS).buffer);
    const dst = Buffer.alloc(LARGE_ELEMENTS * 8, 2);
    return t(() => {
      src.copy(dst);
    }, LARGE_MULTIPLIER);
  },
);

// The floor of any sync call on one node: one raw ZeroMQ round trip over ipc to another process
// (issue #16: sync task and actor call latency <= 1.5x this; bench/report.ts prints the ratios).
registry.metric(
  'zmq_ipc_round_trip',
  {
    note: 'baseline: a 16-byte message from a zeromq 6 DEALER in this process to a ROUTER in a second Node process (bench/tsray/zmq-echo.mjs) over ipc and back, one at a time; round trips/s',
  },
  async (t) => {
    const zmq = await import('zeromq');
    const dir = mkdtempSync(join(os.tmpdir(), 'tsray-echo-'));
    const echo = startHelper<{ address: string }>(new URL('./zmq-echo.mjs', import.meta.url), [dir]);
    const dealer = new zmq.Dealer();
    try {
      const { address } = await echo.ready;
      dealer.connect(address);
      const msg = Buffer.alloc(16, 7);
      return await t(async () => {
        await dealer.send(msg);
        const [back] = await dealer.receive();
        if (back!.length !== msg.length) throw new Error(`zmq-echo sent back ${back!.length} bytes, want ${msg.length}`);
      });
    } finally {
      dealer.close();
      await echo.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// TypeScript driver -> Python actor (tsray's Python workers), the same Actor class as Ray's side.
interface PyActor {
  small_value(): Buffer;
}
const PyBenchActor = python.actor<PyActor>('tsray_bench_actor:Actor', { numCpus: 0 });

registry.metric('python_actor_calls_sync', { note: 'tsray: TypeScript driver -> Python actor (bench/tsray/tsray_bench_actor.py)' }, async (t) => {
  const a = PyBenchActor.remote();
  const r = await t(() => get(a.small_value.remote()));
  kill(a);
  return r;
});

registry.metric('python_actor_calls_async', { note: 'tsray: TypeScript driver -> Python actor, batches of 1000' }, async (t) => {
  const a = PyBenchActor.remote();
  const r = await t(async () => {
    await get(Array.from({ length: 1000 }, () => a.small_value.remote()));
  }, 1000);
  kill(a);
  return r;
});

const NUM_PGS = 100;
const NUM_BUNDLES = 1;
registry.session('placement_groups', { resources: { custom: 100 } });

registry.metric('placement_group_create_removal', { session: 'placement_groups' }, async (t) => {
  return t(async () => {
    const pgs = Array.from({ length: NUM_PGS }, () => placementGroup(Array.from({ length: NUM_BUNDLES }, () => ({ custom: 0.001 }))));
    for (const pg of pgs) await pg.wait(30);
    // Include placement group removal here to clean up (as ray_perf.py does).
    for (const pg of pgs) removePlacementGroup(pg);
  }, NUM_PGS);
});

if (isMain(import.meta)) {
  process.env['PYTHONPATH'] = [new URL('.', import.meta.url).pathname, process.env['PYTHONPATH']].filter(Boolean).join(':');
  await benchMain(registry);
}
