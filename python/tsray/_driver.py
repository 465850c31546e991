"""The client driver's connection to a node: :class:`Client` and :class:`RemoteFunction`.

A ZeroMQ DEALER to the node's ROUTER, speaking the worker protocol as a client driver
(``RegisterWorker{kind: "driver"}``, a ``Heartbeat`` every second). One background thread owns the
socket; API calls queue messages for it, so the calls are thread-safe. The module-level API
(``tsray.init``, ``tsray.get``, ...) over one process-wide client is :mod:`tsray.client`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, cast

import zmq

from ._address import _cluster_entry, _local_node_id, _local_token, _socket_node_id, env_token, resolve_address
from ._curve import make_client
from ._objects import INLINE_THRESHOLD, Arena, ArenaError, object_value
from .errors import ActorNotFoundError, AuthenticationError, ConnectionError, GetTimeoutError, ObjectStoreFullError, TsrayError
from .protocol import Buffer, PayloadWriter, decode_message, encode_message, pb, token_proof
from .refs import ActorHandle, ObjectRef
from .xlang import Decoder, encode_with_refs

__all__ = ["Client", "RemoteFunction"]

log = logging.getLogger("tsray.client")

HEARTBEAT_SECONDS = 1.0
CPU_UNITS = 10_000  # resources are fixed point, 1e-4 units


class _Sub:
    __slots__ = ("od", "frames", "seq")

    def __init__(self) -> None:
        self.od: pb.ObjectData | None = None
        self.frames: list[Any] | None = None
        self.seq = 0


class RemoteFunction:
    """A TypeScript remote function, called from Python: ``f.remote(*args)`` -> :class:`ObjectRef`."""

    def __init__(self, client: Client, module_url: str, name: str, options: dict[str, Any]) -> None:
        self._client = client
        self.module_url = module_url
        self.name = name
        self._options = options

    def remote(self, *args: Any) -> Any:
        """Submit a call; returns one ObjectRef (a list of ``num_returns`` refs when that is > 1)."""
        return self._client.submit_function(self, args, self._options)

    def options(
        self,
        *,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        resources: dict[str, float] | None = None,
        num_returns: int | None = None,
        max_retries: int | None = None,
        name: str | None = None,
        key: str | None = None,
    ) -> RemoteFunction:
        """The same function with other options (resources, returns, retries, task name, registration key)."""
        opts = dict(self._options)
        for k, v in (
            ("num_cpus", num_cpus),
            ("num_gpus", num_gpus),
            ("resources", resources),
            ("num_returns", num_returns),
            ("max_retries", max_retries),
            ("name", name),
            ("key", key),
        ):
            if v is not None:
                opts[k] = v
        return RemoteFunction(self._client, self.module_url, self.name, opts)

    def __repr__(self) -> str:
        return f"RemoteFunction({self.module_url}, {self.name})"


class Client:
    """One connection of this process to a tsray node (see the module docstring)."""

    def __init__(
        self,
        address: str = "auto",
        namespace: str | None = None,
        token: str | None = None,
        connect_timeout: float | None = None,
        *,
        runtime_env: dict[str, Any] | None = None,
        code_root: str = "",
        job_id: str | None = None,
    ) -> None:
        self.address = resolve_address(address)
        #: The job's runtime env (Ray's dict), merged into every Python task's and actor's.
        self.job_runtime_env = runtime_env
        #: The driver's code root, sent to Python workers (tsray._submit.CODE_ROOT_VAR).
        self.code_root = code_root
        if token is None:
            token = env_token() or _local_token(self.address)
        self.remote = self.address.startswith("remote://")
        # The node attached to: the audience of the registration's token proof.
        node_id = "" if self.remote else (_local_node_id(self.address) or _socket_node_id(self.address) or os.environ.get("TSRAY_NODE_ID", ""))
        if self.remote:
            self.address, node_id = _cluster_entry(self.address.removeprefix("remote://"), token, connect_timeout)
        self.job_id = job_id or secrets.token_hex(4)
        self.namespace = namespace if namespace is not None else f"anon-{self.job_id}"
        self.worker_id = f"c{secrets.token_hex(6)}"
        self._prefix = f"py{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.ROUTING_ID, self.worker_id.encode())
        self._sock.setsockopt(zmq.SNDHWM, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)
        self._sock.setsockopt(zmq.LINGER, 1000)
        make_client(self._sock, self.address, token)
        self._sock.connect(self.address)
        self._out: deque[tuple[Any, ...]] = deque()
        self._released: deque[str] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Closed when the client object is gone (finalizers may still wake it after close()).
        # Not at exit: the atexit shutdown() still wakes the IO thread through them.
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w).atexit = False
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._subs: dict[str, _Sub] = {}
        self._seq = 0
        self._counts: dict[str, int] = {}
        self._requests: dict[int, Future[Any]] = {}
        self._req_seq = itertools.count(1)
        self._accepted: Future[pb.WorkerAccepted] = Future()
        self._arena: Arena | None = None
        self._incoming: dict[str, list[Any]] = {}
        self._closing = False
        self.closed = False
        # Set once the node dropped this driver (silent past TSRAY_CLIENT_TIMEOUT_MS, or the node restarted).
        self._dropped: ConnectionError | None = None
        self.node_id = ""
        self.shm_path = ""
        self.shm_size = 0
        self.inline_threshold = INLINE_THRESHOLD
        self._decoder = Decoder(self._make_ref, self._make_handle)
        self._thread = threading.Thread(target=self._io_main, name=f"tsray-client-{self.worker_id}", daemon=True)
        self._thread.start()
        self._enqueue(
            (
                "msg",
                pb.RegisterWorker(
                    worker_id=self.worker_id, pid=os.getpid(), language="python", kind="driver",
                    namespace=self.namespace, job_id=self.job_id, remote=self.remote,
                    **(token_proof(token, self.worker_id, "RegisterWorker", node_id) if token else {}),
                ),
                (),
            )
        )
        timeout = connect_timeout if connect_timeout is not None else float(os.environ.get("TSRAY_CONNECT_TIMEOUT_MS", "10000")) / 1000
        try:
            acc = self._accepted.result(timeout)
        except FutureTimeout:
            self.close(goodbye=False)
            raise ConnectionError(
                f"init(): no tsray cluster answered at {self.address} within {timeout:g} s (is it running? is the address right?)"
            ) from None
        self.node_id = acc.node_id
        self.shm_path = acc.shm_path
        self.shm_size = acc.shm_size
        if acc.inline_threshold:
            self.inline_threshold = acc.inline_threshold
        if acc.namespace:
            self.namespace = acc.namespace

    # ------------------------------------------------------------------ ids and refs

    def _next_id(self, kind: str) -> str:
        return f"{self._prefix}{kind}{next(self._counter):x}"

    def new_id(self, kind: str) -> str:
        """A new id of this connection (task, actor, placement group)."""
        return self._next_id(kind)

    def send(self, body: Any) -> None:
        """Queue one control message to the node (placement groups, ...)."""
        self._enqueue(("msg", body, ()))

    def ref_of(self, oid: str) -> ObjectRef:
        """A held ref to an object id the node makes (a placement group's ready object, a generator item)."""
        return self._make_ref(oid)

    def _hold(self, oid: str) -> None:
        with self._lock:
            n = self._counts.get(oid, 0)
            self._counts[oid] = n + 1
            if n == 0:
                self._enqueue(("add", oid))

    def _make_ref(self, oid: str) -> ObjectRef:
        ref = ObjectRef(oid, self)
        self._hold(oid)
        fin = weakref.finalize(ref, self._on_release, oid)
        fin.atexit = False
        return ref

    def _make_handle(self, actor_id: str, class_name: str, methods: list[str]) -> ActorHandle:
        h = ActorHandle(actor_id, class_name, methods, self)
        self._hold(actor_id)
        fin = weakref.finalize(h, self._on_release, actor_id)
        fin.atexit = False
        return h

    def _on_release(self, oid: str) -> None:
        # Runs wherever the garbage collector runs: no locks, just hand it to the IO thread.
        self._released.append(oid)
        self._wake()

    def _unpin(self, oid: str) -> None:
        self._out.append(("unpin", oid))
        self._wake()

    def _process_releases(self) -> None:
        while self._released:
            oid = self._released.popleft()
            with self._lock:
                n = self._counts.get(oid, 0) - 1
                if n > 0:
                    self._counts[oid] = n
                    continue
                self._counts.pop(oid, None)
                sub = self._subs.pop(oid, None)
            if sub is not None and sub.od is not None and sub.od.WhichOneof("location") == "shm":
                self._out.append(("unpin", oid))
            self._out.append(("remove", oid))

    # ------------------------------------------------------------------ IO thread

    def _wake(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        if self.closed:
            raise ConnectionError("the tsray client is shut down; call tsray.init() again")
        self._out.append(item)
        self._wake()

    def _io_main(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        seq = 0
        next_hb = time.monotonic() + HEARTBEAT_SECONDS
        try:
            while True:
                wait_ms = max(0, int((next_hb - time.monotonic()) * 1000))
                events = dict(poller.poll(wait_ms))
                if self._wake_r in events:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                if self._sock in events:
                    while cast(int, self._sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                        self._handle(self._sock.recv_multipart(copy=False))
                self._process_releases()
                self._send_pending()
                if self._closing:
                    self._process_releases()
                    self._send_pending()  # what close() queued last (the goodbye)
                    break
                if time.monotonic() >= next_hb:
                    seq += 1
                    if self._accepted.done() and self._dropped is None:
                        self._send(pb.Heartbeat(seq=seq))
                    next_hb = time.monotonic() + HEARTBEAT_SECONDS
        except Exception:  # pragma: no cover - a bug; keep the process alive, fail the waiters
            log.exception("tsray client IO thread failed")
        finally:
            self._sock.close(linger=1000)
            self._ctx.term()
            with self._cond:
                self.closed = True
                self._cond.notify_all()
            for fut in list(self._requests.values()):
                if not fut.done():
                    fut.set_exception(ConnectionError("the tsray client connection closed"))

    def _send(self, body: Any, payloads: Sequence[Buffer] = ()) -> None:
        self._sock.send_multipart(encode_message(body, payloads), copy=False)

    def _send_pending(self) -> None:
        out = self._out
        while out:
            kind = out[0][0]
            if kind in ("add", "remove", "unpin"):
                upd = pb.RefUpdates()
                removed: set[str] = set()
                while out and out[0][0] in ("add", "remove", "unpin"):
                    k, oid = out[0]
                    if k == "add" and oid in removed:
                        break  # a re-add after a remove goes in the next message (the node applies adds first)
                    out.popleft()
                    if k == "add":
                        upd.add.append(oid)
                    elif k == "remove":
                        upd.remove.append(oid)
                        removed.add(oid)
                    else:
                        upd.unpin.append(oid)
                self._send(upd)
            elif kind == "submit":
                writer = PayloadWriter()
                tasks = []
                while out and out[0][0] == "submit":
                    _, spec, payloads = out.popleft()
                    for a in spec.args:
                        if a.WhichOneof("kind") == "value" and a.value.WhichOneof("location") == "inline":
                            a.value.inline.CopyFrom(writer.add(payloads[a.value.inline.frame]))
                    tasks.append(spec)
                self._send(pb.SubmitTasks(tasks=tasks), writer.finish())
            elif kind == "put":
                writer = PayloadWriter()
                objs = []
                while out and out[0][0] == "put":
                    _, od, data = out.popleft()
                    if data is not None:
                        od.inline.CopyFrom(writer.add(data))
                    objs.append(od)
                self._send(pb.PutObjects(objects=objs), writer.finish())
            elif kind == "subscribe":
                ids: list[str] = []
                while out and out[0][0] == "subscribe":
                    ids.extend(out.popleft()[1])
                self._send(pb.SubscribeObjects(object_ids=ids))
            else:  # "msg"
                _, body, payloads = out.popleft()
                self._send(body, payloads)

    def _handle(self, frames: list[zmq.Frame]) -> None:
        try:
            msg = decode_message([f.buffer for f in frames])
        except Exception as e:
            log.error("tsray client rejected a message from the node: %s", e)
            return
        env = msg.envelope
        kind = msg.kind
        if kind == "object_chunk":
            # A remote client: large objects come in chunks; assemble them, then as inline.
            c = env.object_chunk
            inc = self._incoming.get(c.object_id)
            if inc is None:
                if not c.HasField("header"):
                    return
                inc = self._incoming[c.object_id] = [c.header, bytearray(c.total), 0]
            chunk = bytes(msg.payloads[0]) if msg.payloads else b""
            inc[1][c.offset : c.offset + len(chunk)] = chunk
            inc[2] += len(chunk)
            if inc[2] < c.total:
                return
            del self._incoming[c.object_id]
            od = pb.ObjectData()
            od.CopyFrom(inc[0])
            od.object_id = c.object_id
            od.inline.CopyFrom(pb.Payload(frame=0, offset=0, length=c.total))
            with self._cond:
                sub = self._subs.get(od.object_id)
                if sub is not None and sub.od is None:
                    self._seq += 1
                    sub.od, sub.frames, sub.seq = od, [bytes(inc[1])], self._seq
                self._cond.notify_all()
            return
        if kind == "objects_ready":
            with self._cond:
                for od in env.objects_ready.objects:
                    sub = self._subs.get(od.object_id)
                    if sub is None or sub.od is not None:
                        if od.WhichOneof("location") == "shm":
                            self._out.append(("unpin", od.object_id))
                        continue
                    self._seq += 1
                    sub.od, sub.frames, sub.seq = od, msg.payloads, self._seq
                self._cond.notify_all()
        elif kind == "get_actor_reply":
            fut = self._requests.pop(env.get_actor_reply.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(env.get_actor_reply)
        elif kind == "gcs_response":
            fut = self._requests.pop(env.gcs_response.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(env.gcs_response)
        elif kind == "alloc_reply":
            fut = self._requests.pop(env.alloc_reply.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(env.alloc_reply)
        elif kind == "worker_accepted":
            if not self._accepted.done():
                self._accepted.set_result(env.worker_accepted)
        elif kind == "shutdown":
            log.warning("tsray node closed the client connection: %s", env.shutdown.reason)
            self._closing = True
        elif kind == "error":
            if env.error.code == pb.ERROR_CODE_AUTH_FAILED and not self._accepted.done():
                self._accepted.set_exception(AuthenticationError(env.error.message))
                return
            if env.error.code == pb.ERROR_CODE_AUTH_FAILED:
                self._on_dropped(env.error.message)
                return
            log.error("tsray node reported a protocol error: %s", env.error.message)
        else:
            log.warning("tsray client: unexpected message kind %s from the node; ignored", kind)

    def _on_dropped(self, why: str) -> None:
        """The node no longer knows this driver (it refused a message after accepting us): fail every
        request, get and wait now and later with one ConnectionError, logged once."""
        if self._dropped is not None:
            return
        self._dropped = ConnectionError(
            f"the node {self.node_id} dropped this driver ({why}): it was silent too long "
            "(TSRAY_CLIENT_TIMEOUT_MS) or the node restarted; its work was released. Start the driver again."
        )
        log.error("%s", self._dropped)
        for fut in list(self._requests.values()):
            if not fut.done():
                fut.set_exception(self._dropped)
        self._requests.clear()
        with self._cond:
            self._cond.notify_all()

    def _request(self, make: Any, timeout: float | None) -> Any:
        if self._dropped is not None:
            raise self._dropped
        rid = next(self._req_seq)
        fut: Future[Any] = Future()
        self._requests[rid] = fut
        self._enqueue(("msg", make(rid), ()))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            self._requests.pop(rid, None)
            raise ConnectionError(f"the tsray node did not answer within {timeout} s") from None

    # ------------------------------------------------------------------ objects

    def arena(self) -> Arena:
        """The node's arena (mapped on first use; read-write when permitted, else read-only)."""
        if self._arena is None:
            if not self.shm_path:
                raise ArenaError("the node sent no arena path (WorkerAccepted.shm_path); it cannot share large objects")
            try:
                self._arena = Arena(self.shm_path, self.shm_size, writable=True)
            except ArenaError:
                self._arena = Arena(self.shm_path, self.shm_size, writable=False)
        return self._arena

    def _place(self, oid: str, data: bytes, refs: list[str]) -> tuple[pb.ObjectData, bytes | None]:
        """ObjectData for encoded bytes: inline (the bytes returned) or written into the arena (None)."""
        n = len(data)
        od = pb.ObjectData(object_id=oid, encoding=pb.ENCODING_MSGPACK, contained_refs=refs, size=n)
        if n > self.inline_threshold:
            arena: Arena | None
            try:
                arena = self.arena()
            except ArenaError:
                arena = None
            if arena is not None and arena.writable:
                reply = self._request(lambda rid: pb.AllocRequest(request_id=rid, size=n), 60.0)
                if reply.error:
                    try:
                        info = json.loads(reply.error)
                        err = ObjectStoreFullError(int(info["requested"]), int(info["capacity"]), int(info["used"]))
                    except (ValueError, KeyError, TypeError):
                        err = ObjectStoreFullError(n, self.shm_size, -1)
                    raise err
                arena.write(reply.slice.offset, data)
                od.shm.CopyFrom(pb.ShmSlice(offset=reply.slice.offset, length=n))
                return od, None
        # Small, or no writable arena: inline (the node keeps it in its heap).
        od.inline.CopyFrom(pb.Payload(frame=0, offset=0, length=n))
        return od, data

    def put(self, value: Any) -> ObjectRef:
        """Store ``value`` in the cluster; returns its ref."""
        oid = self._next_id("o")
        od, data = self._place(oid, *encode_with_refs(value, "put() value"))
        ref = self._make_ref(oid)
        self._enqueue(("put", od, data))
        return ref

    def _task_args(self, task_id: str, args: Sequence[Any], what: str) -> tuple[list[pb.TaskArg], list[bytes], list[str]]:
        targs: list[pb.TaskArg] = []
        payloads: list[bytes] = []
        temp: list[str] = []
        for i, a in enumerate(args):
            if isinstance(a, ObjectRef):
                targs.append(pb.TaskArg(ref=a.id))
                continue
            data, refs = encode_with_refs(a, f"{what} argument {i}")
            if len(data) > self.inline_threshold:
                oid = f"{task_id}.a{i}"
                od, inline = self._place(oid, data, refs)
                self._hold(oid)
                temp.append(oid)
                self._enqueue(("put", od, inline))
                targs.append(pb.TaskArg(ref=oid))
                continue
            od = pb.ObjectData(
                encoding=pb.ENCODING_MSGPACK, contained_refs=refs, size=len(data),
                inline=pb.Payload(frame=len(payloads), offset=0, length=len(data)),
            )
            payloads.append(data)
            targs.append(pb.TaskArg(value=od))
        return targs, payloads, temp

    def _submit(self, spec: pb.TaskSpec, payloads: list[bytes], temp: list[str]) -> list[ObjectRef]:
        refs = [self._make_ref(rid) for rid in spec.return_ids]  # RefUpdates{add} goes before the SubmitTasks
        self._enqueue(("submit", spec, payloads))
        for oid in temp:  # big arguments: the task holds them now
            self._released.append(oid)
        if temp:
            self._wake()
        return refs

    def submit_actor_call(self, handle: ActorHandle, method: str, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        """Submit ``handle.method(*args)`` (used by :class:`~tsray.refs.ActorMethod`): one ref, a list
        of ``num_returns`` refs, or a generator of refs (``num_returns="streaming"``)."""
        task_id = self._next_id("t")
        nr = options.get("num_returns", 1)
        streaming = nr == "streaming"
        n = 1 if streaming else int(nr)
        name = options.get("name") or f"{handle.class_name}.{method}"
        targs, payloads, temp = self._task_args(task_id, args, f"{name}.remote()")
        spec = pb.TaskSpec(
            task_id=task_id,
            function=pb.FunctionDescriptor(module_url="", key="", name=handle.class_name),
            args=targs,
            num_returns=n,
            streaming=streaming,
            return_ids=[f"{task_id}.{i}" for i in range(n)],
            name=name,
            job_id=self.job_id,
            actor_id=handle.actor_id,
            method=method,
            concurrency_group=options.get("concurrency_group", ""),
            max_retries=0,
            xlang=True,
        )
        refs = self._submit(spec, payloads, temp)
        if streaming:
            from ._remote import ObjectRefGenerator

            return ObjectRefGenerator(task_id, refs[0])
        return refs[0] if n == 1 else refs

    def submit_function(self, fn: RemoteFunction, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        """Submit a call of a TypeScript remote function (used by :class:`RemoteFunction`)."""
        task_id = self._next_id("t")
        n = int(options.get("num_returns", 1))
        name = options.get("name") or fn.name
        targs, payloads, temp = self._task_args(task_id, args, f"{name}.remote()")
        res = {"CPU": float(options.get("num_cpus", 1))}
        if options.get("num_gpus"):
            res["GPU"] = float(options["num_gpus"])
        res.update(options.get("resources") or {})
        spec = pb.TaskSpec(
            task_id=task_id,
            function=pb.FunctionDescriptor(module_url=fn.module_url, key=options.get("key") or f"{fn.name}#0", name=fn.name),
            args=targs,
            resources=[pb.ResourceAmount(name=k, units=round(v * CPU_UNITS)) for k, v in res.items() if v],
            num_returns=n,
            return_ids=[f"{task_id}.{i}" for i in range(n)],
            max_retries=int(options.get("max_retries", 3)),
            name=name,
            job_id=self.job_id,
            xlang=True,
        )
        refs = self._submit(spec, payloads, temp)
        return refs[0] if n == 1 else refs

    def _subscribe(self, ids: Iterable[str]) -> None:
        new: list[str] = []
        with self._lock:
            for oid in ids:
                if oid not in self._subs:
                    self._subs[oid] = _Sub()
                    new.append(oid)
        if new:
            self._enqueue(("subscribe", new))

    def get(self, refs: ObjectRef | Sequence[ObjectRef], timeout: float | None = None) -> Any:
        """The value of a ref (or the values of a list of refs), waiting up to ``timeout`` seconds.

        Raises the task's error (:class:`~tsray.errors.TaskError`, ``ActorDiedError``, ...) for a failed
        task, :class:`~tsray.errors.GetTimeoutError` on timeout.
        """
        single = isinstance(refs, ObjectRef)
        lst: list[ObjectRef] = [refs] if isinstance(refs, ObjectRef) else list(refs)
        for r in lst:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"get() expects ObjectRefs, got {type(r).__name__}")
        ids = [r.id for r in lst]
        self._subscribe(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        taken: dict[str, tuple[pb.ObjectData, list[Any]]] = {}
        with self._cond:
            while True:
                pending = [i for i in ids if (s := self._subs.get(i)) is None or s.od is None]
                if not pending:
                    break
                if self._dropped is not None:
                    raise self._dropped
                if self.closed:
                    raise ConnectionError("the tsray client connection closed while get() waited")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise GetTimeoutError(timeout or 0, pending)
                self._cond.wait(left)
            for i in ids:
                if i in taken:
                    continue
                s = self._subs[i]
                assert s.od is not None and s.frames is not None
                taken[i] = (s.od, s.frames)
                if s.od.WhichOneof("location") == "shm":
                    del self._subs[i]  # its delivery pin now belongs to the decoded value
        values: dict[str, Any] = {}
        for i in ids:
            if i not in values:
                od, frames = taken[i]
                values[i] = object_value(od, frames, self.arena, self._decoder, self._unpin)
        out = [values[i] for i in ids]
        return out[0] if single else out

    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int = 1, timeout: float | None = None
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Wait until ``num_returns`` of ``refs`` are ready (or ``timeout``); returns ``(ready, not_ready)``
        in the order of ``refs``."""
        lst = list(refs)
        if num_returns < 0 or num_returns > len(lst):
            raise ValueError(f"wait(): num_returns={num_returns} must be between 0 and len(refs)={len(lst)}")
        self._subscribe(r.id for r in lst)
        deadline = None if timeout is None else time.monotonic() + timeout

        def ready_ids() -> set[str]:
            return {r.id for r in lst if (s := self._subs.get(r.id)) is not None and s.od is not None}

        with self._cond:
            while True:
                ready = ready_ids()
                if len(ready) >= num_returns or self.closed:
                    break
                if self._dropped is not None:
                    raise self._dropped
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
        done: list[ObjectRef] = []
        rest: list[ObjectRef] = []
        for r in lst:
            (done if r.id in ready and len(done) < max(num_returns, 0) else rest).append(r)
        return done, rest

    def get_actor(self, name: str, namespace: str | None = None, timeout: float = 30.0) -> ActorHandle:
        """The handle of a named actor; :class:`~tsray.errors.ActorNotFoundError` names the namespace."""
        if not isinstance(name, str) or not name:
            raise ValueError("get_actor(): name must be a non-empty string")
        ns = namespace or ""
        reply = self._request(lambda rid: pb.GetActorRequest(request_id=rid, name=name, namespace=ns), timeout)
        if reply.error:
            raise ActorNotFoundError(name, namespace or self.namespace)
        return self._make_handle(reply.actor_id, reply.class_name, list(reply.methods))

    # ------------------------------------------------------------------ state API

    def state_call(self, method: str, timeout: float = 30.0) -> Any:
        """A state API call answered by the node this client is attached to (cluster-wide through
        the head when the node is part of a multi-node cluster); the decoded JSON answer."""
        reply = self._request(lambda rid: pb.GcsRequest(request_id=rid, state_query=pb.StateSelector(what=method)), timeout)
        if reply.HasField("error"):
            raise TsrayError(f"the tsray node could not answer {method}: {reply.error.message}")
        return json.loads(reply.state.json[0]) if reply.state.json else None

    def cluster_resources(self) -> dict[str, float]:
        """Total resources of the cluster's alive nodes (as Ray's ``cluster_resources()``)."""
        return cast(dict[str, float], self.state_call("cluster_resources"))

    def available_resources(self) -> dict[str, float]:
        """Resources of the cluster's alive nodes free now (as Ray's ``available_resources()``)."""
        return cast(dict[str, float], self.state_call("available_resources"))

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes, as Ray's ``nodes()`` (NodeID, Alive, Resources, NodeManagerAddress, Labels)."""
        return [_ray_node(n) for n in cast(list[dict[str, Any]], self.state_call("nodes") or [])]

    def remote_function(self, module_url: str, name: str, **options: Any) -> RemoteFunction:
        """A TypeScript remote function: ``module_url`` is the defining module (a ``file://`` URL, or a
        path that is turned into one), ``name`` the function's name (key ``<name>#0``)."""
        if "://" not in module_url:
            module_url = Path(module_url).resolve().as_uri()
        return RemoteFunction(self, module_url, name, options)

    def kill(self, handle: ActorHandle, no_restart: bool = True) -> None:
        """Kill an actor at once."""
        self._enqueue(("msg", pb.KillActor(actor_id=handle.actor_id, no_restart=no_restart), ()))

    def cancel(self, ref: ObjectRef, force: bool = False) -> None:
        """Cancel the task that produces ``ref``."""
        self._enqueue(("msg", pb.CancelRequest(object_id=ref.id, force=force), ()))

    def close(self, goodbye: bool = True) -> None:
        """Say goodbye to the node (``Heartbeat{goodbye}``) and close the connection."""
        if self.closed or self._closing:
            return
        if goodbye and self._accepted.done():
            self._out.append(("msg", pb.Heartbeat(goodbye=True), ()))
        self._closing = True
        self._wake()
        self._thread.join(timeout=5)


def _ray_node(n: dict[str, Any]) -> dict[str, Any]:
    """A state API node record (``NodeState``) with Ray's keys added (its own keys stay)."""
    return {
        **n,
        "NodeID": n.get("nodeId", ""),
        "Alive": bool(n.get("alive", False)),
        "Resources": n.get("resourcesTotal", {}),
        "NodeManagerAddress": n.get("address", ""),
        "NodeManagerHostname": n.get("hostname", ""),
        "Labels": n.get("labels", {}),
    }


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


