"""Ray's Python API on tsray, end to end: real Python driver processes against a real cluster.

``@tsray.remote`` functions and actors, placement groups, fake GPUs -> CUDA_VISIBLE_DEVICES,
generators, async actors, restarts, and calls across languages (a Python task calls a TS actor, a
TS task calls a Python actor). The seed's Python snippets are in test_seed_examples.py.
"""

from __future__ import annotations

from pathlib import Path

from tsray_cluster import REPO, TsrayCluster, driver_stdout

TS_FIXTURE = REPO / "python" / "tests" / "fixtures" / "xlang_ts.ts"


def _ok(out: object) -> str:
    return driver_stdout(out)


def test_functions_actors_placement_group_and_gpus(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "driver.py",
        """
        import os
        import tsray
        from tsray.util import placement_group, remove_placement_group
        from tsray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        tsray.init()

        @tsray.remote
        def add(a, b):
            return a + b

        @tsray.remote
        class Counter:
            def __init__(self, start):
                self.n = start
            def increment(self):
                self.n += 1
                return self.n

        @tsray.remote(num_gpus=1)
        class GpuUser:
            def devices(self):
                assert tsray.get_gpu_ids() == [int(os.environ["CUDA_VISIBLE_DEVICES"])]
                return os.environ.get("CUDA_VISIBLE_DEVICES")

        @tsray.remote(num_gpus=1)
        def gpu_task():
            return os.environ.get("CUDA_VISIBLE_DEVICES")

        @tsray.remote
        def bundle_of(i):
            return i

        print("add", tsray.get(add.remote(add.remote(1, 2), 10)))
        c = Counter.remote(5)
        refs = [c.increment.remote() for _ in range(3)]
        print("counter", tsray.get(refs))

        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
        placed = tsray.get(pg.ready(), timeout=60)
        print("bundles", len(placed["bundles"]))
        strategies = [PlacementGroupSchedulingStrategy(pg, i) for i in range(2)]
        print("in bundles", tsray.get([bundle_of.options(scheduling_strategy=s).remote(i) for i, s in enumerate(strategies)]))
        print("pg wait", pg.wait(30))
        remove_placement_group(pg)

        from tsray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        node = tsray.nodes()[0]["NodeID"]
        pinned = bundle_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(7)
        spread = bundle_of.options(scheduling_strategy="SPREAD").remote(8)
        print("strategies", tsray.get([pinned, spread]))

        users = [GpuUser.remote(), GpuUser.remote()]
        print("actor gpus", sorted(tsray.get([u.devices.remote() for u in users])))
        for u in users:
            tsray.kill(u)
        print("task gpu", tsray.get(gpu_task.remote()) in ("0", "1"))
        print("resources", tsray.cluster_resources()["GPU"], len(tsray.nodes()))
        """,
    )
    stdout = _ok(out)
    assert "add 13" in stdout
    assert "counter [6, 7, 8]" in stdout
    assert "bundles 2" in stdout
    assert "in bundles [0, 1]" in stdout
    assert "pg wait True" in stdout
    assert "strategies [7, 8]" in stdout
    assert "actor gpus ['0', '1']" in stdout
    assert "task gpu True" in stdout
    assert "resources 2 1" in stdout


