"""Ray 2.58 side of the tsray core benchmarks: the single-client and actor metrics of Ray's microbenchmark.

Every workload, multiplier and the timing method follow ``python/ray/_private/ray_perf.py`` of Ray
2.58.0 (the file shipped in the installed wheel; compare with
``bench/.venv/lib/python3.11/site-packages/ray/_private/ray_perf.py``). Metric names are Ray's
names in snake_case (``single client tasks sync`` -> ``single_client_tasks_sync``; the
``(Plasma Store)`` suffix is dropped; ``1:1 actor calls sync`` -> ``1_1_actor_calls_sync``,
``async-actor`` -> ``async_actor``). The remote functions and actor classes below are ray_perf.py's,
verbatim. Metrics run in ray_perf.py's order inside one ``ray.init()``
with default arguments.

Usage (from the repo root, with the bench venv):
    bench/.venv/bin/python bench/ray/ray_perf_core.py [--quick] [--metrics a,b,c] [--list]

Output: one JSON line per metric on stdout, ``{"system":"ray","metric":...,"value":...,"std":...,
"unit":"ops/s"|"GB/s"}``, preceded by one ``"kind":"meta"`` line; progress and Ray's own messages go
to stderr.

Adding a metric: one ``@registry.metric(...)`` function below (and its twin in
bench/tsray/core.bench.ts). Metrics that need other ``ray.init`` arguments declare a session, e.g.
``registry.session("placement_groups", resources={"custom": 100})`` and
``@registry.metric("placement_group_create_removal", session="placement_groups")``.
"""

import asyncio
import multiprocessing
import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network on the bench machine

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import ray  # noqa: E402

from bench_harness import Registry, main  # noqa: E402

registry = Registry()


# ---- remote functions and actors of ray_perf.py (verbatim) ---------------------------------


@ray.remote(num_cpus=0)
class Actor:
    def small_value(self):
        return b"ok"

    def small_value_arg(self, x):
        return b"ok"

    def small_value_batch(self, n):
        ray.get([small_value.remote() for _ in range(n)])


@ray.remote
class AsyncActor:
    async def small_value(self):
        return b"ok"

    async def small_value_with_arg(self, x):
        return b"ok"

    async def small_value_batch(self, n):
        await asyncio.wait([small_value.remote() for _ in range(n)])


@ray.remote(num_cpus=0)
class Client:
    def __init__(self, servers):
        if not isinstance(servers, list):
            servers = [servers]
        self.servers = servers

    def small_value_batch(self, n):
        results = []
        for s in self.servers:
            results.extend([s.small_value.remote() for _ in range(n)])
        ray.get(results)

    def small_value_batch_arg(self, n):
        x = ray.put(0)
        results = []
        for s in self.servers:
            results.extend([s.small_value_arg.remote(x) for _ in range(n)])
        ray.get(results)


@ray.remote
def small_value():
    return b"ok"


# ---- metrics, in ray_perf.py's order ---------------------------------------------------------


@registry.metric("single_client_get_calls")
def single_client_get_calls(timeit):
    value = ray.put(0)

    def get_small():
        ray.get(value)

    return timeit(get_small)


@registry.metric("single_client_put_calls")
def single_client_put_calls(timeit):
    def put_small():
        ray.put(0)

    return timeit(put_small)


@registry.metric("single_client_put_gigabytes", unit="GB/s")
def single_client_put_gigabytes(timeit):
    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)

    def put_large():
        ray.put(arr)

    return timeit(put_large, 8 * 0.1)


@registry.metric(
    "single_client_get_gigabytes",
    unit="GB/s",
    note="not in ray_perf.py: get of the put_gigabytes array, same multiplier",
)
def single_client_get_gigabytes(timeit):
    ref = ray.put(np.zeros(100 * 1024 * 1024, dtype=np.int64))

    def get_large():
        ray.get(ref)

    return timeit(get_large, 8 * 0.1)


@registry.metric("single_client_tasks_and_get_batch")
def single_client_tasks_and_get_batch(timeit):
    def small_value_batch():
        submitted = [small_value.remote() for _ in range(1000)]
        ray.get(submitted)
        return 0

    return timeit(small_value_batch)


