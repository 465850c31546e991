"""The seed's Ray snippets (docs/python.md: tasks, the actor Counter, objects, resources), run as
written with only ``import ray`` changed to ``import tsray as ray``, as real driver processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tsray_cluster import CLI, REPO, TsrayCluster, driver_stdout


def _stdout(out: object) -> str:
    return driver_stdout(out, "seed example")


def test_seed_tasks(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "tasks.py",
        """
        import tsray as ray
        ray.init()

        @ray.remote
        def fun(a):
            return a

        a = 1
        obj_ref = fun.remote(a)
        value = ray.get(obj_ref)

        @ray.remote
        def function_with_an_argument(value):
            return value + 1

        obj_ref2 = function_with_an_argument.remote(obj_ref)
        assert ray.get(obj_ref2) == 2
        print("value", value, ray.get(obj_ref2))
        """,
    )
    assert "value 1 2" in _stdout(out)


def test_seed_actor_counter(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "counter.py",
        """
        import time
        import tsray as ray
        ray.init()

        @ray.remote
        class Counter:
            def __init__(self):
                self.value = 0

            def increment(self):
                # tests-check: allow sleep-as-wait the seed's own Counter (its code, run unchanged)
                time.sleep(1)
                self.value += 1
                print(f'counter: {self.value}')
                return self.value

            def get_counter(self):
                return self.value

        c = Counter.remote()
        for _ in range(10):
            print(f'scheduler: {_}')
            c.increment.remote()
        print(ray.get(c.get_counter.remote()))
        """,
    )
    lines = [ln for ln in _stdout(out).splitlines() if "counter:" not in ln]
    # The calls are asynchronous (all ten scheduled first) and run in order: get_counter sees 10.
    assert lines == [f"scheduler: {i}" for i in range(10)] + ["10"]


def test_seed_objects(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "objects.py",
        """
        import numpy as np
        import tsray as ray
        ray.init()

        @ray.remote
        def total(xs):
            return float(xs.sum())

        big = ray.put(np.arange(1_000_000, dtype=np.float64))   # a large object: shared memory
        small = ray.put([1, 2, 3])
        print("sum", ray.get(total.remote(big)), ray.get(small))
        ready, not_ready = ray.wait([total.remote(big)], num_returns=1)
        print("ready", len(ready), len(not_ready))
        """,
    )
    stdout = _stdout(out)
    assert "sum 499999500000.0 [1, 2, 3]" in stdout
    assert "ready 1 0" in stdout


def test_seed_resources(cluster: TsrayCluster, tmp_path: Path) -> None:
    out = cluster.run_driver(
        tmp_path,
        "resources.py",
        """
        import os
        import tsray as ray
        ray.init()
        print(ray.nodes())

        @ray.remote(num_gpus=1)
        class Wrapper:
            def __init__(self):
                self.devices = os.environ["CUDA_VISIBLE_DEVICES"]
            def generate(self, text):
                return f"{text} on GPU {self.devices}"

        use_gpus = [1, 1]
        instances = [Wrapper.options(num_gpus=n).remote() for n in use_gpus]
        texts = ["Text 1", "Text 2"]
        print(sorted(ray.get([w.generate.remote(t) for w, t in zip(instances, texts)])))
        print(ray.cluster_resources()["CPU"], ray.available_resources()["GPU"])
        """,
    )
    stdout = _stdout(out)
    assert "'Alive': True" in stdout
    assert "['Text 1 on GPU 0', 'Text 2 on GPU 1']" in stdout or "['Text 1 on GPU 1', 'Text 2 on GPU 0']" in stdout
    assert "4 0" in stdout


def test_init_starts_a_local_cluster_with_its_resources_when_none_runs(tmp_path: Path) -> None:
    # The seed's `ray.init(num_gpus=8, num_cpus=64)` form: no cluster in this TMPDIR, so init starts
    # one with those resources (fake GPUs) and stops it when the script ends.
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "TSRAY_CLI": str(CLI),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "python"), os.environ.get("PYTHONPATH")])),
    }
    env.pop("TSRAY_ADDRESS", None)
    script = tmp_path / "local.py"
    script.write_text(
        "import tsray as ray\n"
        "ray.init(num_gpus=2, num_cpus=3)\n"
        "@ray.remote(num_gpus=1)\n"
        "def dev():\n    import os\n    return os.environ['CUDA_VISIBLE_DEVICES']\n"
        "@ray.remote\n"
        "class Talker:\n    def say(self, n):\n        print(f'counter: {n}')\n        return n\n"
        "t = Talker.remote()\n"
        "ray.get([t.say.remote(i) for i in range(1, 4)])\n"
        "r = ray.cluster_resources()\n"
        "print('resources', r['CPU'], r['GPU'], ray.get(dev.remote()) in ('0', '1'))\n"
        "import json, os\n"
        "print('head', json.load(open(os.path.join(os.environ['TMPDIR'], f'tsray-{os.getuid()}', 'current.json')))['pid'])\n",
        encoding="utf-8",
    )
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    stdout = _stdout(out)
    assert "resources 3 2 True" in stdout
    # The actor's prints reach the driver's terminal, prefixed as in Ray (log_to_driver).
    talker = [ln.split(") ", 1)[1] for ln in stdout.splitlines() if ln.startswith("(Talker pid=")]
    assert talker == ["counter: 1", "counter: 2", "counter: 3"]
    pid = int(stdout.split("\nhead ")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the head init() started is gone with the script