def test_generators_async_actors_returns_restarts_cancel(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "driver.py",
        """
        import asyncio, os, time
        import tsray

        tsray.init()

        @tsray.remote
        def squares(n):
            for i in range(n):
                yield i * i

        @tsray.remote(num_returns=2)
        def pair():
            return "a", "b"

        @tsray.remote
        class Gate:
            # An async actor: calls run concurrently, so wait() sees the opener release the waiters.
            def __init__(self):
                self.event = asyncio.Event()
            async def wait(self):
                await self.event.wait()
                return "released"
            async def open(self):
                self.event.set()
                return "opened"

        @tsray.remote(max_restarts=1)
        class Fragile:
            def pid(self):
                return os.getpid()
            def context(self):
                ctx = tsray.get_runtime_context()
                return ctx.get_actor_id(), ctx.get_node_id()
            def die(self):
                os._exit(1)

        @tsray.remote
        def forever():
            while True:  # tests-check: allow sleep-as-wait a task that runs until cancelled (the work itself)
                time.sleep(0.05)

        print("squares", [tsray.get(r) for r in squares.remote(4)])

        @tsray.remote
        class Producer:
            async def items(self, n):
                for i in range(n):
                    yield f"item{i}"

            @tsray.method(num_returns=2)
            def two(self):
                return "x", "y"

        p = Producer.remote()
        print("stream", [tsray.get(r) for r in p.items.options(num_returns="streaming").remote(3)])
        print("stream by default", [tsray.get(r) for r in p.items.remote(2)])  # a generator method streams
        print("method returns", tsray.get(p.two.remote()))
        print("pair", tsray.get(pair.remote()))
        g = Gate.remote()
        waiting = [g.wait.remote() for _ in range(3)]
        ready, rest = tsray.wait(waiting, num_returns=1, timeout=0.5)
        print("before open", len(ready))
        print(tsray.get(g.open.remote()), tsray.get(waiting))

        f = Fragile.remote()
        first = tsray.get(f.pid.remote())
        me = tsray.get_runtime_context()
        actor_id, node_id = tsray.get(f.context.remote())
        print("context", actor_id == f.actor_id, node_id == me.get_node_id() != "", me.get_actor_id())
        try:
            tsray.get(f.die.remote())
        except tsray.ActorDiedError:
            print("died")
        print("restarted", tsray.get(f.pid.remote()) != first)

        ref = forever.remote()
        tsray.cancel(ref, force=True)
        try:
            tsray.get(ref, timeout=60)
        except (tsray.TaskCancelledError, tsray.WorkerCrashedError) as e:
            print("cancelled", type(e).__name__)
        print("put", tsray.get(tsray.put({"k": [1, 2]})))

        @tsray.remote
        def total(refs):
            # Refs nested in an argument stay refs: the task gets them itself (borrowed, then nested get).
            return sum(tsray.get(refs))

        print("nested refs", tsray.get(total.remote([tsray.put(1), tsray.put(2), tsray.put(3)])))
        """,
    )
    stdout = _ok(out)
    assert "squares [0, 1, 4, 9]" in stdout
    assert "stream ['item0', 'item1', 'item2']" in stdout
    assert "stream by default ['item0', 'item1']" in stdout
    assert "method returns ['x', 'y']" in stdout
    assert "pair ['a', 'b']" in stdout
    assert "before open 0" in stdout
    assert "opened ['released', 'released', 'released']" in stdout
    assert "died" in stdout and "restarted True" in stdout
    assert "context True True None" in stdout
    assert "cancelled" in stdout
    assert "put {'k': [1, 2]}" in stdout
    assert "nested refs 6" in stdout


def test_python_task_calls_ts_actor_and_ts_task_calls_python_actor(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "driver.py",
        f"""
        import tsray

        tsray.init()
        TS = {str(TS_FIXTURE)!r}

        @tsray.remote
        class Counter:
            def __init__(self):
                self.n = 0
            def increment(self):
                self.n += 1
                return self.n

        @tsray.remote
        def call_ts(handle, k):
            # A Python task calling a TypeScript actor through the handle it was given.
            return tsray.get(handle.add.remote(k))

        start = tsray.remote_function(TS, "startTsCounter")
        tsray.get(start.remote("ts-counter"))
        ts_counter = tsray.get_actor("ts-counter")
        print("py->ts", tsray.get(call_ts.remote(ts_counter, 5)), tsray.get(call_ts.remote(ts_counter, 2)))
        tsray.kill(ts_counter)

        py_counter = Counter.remote()
        call_py = tsray.remote_function(TS, "callPythonActor")
        print("ts->py", tsray.get(call_py.remote(py_counter, 3)), tsray.get(py_counter.increment.remote()))
        """,
    )
    stdout = _ok(out)
    assert "py->ts 5 7" in stdout
    assert "ts->py 3 4" in stdout


def test_a_module_of_the_driver_folder_reaches_workers_by_import(cluster: TsrayCluster, tmp_path: Path) -> None:
    # tasks.py beside the driver: imported on the worker (the job's code root is on its sys.path).
    (tmp_path / "mytasks.py").write_text(
        # A module that calls init at its top, as many Ray modules do: in a worker, that is the worker's connection.
        "import tsray\ntsray.init(ignore_reinit_error=True)\n\n@tsray.remote\ndef triple(x):\n    return 3 * x\n", encoding="utf-8"
    )
    out = cluster.run_driver(
        tmp_path,
        "driver.py",
        """
        import tsray

        tsray.init()
        from mytasks import triple  # its own init(ignore_reinit_error=True) keeps this connection

        print("triple", tsray.get(triple.remote(7)))
        print(triple)
        """,
    )
    stdout = _ok(out)
    assert "triple 21" in stdout
    assert "RemoteFunction(py:mytasks:triple#0)" in stdout


