"""The Python worker (python -m tsray.worker) end to end against a scripted fake node."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fake_node import FakeNode
from tsray.errors import TaskError, error_from_payload
from tsray.protocol import PayloadWriter, pb
from tsray.worker import TASK_NAME_MARKER
from tsray.xlang import decode, encode

MOD = "py:tsray_test_funcs"


class Batch:
    """Builds one ExecuteTasks with msgpack inline arguments."""

    def __init__(self) -> None:
        self.writer = PayloadWriter()
        self.tasks: list[pb.TaskExecution] = []

    def add(self, task_id: str, key: str, *args: Any, raw_args: list[pb.ObjectData] | None = None, **fields: Any) -> Batch:
        ods = [
            pb.ObjectData(object_id=f"{task_id}.arg{i}", encoding=pb.ENCODING_MSGPACK, inline=self.writer.add(encode(a)))
            for i, a in enumerate(args)
        ]
        ods += raw_args or []
        fields.setdefault("return_ids", [f"{task_id}.0"])
        self.tasks.append(
            pb.TaskExecution(task_id=task_id, function=pb.FunctionDescriptor(module_url=MOD, key=key, name=key), args=ods, name=key, **fields)
        )
        return self

    def send(self, node: FakeNode, peer: bytes) -> None:
        node.send(peer, pb.ExecuteTasks(tasks=self.tasks), self.writer.finish())


def value_of(node: FakeNode, r: pb.TaskResult, frames: list[Any], i: int = 0) -> Any:
    od = r.returns[i]
    assert od.encoding == pb.ENCODING_MSGPACK
    return decode(node.object_bytes(od, frames))


def error_of(node: FakeNode, r: pb.TaskResult, frames: list[Any]) -> dict[str, Any]:
    assert r.status == pb.TASK_STATUS_ERROR
    od = r.returns[0]
    assert od.encoding == pb.ENCODING_ERROR and od.raw_kind == ""
    data = node.object_bytes(od, frames)
    assert pb.ErrorInfo.FromString(data).type == "TaskError"
    err = error_from_payload(data, od.object_id)
    assert isinstance(err, TaskError)
    info: dict[str, Any] = err.info
    assert info["name"] == r.error_name and info["language"] == "python"
    return info


@pytest.fixture
def node(tmp_path: Path) -> Iterator[FakeNode]:
    n = FakeNode(tmp_path)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def worker(node: FakeNode) -> tuple[FakeNode, bytes]:
    proc = node.spawn_worker("w1")
    peer, reg = node.register()
    assert peer == b"w1"
    assert (reg.worker_id, reg.language, reg.kind, reg.pid) == ("w1", "python", "worker", proc.pid)
    return node, peer


def test_tasks_run_and_results_come_back_batched(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    b = Batch()
    for i in range(50):
        b.add(f"t{i}", "add", i, 1000)
    b.add("tpair", "pair", return_ids=["tpair.0", "tpair.1"])
    b.add("tnone", "echo", None)
    b.add("tbig", "echo", 2**70)
    b.send(node, peer)
    res = node.results(53)
    for i in range(50):
        r, frames = res[f"t{i}"]
        assert r.status == pb.TASK_STATUS_OK and r.returns[0].object_id == f"t{i}.0"
        assert value_of(node, r, frames) == i + 1000
    r, frames = res["tpair"]
    assert [value_of(node, r, frames, k) for k in (0, 1)] == [1, "two"]
    assert [od.object_id for od in r.returns] == ["tpair.0", "tpair.1"]
    assert value_of(node, *res["tnone"]) is None
    assert value_of(node, *res["tbig"]) == 2**70
    # Each task is reported exactly once, however the results were batched (batching depends on timing).
    reported = [r.task_id for k, m in node.log if k == "task_results" for r in m.envelope.task_results.results]
    assert sorted(reported) == sorted([f"t{i}" for i in range(50)] + ["tpair", "tnone", "tbig"])


def test_errors_carry_name_message_stack(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    b = Batch().add("e1", "boom", "bad input").add("e2", "no_such_function").add("e3", "unserializable")
    b.add("e4", "pair", return_ids=["e4.0", "e4.1", "e4.2"])
    b.tasks.append(
        pb.TaskExecution(task_id="e5", function=pb.FunctionDescriptor(module_url="py:no_such_module_x", key="f"), return_ids=["e5.0"], name="f")
    )
    b.add("ok", "add", 1, 2)
    b.send(node, peer)
    res = node.results(6)
    info = error_of(node, *res["e1"])
    assert info["message"] == "boom: bad input" and info["name"] == "ValueError"
    assert "in boom" in info["stack"] and "ValueError: boom: bad input" in info["stack"]
    assert info["taskName"] == "boom" and info["pid"] > 0
    assert res["e1"][0].returns[0].object_id == "e1.0"
    info = error_of(node, *res["e2"])
    assert info["name"] == "FunctionNotFoundError" and "no_such_function" in info["message"]
    info = error_of(node, *res["e3"])
    assert info["name"] == "SerializationError" and "value.ok[1].bad" not in info["message"]
    assert "return value of task unserializable.ok[1].bad" in info["message"]
    assert "num_returns=3" in error_of(node, *res["e4"])["message"]
    assert error_of(node, *res["e5"])["name"] == "ModuleNotFoundError"
    assert value_of(node, *res["ok"]) == 3


def test_arena_and_spill_arguments(worker: tuple[FakeNode, bytes], tmp_path: Path) -> None:
    node, peer = worker
    arr = np.arange(50_000, dtype=np.float32)
    sl = node.put_arena(encode(arr))
    spill = tmp_path / "spilled.bin"
    spill.write_bytes(encode([1, 2, 3]))
    b = Batch()
    b.add("a1", "array_info", raw_args=[pb.ObjectData(object_id="big-1", encoding=pb.ENCODING_MSGPACK, shm=sl)])
    b.add("a2", "array_sum", raw_args=[pb.ObjectData(object_id="big-1", encoding=pb.ENCODING_MSGPACK, shm=sl)])
    b.add("a3", "echo", raw_args=[pb.ObjectData(object_id="sp-1", encoding=pb.ENCODING_MSGPACK, spill_path=str(spill))])
    b.add("a4", "echo", raw_args=[pb.ObjectData(object_id="raw-1", encoding=pb.ENCODING_RAW, raw_kind="Buffer", inline=b.writer.add(b"\x01\x02"))])
    b.send(node, peer)
    res = node.results(4)
    info = value_of(node, *res["a1"])
    assert info == {"dtype": "float32", "shape": [50_000], "writeable": False, "first": 0.0}
    assert value_of(node, *res["a2"]) == float(arr.sum())
    assert value_of(node, *res["a3"]) == [1, 2, 3]
    assert value_of(node, *res["a4"]) == b"\x01\x02"
    # Each delivery of the arena slice is given back once the task no longer uses it.
    while node.unpinned().count("big-1") < 2:
        node.auto(*node.expect("ref_updates"))
        node.ref_updates.append(node.log[-1][1].envelope.ref_updates)
    assert node.unpinned().count("big-1") == 2


def test_large_returns_go_through_the_arena(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    Batch().add("z1", "zeros", 100_000).add("z2", "zeros", 10).send(node, peer)
    res = node.results(2)
    r, frames = res["z1"]
    od = r.returns[0]
    assert od.WhichOneof("location") == "shm" and od.size == od.shm.length
    assert any(k == "alloc_request" for k, _ in node.log)
    got = decode(node.object_bytes(od, frames))
    assert np.array_equal(got, np.arange(100_000, dtype=np.float64))
    assert res["z2"][0].returns[0].WhichOneof("location") == "inline"


def test_failed_alloc_fails_the_task(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    node.alloc_error = '{"requested":800000,"capacity":10,"used":0}'
    Batch().add("z1", "zeros", 100_000).send(node, peer)
    info = error_of(node, *node.results(1)["z1"])
    assert "could not allocate" in info["message"]


def test_streaming_generators(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    Batch().add("g1", "count", 3, streaming=True).add("g2", "acount", 2, streaming=True).send(node, peer)
    items: dict[str, list[Any]] = {"g1": [], "g2": []}
    results = {}
    while len(results) < 2:
        _, msg = node.recv()
        if msg.kind == "generator_items":
            for it in msg.envelope.generator_items.items:
                assert it.task_id not in results, "items must precede the task's result"
                assert it.item.object_id == f"{it.task_id}.g{it.index}"
                assert it.index == len(items[it.task_id])
                items[it.task_id].append(decode(node.object_bytes(it.item, msg.payloads)))
        elif msg.kind == "task_results":
            for r in msg.envelope.task_results.results:
                results[r.task_id] = (r, msg.payloads)
    assert items == {"g1": [{"i": 0}, {"i": 1}, {"i": 2}], "g2": [0, 10]}
    for tid, n in (("g1", 3), ("g2", 2)):
        r, frames = results[tid]
        assert r.status == pb.TASK_STATUS_OK and r.num_items == n and value_of(node, r, frames) == n


def creation(actor_id: str, key: str, class_name: str, **spec: Any) -> dict[str, Any]:
    return {"actor_creation": pb.ActorCreationSpec(actor_id=actor_id, class_name=class_name, **spec), "actor_id": actor_id}


def test_sync_actor_runs_calls_in_order(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    b = Batch().add("c0", "Counter", 10, **creation("a1", "Counter", "Counter"))
    for i in range(20):
        b.add(f"c{i + 1}", "", 1, actor_id="a1", method="incr")
    b.add("cget", "", actor_id="a1", method="get")
    b.add("cbad", "", actor_id="a1", method="nope")
    b.add("cfail", "", actor_id="a1", method="fail")
    b.send(node, peer)
    res = node.results(24)
    assert res["c0"][0].status == pb.TASK_STATUS_OK and value_of(node, *res["c0"]) is None
    assert [value_of(node, *res[f"c{i + 1}"]) for i in range(20)] == list(range(11, 31))
    assert value_of(node, *res["cget"]) == 30
    info = error_of(node, *res["cbad"])
    assert info["name"] == "ActorMethodNotFoundError" and "incr" in info["message"]
    assert error_of(node, *res["cfail"])["message"] == "counter failed"


def test_actor_constructor_error(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    Batch().add("c0", "BadActor", **creation("a2", "BadActor", "BadActor")).send(node, peer)
    info = error_of(node, *node.results(1)["c0"])
    assert info["name"] == "KeyError" and "no config" in info["message"]


def test_async_actor_concurrency_per_group(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    spec = creation(
        "a3", "AsyncWorkerActor", "AsyncWorkerActor",
        max_concurrency=3,
        concurrency_groups=[pb.ConcurrencyGroup(name="io", max_concurrency=1, methods=["io"])],
    )
    b = Batch().add("c0", "AsyncWorkerActor", **spec)
    for i in range(8):
        b.add(f"w{i}", "", 0.05, actor_id="a3", method="work")
    for i in range(3):
        b.add(f"io{i}", "", 0.02, actor_id="a3", method="io")
    b.send(node, peer)
    res = node.results(12)
    assert all(r.status == pb.TASK_STATUS_OK for r, _ in res.values())
    assert max(value_of(node, *res[f"w{i}"]) for i in range(8)) == 3
    assert max(value_of(node, *res[f"io{i}"]) for i in range(3)) == 1
    Batch().add("peaks", "", actor_id="a3", method="peaks").send(node, peer)
    assert value_of(node, *node.results(1)["peaks"]) == [3, 1]


def test_cancel_running_async_call_and_queued_task(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    Batch().add("c0", "AsyncWorkerActor", **creation("a4", "AsyncWorkerActor", "AsyncWorkerActor")).send(node, peer)
    node.results(1)
    Batch().add("f1", "", actor_id="a4", method="forever").send(node, peer)
    node.send(peer, pb.CancelTask(task_id="f1"))
    r, _ = node.results(1)["f1"]
    assert r.status == pb.TASK_STATUS_CANCELLED


def test_cancel_queued_task(node: FakeNode) -> None:
    node.spawn_worker("w2")
    peer, _ = node.register()
    # "slow" runs long enough that the cancel reaches the worker while it runs, even on a loaded machine.
    Batch().add("slow", "busy", 1.5).add("later", "add", 1, 2).send(node, peer)
    node.send(peer, pb.CancelTask(task_id="later"))
    res = node.results(2)
    assert res["slow"][0].status == pb.TASK_STATUS_OK
    assert res["later"][0].status == pb.TASK_STATUS_CANCELLED
    # a cancelled async task
    Batch().add("nap", "nap", 3600.0).send(node, peer)
    node.send(peer, pb.CancelTask(task_id="nap"))
    assert node.results(1)["nap"][0].status == pb.TASK_STATUS_CANCELLED


def test_output_is_tagged_with_task_and_actor_names_and_shutdown_exits_0(node: FakeNode) -> None:
    proc = node.spawn_worker("w3")
    peer, _ = node.register()
    b = Batch().add("s1", "shout", "hi").add("s2", "shout", "again")
    b.add("c0", "Counter", 0, **creation("a5", "Counter", "Counter")).add("c1", "", actor_id="a5", method="talk")
    b.send(node, peer)
    res = node.results(4)
    assert value_of(node, *res["s1"]) == "HI"
    node.send(peer, pb.Shutdown(reason="test"))
    assert proc.wait(timeout=10) == 0  # (stdin still open: the exit is the Shutdown's)
    out, err = proc.communicate(timeout=10)
    m = TASK_NAME_MARKER
    assert out.decode() == f"{m}shout\nout: hi\nout: again\n{m}Counter\ncounter speaking\n"
    assert err.decode().startswith(f"{m}shout\nerr: hi\nerr: again\n")


def test_worker_exits_when_stdin_closes(node: FakeNode) -> None:
    proc = node.spawn_worker("w4")
    node.register()
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=10) == 1


def test_malformed_message_is_answered_and_worker_keeps_serving(worker: tuple[FakeNode, bytes]) -> None:
    node, peer = worker
    node.router.send_multipart([peer, b"\x08\x01\xff\xff"])
    _, msg = node.expect("error")
    assert msg.envelope.error.code == pb.ERROR_CODE_MALFORMED
    Batch().add("ok", "add", 2, 2).send(node, peer)
    assert value_of(node, *node.results(1)["ok"]) == 4


def test_missing_environment_exits_2() -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TSRAY_")}
    p = subprocess.run([sys.executable, "-m", "tsray.worker"], env=env, capture_output=True, timeout=30)
    assert p.returncode == 2 and b"TSRAY_WORKER_ID" in p.stderr
