/**
 * tsray side of the core benchmarks: the single-client metrics of Ray's microbenchmark with the
 * workloads, multipliers and timing of Ray 2.58's `python/ray/_private/ray_perf.py` (twin:
 * bench/ray/ray_perf_core.py; timing: ./timeit.ts, a port of Ray's timeit).
 *
 * Usage (repo root, after `npx nx run-many -t build`):
 *   npx tsx bench/tsray/core.bench.ts [--quick] [--metrics a,b,c] [--list]
 *
 * Workers import this module to find `smallValue`, so remote functions stay at top level and all
 * main code sits behind `isMain(import.meta)`; nothing heavy may run at import time.
 *
 * Adding a metric: one `registry.metric(...)` call below (and its twin in ray_perf_core.py).
 */
import { get, isMain, put, remote, wait } from '@tsray/core';
import { benchMain, Registry } from './harness.js';

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

registry.metric(
  'single_client_get_gigabytes',
  { unit: 'GB/s', note: 'not in ray_perf.py: get of the put_gigabytes array, same multiplier' },
  async (t) => {
    const ref = put(new BigInt64Array(LARGE_ELEMENTS));
    return t(() => get(ref), LARGE_MULTIPLIER);
  },
);

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

if (isMain(import.meta)) {
  await benchMain(registry);
}