def test_an_unguarded_script_runs_its_main_code_only_in_the_driver(cluster: TsrayCluster, tmp_path: Path) -> None:
    marker = tmp_path / "main-code-ran"
    out = cluster.run_driver(
        tmp_path,
        "unguarded.py",
        f"""
        import tsray
        LIMIT = 3
        tsray.init()
        open({str(marker)!r}, "a").write("x")

        @tsray.remote
        def below_limit(x):
            return x < LIMIT

        @tsray.remote
        def count_below(n):
            # A task of the script calling another task of the script (nested, from the worker).
            return sum(tsray.get([below_limit.remote(i) for i in range(n)]))

        print("below", tsray.get([below_limit.remote(i) for i in range(5)]))
        print("count", tsray.get(count_below.remote(5)))
        """,
    )
    stdout = _ok(out)
    assert "below [True, True, True, False, False]" in stdout
    assert "count 3" in stdout
    assert marker.read_text() == "x"  # the workers ran the definitions, not the main code


def test_a_failing_python_task_raises_task_error_with_the_remote_name(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "driver.py",
        """
        import tsray
        tsray.init()

        @tsray.remote(max_retries=0)
        def boom():
            raise KeyError("nope")

        try:
            tsray.get(boom.remote())
        except tsray.TaskError as e:
            print("error", e.remote_name)
        """,
    )
    assert "error KeyError" in _ok(out)


def test_runtime_env_and_a_named_actor_another_driver_gets(cluster: TsrayCluster, tmp_path: Path) -> None:
    first = cluster.run_driver(
        tmp_path / "a",
        "owner.py",
        """
        import os
        import tsray as ray

        ray.init(runtime_env={"env_vars": {"JOB_VAR": "job", "BOTH": "job"}})

        @ray.remote(runtime_env={"env_vars": {"BOTH": "task"}})
        def env():
            return os.environ.get("JOB_VAR"), os.environ.get("BOTH")

        @ray.remote
        class Scheduler:
            def __init__(self, model):
                self.model = model  # a handle to another actor, as the seed's vLLMScheduler
            def schedule(self, inputs):
                return [ray.get(self.model.generate.remote(x)) for x in inputs]

        @ray.remote
        class Model:
            def generate(self, x):
                return x.upper()

        print("env", ray.get(env.remote()))
        # The driver drops its Model handle at once: the Scheduler borrowed it and keeps the actor alive.
        borrower = Scheduler.remote(Model.remote())
        import gc; gc.collect()
        print("borrowed", ray.get(borrower.schedule.remote(["b", "c"])))
        # Both detached: a non-detached actor ends with its driver's job (as in Ray), and this driver exits.
        model = Model.options(name="model", namespace="head", lifetime="detached").remote()
        s = Scheduler.options(name="scheduler", namespace="head", lifetime="detached").remote(model)
        print("direct", ray.get(s.schedule.remote(["a"])))
        """,
    )
    assert "env ['job', 'task']" in _ok(first)
    assert "direct ['A']" in first.stdout
    assert "borrowed ['B', 'C']" in first.stdout
    second = cluster.run_driver(
        tmp_path / "b",
        "client.py",
        """
        import tsray as ray
        ray.init(address="auto")
        scheduler = ray.get_actor(name="scheduler", namespace="head")
        print("via name", ray.get(scheduler.schedule.remote([f"test{i}" for i in range(3)])))
        ray.kill(scheduler)
        ray.kill(ray.get_actor("model", namespace="head"))
        try:
            ray.get_actor(name="nope", namespace="head")
        except ray.ActorNotFoundError as e:
            print("missing", type(e).__name__)
        """,
    )
    stdout = _ok(second)
    assert "via name ['TEST0', 'TEST1', 'TEST2']" in stdout
    assert "missing ActorNotFoundError" in stdout
