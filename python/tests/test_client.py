"""The Python client driver (tsray.init / get_actor / remote / get / put / wait) against a scripted node."""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

import tsray
from fake_node import FakeNode
from tsray.protocol import PayloadWriter, payload_bytes, pb
from tsray.xlang import decode, encode

# ErrorInfo bytes of error objects as the TypeScript side writes them (packages/protocol/scripts/gen-golden.mjs).
_VECTORS = Path(__file__).resolve().parents[2] / "packages" / "protocol" / "test-vectors" / "error-info.json"
TS_ERRORS = {v["name"]: bytes.fromhex(v["hex"]) for v in json.loads(_VECTORS.read_text(encoding="utf-8"))}
# V8 structured-clone bytes made by Node itself (packages/protocol/scripts/gen-v8-vectors.mjs).
V8_VALUES = {v["name"]: bytes.fromhex(v["hex"]) for v in json.loads(_VECTORS.with_name("v8-values.json").read_text(encoding="utf-8"))}

Handler = Callable[[pb.TaskSpec, list[Any]], Any]


class ScriptedNode(FakeNode):
    """A FakeNode served from a background thread: an object table, actors by name, task handlers."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.actors: dict[tuple[str, str], pb.GetActorReply] = {}
        self.objects: dict[str, tuple[pb.ObjectData, bytes | None]] = {}
        self.waiting: dict[str, list[bytes]] = {}
        self.handlers: dict[str, Handler] = {}
        self.specs: list[pb.TaskSpec] = []
        self.kinds: list[str] = []
        self.client_ns = ""
        self.lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.close()

    # --------------------------------------------------------------- test helpers

    def seal(self, oid: str, od: pb.ObjectData, data: bytes | None) -> None:
        """Make an object ready (from the serving thread or, under the lock, from a test)."""
        od.object_id = oid
        self.objects[oid] = (od, data)
        for peer in self.waiting.pop(oid, []):
            self._deliver(peer, [oid])

    def seal_value(self, oid: str, value: Any, *, shm: bool = False) -> None:
        data = encode(value)
        if shm:
            self.seal(oid, pb.ObjectData(encoding=pb.ENCODING_MSGPACK, shm=self.put_arena(data), size=len(data)), None)
        else:
            self.seal(oid, pb.ObjectData(encoding=pb.ENCODING_MSGPACK, size=len(data)), data)

    def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        with self.lock:
            assert self.lock.wait_for(pred, timeout), "condition not reached"

    def unpins(self) -> list[str]:
        with self.lock:
            return self.unpinned()

    # --------------------------------------------------------------- serving

    def _deliver(self, peer: bytes, ids: list[str]) -> None:
        w = PayloadWriter()
        ods = []
        for oid in ids:
            od, data = self.objects[oid]
            out = pb.ObjectData()
            out.CopyFrom(od)
            if data is not None:
                out.inline.CopyFrom(w.add(data))
            ods.append(out)
        self.send(peer, pb.ObjectsReady(objects=ods), w.finish())

    def _serve(self) -> None:
        while not self._stop:
            if not self.router.poll(20):
                continue
            peer, msg = self.recv()
            with self.lock:
                self.kinds.append(msg.kind)
                self._on(peer, msg)
                self.lock.notify_all()

    def _on(self, peer: bytes, msg: Any) -> None:
        env = msg.envelope
        k = msg.kind
        if k == "register_worker":
            r = env.register_worker
            assert r.kind == "driver" and r.language == "python"
            self.client_ns = r.namespace
            self.send(peer, pb.WorkerAccepted(
                node_id="node-1", shm_path=str(self.arena_path), shm_size=self.arena_size,
                inline_threshold=100 * 1024, job_id=r.job_id, namespace=r.namespace,
            ))
        elif k == "get_actor_request":
            q = env.get_actor_request
            rep = self.actors.get((q.namespace or self.client_ns, q.name))
            if rep is None:
                self.send(peer, pb.GetActorReply(request_id=q.request_id, error=f'no actor named "{q.name}"'))
            else:
                out = pb.GetActorReply()
                out.CopyFrom(rep)
                out.request_id = q.request_id
                self.send(peer, out)
        elif k == "subscribe_objects":
            ready = [i for i in env.subscribe_objects.object_ids if i in self.objects]
            for i in env.subscribe_objects.object_ids:
                if i not in self.objects:
                    self.waiting.setdefault(i, []).append(peer)
            if ready:
                self._deliver(peer, ready)
        elif k == "put_objects":
            for od in env.put_objects.objects:
                data = bytes(payload_bytes(od.inline, msg.payloads)) if od.WhichOneof("location") == "inline" else None
                stored = pb.ObjectData()
                stored.CopyFrom(od)
                stored.ClearField("inline")
                self.seal(od.object_id, stored, data)
        elif k == "submit_tasks":
            for spec in env.submit_tasks.tasks:
                self.specs.append(spec)
                args = []
                for a in spec.args:
                    if a.WhichOneof("kind") == "ref":
                        od, data = self.objects[a.ref]
                        args.append(decode(data if data is not None else self.arena[od.shm.offset : od.shm.offset + od.shm.length]))
                    else:
                        args.append(decode(payload_bytes(a.value.inline, msg.payloads)))
                handler = self.handlers.get(spec.method or spec.function.key)
                if handler is not None:
                    handler(spec, args)
        else:
            self.auto(peer, msg)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ScriptedNode]:
    n = ScriptedNode(tmp_path)
    try:
        yield n
    finally:
        tsray.shutdown()
        n.stop()


@pytest.fixture
def client(node: ScriptedNode) -> tsray.Client:
    return tsray.init(node.address, namespace="ns1")


def add_handler(node: ScriptedNode) -> None:
    def run(spec: pb.TaskSpec, args: list[Any]) -> None:
        node.seal_value(spec.return_ids[0], args[0] + args[1])

    node.handlers["add"] = run  # actor method
    node.handlers["add#0"] = run  # remote function key


def test_init_registers_as_a_driver_and_heartbeats_then_says_goodbye(node: ScriptedNode) -> None:
    c = tsray.init(node.address, namespace="ns1")
    assert tsray.is_initialized() and c.node_id == "node-1" and c.namespace == "ns1"
    node.wait_for(lambda: "heartbeat" in node.kinds, timeout=5)
    tsray.shutdown()
    assert not tsray.is_initialized()
    node.wait_for(lambda: any(k == "heartbeat" and m.envelope.heartbeat.goodbye for k, m in node.log))


def test_init_auto_reads_current_json(node: ScriptedNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    rt = tmp_path / f"tsray-{os.getuid()}"
    rt.mkdir(mode=0o700)
    cur = rt / "current.json"
    cur.write_text(json.dumps({"address": node.address, "pid": os.getpid()}))
    c = tsray.init()
    assert c.address == node.address
    tsray.shutdown()
    # A runtime directory open to other users is not trusted (anyone could have written current.json).
    rt.chmod(0o755)
    with pytest.raises(tsray.ConnectionError, match="no tsray cluster is running"):
        tsray.init("auto")
    rt.chmod(0o700)
    cur.write_text(json.dumps({"address": node.address, "pid": 2**22 + 12345}))  # no such process
    with pytest.raises(tsray.ConnectionError, match="no tsray cluster is running"):
        tsray.init("auto")


def test_init_times_out_without_a_node(tmp_path: Path) -> None:
    # The error names the timeout path; how long it took is not asserted (docs/testing.md).
    with pytest.raises(tsray.ConnectionError, match="no tsray cluster answered"):
        tsray.init(f"ipc://{tmp_path}/nobody.sock", connect_timeout=0.3)
    assert not tsray.is_initialized()


def test_actor_call_and_ref_counting(node: ScriptedNode, client: tsray.Client) -> None:
    node.actors[("ns1", "counter")] = pb.GetActorReply(actor_id="act-1", class_name="Counter", methods=["add", "get"])
    add_handler(node)
    h = tsray.get_actor("counter")
    assert (h.actor_id, h.class_name, h.methods) == ("act-1", "Counter", ["add", "get"])
    with pytest.raises(AttributeError, match="has no method 'nope'"):
        h.nope.remote()
    ref = h.add.remote(2, 40)
    assert tsray.get(ref, timeout=10) == 42
    assert tsray.get([ref, ref]) == [42, 42]  # cached
    spec = node.specs[-1]
    rid = spec.return_ids[0]
    assert spec.task_id.startswith("py") and rid == f"{spec.task_id}.0"
    assert (spec.actor_id, spec.method, spec.xlang, spec.num_returns, spec.job_id) == ("act-1", "add", True, 1, client.job_id)
    # RefUpdates{add: [return id]} precedes the SubmitTasks; the handle holds the actor id.
    order = [(k, m) for k, m in node.log if k in ("ref_updates", "submit_tasks")]
    first_add = next(i for i, (k, m) in enumerate(order) if k == "ref_updates" and rid in m.envelope.ref_updates.add)
    first_submit = next(i for i, (k, _) in enumerate(order) if k == "submit_tasks")
    assert first_add < first_submit
    node.wait_for(lambda: any("act-1" in u.add for u in node.ref_updates))
    del ref
    gc.collect()
    node.wait_for(lambda: any(rid in u.remove for u in node.ref_updates))
    del h
    gc.collect()
    node.wait_for(lambda: any("act-1" in u.remove for u in node.ref_updates))


def test_get_actor_not_found_names_the_namespace(node: ScriptedNode, client: tsray.Client) -> None:
    with pytest.raises(tsray.ActorNotFoundError, match='no actor named "ghost" in namespace "ns1"'):
        tsray.get_actor("ghost")
    with pytest.raises(tsray.ActorNotFoundError, match='namespace "other"'):
        tsray.get_actor("ghost", namespace="other")


def test_remote_function_spec(node: ScriptedNode, client: tsray.Client, tmp_path: Path) -> None:
    add_handler(node)
    add = tsray.remote_function("file:///app/tasks.ts", "add")
    assert tsray.get(add.remote(1, 2)) == 3
    spec = node.specs[-1]
    assert (spec.function.module_url, spec.function.key, spec.function.name) == ("file:///app/tasks.ts", "add#0", "add")
    assert spec.xlang and spec.max_retries == 3 and not spec.actor_id
    assert [(r.name, r.units) for r in spec.resources] == [("CPU", 10_000)]
    f2 = tsray.remote_function(str(tmp_path / "m.ts"), "add").options(num_cpus=0.5, num_returns=2, resources={"TPU": 1})
    node.handlers["add#0"] = lambda spec, args: [node.seal_value(r, i) for i, r in enumerate(spec.return_ids)]
    r0, r1 = f2.remote(1, 1)
    assert tsray.get([r0, r1]) == [0, 1]
    spec = node.specs[-1]
    assert spec.function.module_url == (tmp_path / "m.ts").as_uri()
    assert {r.name: r.units for r in spec.resources} == {"CPU": 5000, "TPU": 10_000}


def test_refs_and_handles_as_arguments(node: ScriptedNode, client: tsray.Client) -> None:
    seen: list[Any] = []
    node.handlers["echo#0"] = lambda spec, args: (seen.append((spec, args)), node.seal_value(spec.return_ids[0], "ok"))
    fn = tsray.remote_function("file:///x.ts", "echo")
    inner = tsray.put({"x": 1})
    h = tsray.ActorHandle("act-9", "C", ["m"])
    assert tsray.get(fn.remote(inner, [inner, h], np.arange(3, dtype=np.int32))) == "ok"
    spec, args = seen[0]
    assert spec.args[0].ref == inner.id  # a top-level ref is a dependency
    assert list(spec.args[1].value.contained_refs) == [inner.id, "act-9"]
    assert args[1][0] == inner and args[1][1].actor_id == "act-9"
    assert np.array_equal(args[2], np.arange(3, dtype=np.int32))


def test_put_small_and_large_and_get_back(node: ScriptedNode, client: tsray.Client) -> None:
    small = tsray.put({"a": [1, 2, 3]})
    big_value = np.arange(60_000, dtype=np.float64)  # 480 KB: through the arena
    big = tsray.put(big_value)
    assert any(k == "alloc_request" for k, _ in node.log)
    node.wait_for(lambda: big.id in node.objects)
    with node.lock:
        od, data = node.objects[big.id]
        assert od.WhichOneof("location") == "shm" and data is None
        assert np.array_equal(decode(node.arena[od.shm.offset : od.shm.offset + od.shm.length]), big_value)
    assert tsray.get(small) == {"a": [1, 2, 3]}
    got = tsray.get(big)
    assert np.array_equal(got, big_value) and not got.flags.writeable


def test_large_arguments_become_objects(node: ScriptedNode, client: tsray.Client) -> None:
    node.handlers["size#0"] = lambda spec, args: node.seal_value(spec.return_ids[0], len(args[0]))
    fn = tsray.remote_function("file:///x.ts", "size")
    assert tsray.get(fn.remote(b"x" * 300_000)) == 300_000
    spec = node.specs[-1]
    arg_id = f"{spec.task_id}.a0"
    assert spec.args[0].ref == arg_id
    node.wait_for(lambda: any(arg_id in u.remove for u in node.ref_updates))


def test_arena_values_are_zero_copy_and_unpinned_when_dropped(node: ScriptedNode, client: tsray.Client) -> None:
    with node.lock:
        node.seal_value("big-1", np.ones(50_000, dtype=np.float32), shm=True)
        node.seal_value("big-2", {"n": 7, "pad": "x" * 200_000}, shm=True)
    r1 = tsray.ObjectRef("big-1")
    r2 = tsray.ObjectRef("big-2")
    arr, d = tsray.get([r1, r2])
    assert d["n"] == 7
    node.wait_for(lambda: "big-2" in node.unpinned())  # nothing refers to its slice any more
    assert arr.sum() == 50_000 and "big-1" not in node.unpins()
    del arr
    gc.collect()
    node.wait_for(lambda: "big-1" in node.unpinned())


def _python_task_error() -> bytes:
    """The error object a Python worker stores for ``raise ValueError(...) from KeyError``."""
    try:
        try:
            {}["k"]
        except KeyError as e:
            raise ValueError("bad") from e
    except ValueError as err:
        return tsray.errors.exception_error_info(err, "f").SerializeToString()
    raise AssertionError("unreachable")


def test_errors_from_python_and_typescript_tasks(node: ScriptedNode, client: tsray.Client) -> None:
    unreadable = pb.ErrorInfo(type="UnreadableValueError", object_lost=pb.ErrorInfo.ObjectLost(object_id="m", reason="a JavaScript Map"))
    with node.lock:
        node.seal("e1", pb.ObjectData(encoding=pb.ENCODING_ERROR), _python_task_error())
        node.seal("e2", pb.ObjectData(encoding=pb.ENCODING_ERROR), TS_ERRORS["task_error_typescript"])
        node.seal("e3", pb.ObjectData(encoding=pb.ENCODING_ERROR), TS_ERRORS["actor_died"])
        node.seal("e4", pb.ObjectData(encoding=pb.ENCODING_ERROR), V8_VALUES["error-like object"])  # V8 bytes: not an ErrorInfo
        node.seal("e5", pb.ObjectData(encoding=pb.ENCODING_ERROR), unreadable.SerializeToString())
        node.seal("v8", pb.ObjectData(encoding=pb.ENCODING_V8), V8_VALUES["number 1"])  # unconverted
        node.seal("raw", pb.ObjectData(encoding=pb.ENCODING_RAW, raw_kind="Float64Array"), np.arange(3, dtype="<f8").tobytes())
    with pytest.raises(tsray.TaskError) as info:
        tsray.get(tsray.ObjectRef("e1"))
    assert (info.value.remote_name, info.value.remote_message, info.value.task_name, info.value.pid) == ("ValueError", "bad", "f", os.getpid())
    assert info.value.remote_language == "python" and "Traceback" in info.value.remote_stack
    assert isinstance(info.value.cause, tsray.RemoteError) and info.value.cause.name == "KeyError"
    assert info.value.__cause__ is info.value.cause and "--- caused by ---" in str(info.value)
    with pytest.raises(tsray.TaskError) as info:
        tsray.get(tsray.ObjectRef("e2"))
    assert info.value.remote_name == "Error" and info.value.remote_message == "root"  # the upstream cause
    assert "raised upstream in task g" in str(info.value)
    assert info.value.info["code"] == "E_RANGE" and info.value.info["props"] == {"retries": 3}
    assert info.value.info["cause"]["name"] == "TypeError" and info.value.info["cause"]["cause"]["message"] == "disk gone"
    with pytest.raises(tsray.ActorDiedError, match=r"actor Counter ✓ \(a1\) is dead: its constructor threw RangeError: bad start") as died:
        tsray.get(tsray.ObjectRef("e3"))
    assert "--- constructor error ---\nRangeError: bad start" in str(died.value)
    with pytest.raises(tsray.RemoteError, match="e4 is not a readable tsray.v1.ErrorInfo"):
        tsray.get(tsray.ObjectRef("e4"))
    with pytest.raises(tsray.UnreadableValueError, match="object m cannot be read from Python: a JavaScript Map"):
        tsray.get(tsray.ObjectRef("e5"))
    with pytest.raises(tsray.UnreadableValueError, match="V8 structured-clone format.*converts to msgpack"):
        tsray.get(tsray.ObjectRef("v8"))
    assert np.array_equal(tsray.get(tsray.ObjectRef("raw")), np.arange(3, dtype=np.float64))


def test_python_has_no_v8_reader() -> None:
    """Error objects are ErrorInfo and the node converts V8 values: the hand-written V8 reader is gone."""
    import sys

    import tsray.worker.runtime  # noqa: F401 - everything that reads objects is imported

    pkg = Path(tsray.__file__).parent
    assert not (pkg / "_v8.py").exists()
    assert "tsray._v8" not in sys.modules
    assert not [p.name for p in pkg.rglob("*.py") if "_v8" in p.read_text(encoding="utf-8")]


def test_get_timeout_and_wait(node: ScriptedNode, client: tsray.Client) -> None:
    r1, r2, r3 = (tsray.ObjectRef(f"later-{i}") for i in range(3))
    with pytest.raises(tsray.GetTimeoutError, match="waiting for 1 object"):
        tsray.get(r1, timeout=0.1)
    ready, rest = tsray.wait([r1, r2, r3], num_returns=1, timeout=0.05)
    assert ready == [] and rest == [r1, r2, r3]
    with node.lock:
        node.seal_value("later-2", 2)
        node.seal_value("later-1", 1)
    ready, rest = tsray.wait([r1, r2, r3], num_returns=2, timeout=10)
    assert ready == [r2, r3] and rest == [r1]
    ready, _ = tsray.wait([r1, r2, r3], num_returns=1)
    assert ready == [r2]

    def later() -> None:
        with node.lock:
            node.seal_value("later-0", 0)

    t = threading.Timer(0.05, later)
    t.start()
    assert tsray.get([r1, r2, r3], timeout=10) == [0, 1, 2]
    t.join()


def test_api_without_init_says_so() -> None:
    with pytest.raises(tsray.ConnectionError, match="call tsray.init"):
        tsray.get(tsray.ObjectRef("x"))
    with pytest.raises(tsray.NoClientError, match="no tsray client"):
        tsray.ActorHandle("a", "C", []).m.remote()