@registry.metric("single_client_wait_1k_refs")
def single_client_wait_1k_refs(timeit):
    def wait_multiple_refs():
        num_objs = 1000
        not_ready = [small_value.remote() for _ in range(num_objs)]
        # As ray_perf.py: fetch_local only on the first wait (the raylet keeps the fetch requests).
        fetch_local = True
        for _ in range(num_objs):
            _ready, not_ready = ray.wait(not_ready, fetch_local=fetch_local)
            if fetch_local:
                fetch_local = False

    return timeit(wait_multiple_refs)


@registry.metric("single_client_tasks_sync")
def single_client_tasks_sync(timeit):
    def small_task():
        ray.get(small_value.remote())

    return timeit(small_task)


@registry.metric("single_client_tasks_async")
def single_client_tasks_async(timeit):
    def small_task_async():
        ray.get([small_value.remote() for _ in range(1000)])

    return timeit(small_task_async, 1000)


# Actor metrics. ray_perf.py creates each metric's actors with a plain assignment, so Python's
# refcounting ends the previous metric's actors when the name is rebound; here they end when the
# metric function returns (the handles go out of scope).


@registry.metric("1_1_actor_calls_sync")
def actor_calls_sync(timeit):
    a = Actor.remote()

    def actor_sync():
        ray.get(a.small_value.remote())

    return timeit(actor_sync)


@registry.metric("1_1_actor_calls_async")
def actor_calls_async(timeit):
    a = Actor.remote()

    def actor_async():
        ray.get([a.small_value.remote() for _ in range(1000)])

    return timeit(actor_async, 1000)


@registry.metric("1_1_actor_calls_concurrent")
def actor_calls_concurrent(timeit):
    a = Actor.options(max_concurrency=16).remote()

    def actor_concurrent():
        ray.get([a.small_value.remote() for _ in range(1000)])

    return timeit(actor_concurrent, 1000)


@registry.metric("1_n_actor_calls_async")
def one_n_actor_calls_async(timeit):
    n = 5000
    n_cpu = multiprocessing.cpu_count() // 2
    actors = [Actor._remote() for _ in range(n_cpu)]
    client = Client.remote(actors)

    def actor_async_direct():
        ray.get(client.small_value_batch.remote(n))

    return timeit(actor_async_direct, n * len(actors))


@registry.metric("n_n_actor_calls_async")
def n_n_actor_calls_async(timeit):
    n = 5000
    m = 4
    n_cpu = multiprocessing.cpu_count() // 2
    a = [Actor.remote() for _ in range(n_cpu)]

    @ray.remote
    def work(actors):
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    def actor_multi2():
        ray.get([work.remote(a) for _ in range(m)])

    return timeit(actor_multi2, m * n)


@registry.metric("1_1_async_actor_calls_async")
def async_actor_calls_async(timeit):
    a = AsyncActor.remote()

    def async_actor():
        ray.get([a.small_value.remote() for _ in range(1000)])

    return timeit(async_actor, 1000)


# Python actor calls from a driver: the anchor for tsray's TypeScript -> Python actor calls (same
# workload as 1_1_actor_calls_sync / _async, on the same Python Actor class).
@registry.metric("python_actor_calls_sync", note="Ray: Python driver -> Python actor (= 1_1_actor_calls_sync)")
def python_actor_calls_sync(timeit):
    a = Actor.remote()
    return timeit(lambda: ray.get(a.small_value.remote()))


@registry.metric("python_actor_calls_async", note="Ray: Python driver -> Python actor (= 1_1_actor_calls_async)")
def python_actor_calls_async(timeit):
    a = Actor.remote()

    def actor_async():
        ray.get([a.small_value.remote() for _ in range(1000)])

    return timeit(actor_async, 1000)


NUM_PGS = 100
NUM_BUNDLES = 1
registry.session("placement_groups", resources={"custom": 100})


@registry.metric("placement_group_create_removal", session="placement_groups")
def placement_group_create_removal_metric(timeit):
    def placement_group_create_removal(num_pgs):
        pgs = [ray.util.placement_group(bundles=[{"custom": 0.001} for _ in range(NUM_BUNDLES)]) for _ in range(num_pgs)]
        [pg.wait(timeout_seconds=30) for pg in pgs]
        # Include placement group removal here to clean up (as ray_perf.py does).
        for pg in pgs:
            ray.util.remove_placement_group(pg)

    return timeit(lambda: placement_group_create_removal(NUM_PGS), NUM_PGS)


if __name__ == "__main__":
    sys.exit(main(registry))
