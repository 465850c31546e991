"""Ray 2.58 side of the two-node benchmarks (issue #5); twin of bench/tsray/cluster.bench.ts.

A ``ray.cluster_utils.Cluster`` on this machine: a head (node A) and one worker node (node B), each
``num_cpus=1`` (the bench machine has 2 cores) with a custom resource naming it (``nodeA`` / ``nodeB``:
100) that places the clients; this driver connects to the head. Metrics:

- ``multi_client_tasks_async``: ray_perf.py's "multi client tasks async" (n=10000, m=4 ``Actor``
  clients, each ``small_value_batch(n)``), the 4 clients placed 2 per node.
- ``n_n_actor_calls_async``: ray_perf.py's "n:n actor calls async" (n=5000, m=4 ``work`` tasks,
  round-robin over ``n_cpu`` server ``Actor``s; ``n_cpu = cpu_count() // 2`` = 1 here, placed on node A),
  the 4 ``work`` tasks placed 2 per node.
- ``object_transfer_gigabytes``: a 256 MiB array put by the driver (node A), read by a task on node B;
  per round the ``get`` of that task is timed (the put and its completion are not); content checked
  once with sha256 on node B. GB = 1e9 bytes.

Usage (repo root, with the bench venv):
    bench/.venv/bin/python bench/ray/ray_cluster.py [--quick] [--metrics a,b,c] [--list]
"""

import hashlib
import multiprocessing
import os
import sys
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network on the bench machine

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import ray  # noqa: E402

from bench_harness import Registry, main  # noqa: E402
from ray_perf_core import Actor, small_value  # noqa: E402,F401  (ray_perf.py's classes, verbatim)

registry = Registry()

NODE_A = "nodeA"
NODE_B = "nodeB"
NODES = (NODE_A, NODE_B)
QUICK = "--quick" in sys.argv
TRANSFER_BYTES = 256 * 1024 * 1024
TRANSFER_ROUNDS = 3 if QUICK else 8
STORE_BYTES = 2 * 1024 * 1024 * 1024


def on(node):
    return {"resources": {node: 1}}


@registry.metric(
    "multi_client_tasks_async",
    note="ray_perf.py's definition (4 Actor clients x small_value_batch(10000)), clients 2 per node",
)
def multi_client_tasks_async(timeit):
    n = 10000
    m = 4
    actors = [Actor.options(**on(NODES[i % 2])).remote() for i in range(m)]

    def multi_task():
        submitted = [a.small_value_batch.remote(n) for a in actors]
        ray.get(submitted)

    return timeit(multi_task, n * m)


@registry.metric(
    "n_n_actor_calls_async",
    note="ray_perf.py's definition (4 work tasks x 5000 calls over n_cpu=1 server Actor on node A), work tasks 2 per node",
)
def n_n_actor_calls_async(timeit):
    n = 5000
    m = 4
    n_cpu = multiprocessing.cpu_count() // 2
    a = [Actor.options(**on(NODE_A)).remote() for _ in range(n_cpu)]

    @ray.remote
    def work(actors):
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    def actor_multi2():
        ray.get([work.options(**on(NODES[i % 2])).remote(a) for i in range(m)])

    return timeit(actor_multi2, m * n)


@ray.remote(resources={NODE_B: 1})
def consume(arr):
    return arr.nbytes


@ray.remote(resources={NODE_B: 1})
def digest_on_b(arr):
    return hashlib.sha256(arr.data).hexdigest()


def _stats(rates):
    return float(np.mean(rates)), float(np.std(rates))


@registry.metric(
    "object_transfer_gigabytes",
    unit="GB/s",
    note="256 MiB numpy array put on node A, read by a task on node B; get(consume.remote(ref)) timed per round",
)
def object_transfer_gigabytes(timeit):
    arr = np.random.default_rng(12345).integers(0, 2**32, TRANSFER_BYTES // 4, dtype=np.uint32)
    want = hashlib.sha256(arr.data).hexdigest()
    ref = ray.put(arr)
    got = ray.get(digest_on_b.remote(ref))
    del ref
    if got != want:
        raise RuntimeError(f"object_transfer: content differs on node B ({got} != {want})")
    rates = []
    for _ in range(TRANSFER_ROUNDS):
        ref = ray.put(arr)  # synchronous: sealed in node A's plasma store when it returns
        t0 = time.perf_counter()
        nbytes = ray.get(consume.remote(ref))
        dt = time.perf_counter() - t0
        del ref
        if nbytes != TRANSFER_BYTES:
            raise RuntimeError(f"object_transfer: node B saw {nbytes} bytes")
        rates.append(TRANSFER_BYTES / 1e9 / dt)
    return _stats(rates)


if __name__ == "__main__":
    if "--list" in sys.argv or "-h" in sys.argv or "--help" in sys.argv:
        sys.exit(main(registry))
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {NODE_A: 100}, "object_store_memory": STORE_BYTES},
    )
    cluster.add_node(num_cpus=1, resources={NODE_B: 100}, object_store_memory=STORE_BYTES)
    cluster.wait_for_nodes()
    registry.sessions["default"] = {"address": cluster.address}
    try:
        rc = main(registry)
    finally:
        cluster.shutdown()
    sys.exit(rc)
