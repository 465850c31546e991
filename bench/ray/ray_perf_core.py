"""Ray 2.58 side of the tsray core benchmarks: the single-client metrics of Ray's microbenchmark.

Every workload, multiplier and the timing method follow ``python/ray/_private/ray_perf.py`` of Ray
2.58.0 (the file shipped in the installed wheel; compare with
``bench/.venv/lib/python3.11/site-packages/ray/_private/ray_perf.py``). Metric names are Ray's
names in snake_case (``single client tasks sync`` -> ``single_client_tasks_sync``; the
``(Plasma Store)`` suffix is dropped). Metrics run in ray_perf.py's order inside one ``ray.init()``
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

import os
import sys

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network on the bench machine

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import ray  # noqa: E402

from bench_harness import Registry, main  # noqa: E402

registry = Registry()


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


if __name__ == "__main__":
    sys.exit(main(registry))
