"""The Python worker process: runs tasks and actors for a tsray node (docs/xlang.md).

One process, one asyncio loop: a receiver drains the node's messages; an executor runs tasks in
arrival order (sync functions directly on the loop, ``async def`` ones awaited); an async actor's
calls run as asyncio tasks, concurrently up to each concurrency group's limit. Results are batched
and sent at most once per loop turn (sooner before slow functions, as the TypeScript worker does).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import logging
import os
import stat
import sys
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .._main_defs import load_definitions
from .._objects import INLINE_THRESHOLD, Arena, object_value
from .._remote import MAIN_KEY_SUFFIX, unwrap
from ..errors import FunctionNotFoundError, exception_error_info
from ..protocol import Buffer, PayloadWriter, decode_message, encode_message, pb, token_proof
from ..refs import ActorMethodNotFoundError
from ..xlang import Decoder, encode_with_refs
from .channel import NodeChannel

log = logging.getLogger("tsray.worker")

#: Line a worker writes before output of a task with a new name (the node prefixes lines with it).
TASK_NAME_MARKER = "\0tsray:name:"


# ---------------------------------------------------------------------------------------------- output


class _Output:
    """The name output is attributed to (task name, or actor class name)."""

    name: str = "worker"


class TaggedStream(io.TextIOBase):
    """A text stream that announces the current task name before output of a task with a new name."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self._announced: str | None = None
        self._at_line_start = True

    def write(self, s: str) -> int:
        name = _Output.name
        if name != self._announced:
            self._inner.write(("" if self._at_line_start else "\n") + TASK_NAME_MARKER + name + "\n")
            self._announced = name
        if s:
            self._at_line_start = s.endswith("\n")
        n = self._inner.write(s)
        return len(s) if n is None else n

    def flush(self) -> None:
        self._inner.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._inner.fileno()

    def isatty(self) -> bool:
        return self._inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._inner.errors

    @property
    def buffer(self) -> Any:
        return self._inner.buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _install_output_tags() -> None:
    for stream_name in ("stdout", "stderr"):
        stream = getattr(sys, stream_name)
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(line_buffering=True)
        setattr(sys, stream_name, TaggedStream(stream))


# ---------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class WorkerContext:
    """Where this worker process runs: its node's address and the job's code root (nested work)."""

    address: str
    code_root: str


_context: WorkerContext | None = None


def current_worker_context() -> WorkerContext | None:
    """The context of this process when it is a Python worker started by a node, else None."""
    return _context


def current_actor_id() -> str | None:
    """The id of the actor this worker process is, if it is one."""
    rt = _runtime
    return rt._actor.actor_id if rt is not None and rt._actor is not None else None


class _NestedOwner:
    """Owner of refs and actor handles a worker receives: the worker's own driver connection to its
    node, made when first used (``handle.method.remote()`` in a task calls another actor)."""

    def __getattr__(self, name: str) -> Any:
        from ..client import _current

        return getattr(_current("a nested call in a tsray worker"), name)


_NESTED = _NestedOwner()


_runtime: WorkerRuntime | None = None


def report_state(what: str) -> bool:
    """Send a one-way state call to this worker's node (``engine:<json>``: an engine actor's load
    for the dashboard). Must run on the worker's event loop. False when this process is no tsray
    worker. The node's answer (request id 0) is dropped on arrival."""
    rt = _runtime
    if rt is None:
        return False
    rt._send(pb.GcsRequest(request_id=0, state_query=pb.StateSelector(what=what)))
    return True


def _borrowed(obj: Any, oid: str) -> Any:
    """Hold ``oid`` through this worker's connection while ``obj`` lives: an actor keeping a handle
    or ref it was given (the caller may drop its own at once) keeps the actor or object alive."""
    rt = _runtime
    if rt is not None:
        rt.hold(oid)
        fin = weakref.finalize(obj, rt.release, oid)
        fin.atexit = False
    return obj


def _nested_ref(object_id: str) -> Any:
    from ..refs import ObjectRef

    return _borrowed(ObjectRef(object_id, _NESTED), object_id)


def _nested_handle(actor_id: str, class_name: str, methods: list[str]) -> Any:
    from ..refs import ActorHandle

    return _borrowed(ActorHandle(actor_id, class_name, methods, _NESTED), actor_id)


@dataclass
class _Job:
    exec: pb.TaskExecution
    frames: Sequence[Buffer]
    cancelled: bool = False
    atask: asyncio.Future[Any] | None = None


@dataclass
class _Actor:
    instance: Any
    class_name: str
    is_async: bool
    limits: dict[str, int]
    method_group: dict[str, str]
    actor_id: str = ""
    running: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, deque[_Job]] = field(default_factory=dict)


@dataclass
class _Pending:
    result: pb.TaskResult
    payloads: list[Buffer]


def _is_async_class(cls: type) -> bool:
    for _, member in inspect.getmembers(cls):
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            return True
    return False


class _Cancelled(Exception):
    pass


# ---------------------------------------------------------------------------------------------- worker


class WorkerRuntime:
    """The worker side of the node protocol for Python (see the module docstring)."""

    def __init__(self, worker_id: str, address: str, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.worker_id = worker_id
        self.address = address
        self.node_id = env.get("TSRAY_NODE_ID", "")
        self.job_id = env.get("TSRAY_JOB_ID", "")
        self._arena_fd = int(env.get("TSRAY_ARENA_FD", "3") or "3")
        self._arena_size = int(env.get("TSRAY_ARENA_SIZE", "0") or "0")
        self._arena: Arena | None = None
        self.inline_threshold = INLINE_THRESHOLD
        self._channel = NodeChannel(worker_id, address, env.get("TSRAY_NODE_STREAM", ""), env.get("TSRAY_TOKEN"))
        self._decoder = Decoder(_nested_ref, _nested_handle)
        self._queue: deque[_Job] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._pending: list[_Pending] = []
        self._first_pending = 0.0
        self._unpins: list[str] = []
        self._held: dict[str, int] = {}
        self._ref_changes: list[tuple[str, str]] = []
        self._released: deque[str] = deque()
        self._flush_queued = False
        self._alloc_seq = 0
        self._allocs: dict[int, asyncio.Future[int]] = {}
        self._actor: _Actor | None = None
        self._active: dict[str, _Job] = {}
        self._modules: dict[str, Any] = {}
        self._slow: dict[str, float] = {}
        self._stop: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ plumbing

    def _send(self, body: Any, payloads: Sequence[Buffer] = ()) -> None:
        self._channel.send(encode_message(body, payloads))

    def arena(self) -> Arena:
        """The node's arena, mapped on first use."""
        if self._arena is None:
            self._arena = Arena(f"/proc/self/fd/{self._arena_fd}", self._arena_size, writable=True)
        return self._arena

    def _unpin(self, object_id: str) -> None:
        self._unpins.append(object_id)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        import threading

        if threading.get_ident() == self._loop_thread:
            self._schedule_flush()
        else:
            loop.call_soon_threadsafe(self._schedule_flush)

    def _schedule_flush(self) -> None:
        if self._flush_queued or self._loop is None:
            return
        self._flush_queued = True
        self._loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        self._flush_queued = False
        self._flush_results()

    def hold(self, oid: str) -> None:
        """One more local holder of ``oid`` (a decoded ref or handle); the first one adds a reference
        of this connection (sent before the results of the task that decoded it)."""
        n = self._held.get(oid, 0)
        self._held[oid] = n + 1
        if n == 0:
            self._ref_changes.append(("add", oid))

    def release(self, oid: str) -> None:
        """A holder is gone (a finalizer: any thread); the last one removes the reference."""
        self._released.append(oid)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule_flush)

    def _flush_refs(self) -> None:
        while self._released:
            oid = self._released.popleft()
            n = self._held.get(oid, 0) - 1
            if n > 0:
                self._held[oid] = n
            else:
                self._held.pop(oid, None)
                self._ref_changes.append(("remove", oid))
        if self._unpins or self._ref_changes:
            unpins, self._unpins = self._unpins, []
            changes, self._ref_changes = self._ref_changes, []
            # A re-add after a remove goes in the next message (the node applies adds first).
            while changes:
                add: list[str] = []
                remove: list[str] = []
                while changes and not (changes[0][0] == "add" and changes[0][1] in remove):
                    kind, oid = changes.pop(0)
                    (add if kind == "add" else remove).append(oid)
                self._send(pb.RefUpdates(add=add, remove=remove, unpin=unpins))
                unpins = []
            if unpins:
                self._send(pb.RefUpdates(unpin=unpins))

    def _flush_results(self) -> None:
        self._flush_refs()
        if not self._pending:
            return
        writer = PayloadWriter()
        results = []
        for p in self._pending:
            for od in p.result.returns:
                if od.WhichOneof("location") == "inline":
                    data = p.payloads[od.inline.frame]
                    od.inline.CopyFrom(writer.add(data))
            results.append(p.result)
        self._pending = []
        self._send(pb.TaskResults(results=results), writer.finish())

    def _add_result(self, result: pb.TaskResult, payloads: list[Buffer]) -> None:
        if not self._pending:
            self._first_pending = time.perf_counter()
        self._pending.append(_Pending(result, payloads))
        self._schedule_flush()

    # ------------------------------------------------------------------ main loop

    async def run(self) -> int:
        """Register, serve until Shutdown (returns 0) or the node goes away."""
        self._loop = asyncio.get_running_loop()
        import threading

        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._stop = self._loop.create_future()
        self._watch_stdin()
        token = os.environ.get("TSRAY_TOKEN", "")
        proof = token_proof(token, self.worker_id, "RegisterWorker", self.node_id) if token else {}
        receiver = await self._channel.open(self._handle_buffers, self._node_gone)
        self._send(pb.RegisterWorker(worker_id=self.worker_id, pid=os.getpid(), language="python", kind="worker", **proof))
        executor = asyncio.ensure_future(self._execute_loop())
        try:
            code = await self._stop
        finally:
            for t in (receiver, executor, *self._tasks):
                t.cancel()
            with contextlib.suppress(BaseException):
                self._flush_results()
            self._channel.close()
        return code

    def _node_gone(self) -> None:
        """The stream connection closed: the node is gone (or closed it); stop as on Shutdown."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(1)

    def _watch_stdin(self) -> None:
        """Exit when stdin (a pipe from the node) closes: the node died."""
        assert self._loop is not None
        try:
            mode = os.fstat(0).st_mode
        except OSError:
            return
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            return

        def readable() -> None:
            try:
                chunk = os.read(0, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                assert self._loop is not None
                self._loop.remove_reader(0)
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(1)

        self._loop.add_reader(0, readable)

    def _handle_buffers(self, frames: list[memoryview]) -> None:
        try:
            msg = decode_message(frames)
        except Exception as e:  # malformed / version mismatch: report once per message, keep serving
            log.error("tsray worker %s rejected a message from its node: %s", self.worker_id, e)
            code = getattr(e, "code", pb.ERROR_CODE_MALFORMED)
            self._send(pb.ErrorReply(code=code, message=str(e)))
            return
        kind = msg.kind
        env = msg.envelope
        if kind == "execute_tasks":
            for ex in env.execute_tasks.tasks:
                self._queue.append(_Job(ex, msg.payloads))
            assert self._wake is not None
            self._wake.set()
        elif kind == "worker_accepted":
            acc = env.worker_accepted
            if acc.inline_threshold:
                self.inline_threshold = acc.inline_threshold
            if acc.shm_size and not self._arena_size:
                self._arena_size = acc.shm_size
        elif kind == "alloc_reply":
            r = env.alloc_reply
            fut = self._allocs.pop(r.request_id, None)
            if fut is not None and not fut.done():
                if r.error:
                    fut.set_exception(MemoryError(f"the node could not allocate {r.error}"))
                else:
                    fut.set_result(r.slice.offset)
        elif kind == "cancel_task":
            self._cancel(env.cancel_task.task_id)
        elif kind == "objects_ready":
            # This connection never subscribes (nested calls use the worker's own client
            # connection, tsray.client): give back any delivery pins.
            for od in env.objects_ready.objects:
                if od.WhichOneof("location") == "shm":
                    self._unpin(od.object_id)
        elif kind == "shutdown":
            if self._stop is not None and not self._stop.done():
                self._stop.set_result(0)
        elif kind == "error":
            log.error("tsray node reported a protocol error: %s", env.error.message)
        elif kind == "gcs_response" and env.gcs_response.request_id == 0:
            pass  # the answer to a one-way report_state() call
        else:
            log.warning("tsray worker: unexpected message kind %s from the node; ignored", kind)

    def _cancel(self, task_id: str) -> None:
        job = self._active.get(task_id)
        if job is None:
            job = next((j for j in self._queue if j.exec.task_id == task_id), None)
        if job is None and self._actor is not None:
            for q in self._actor.waiting.values():
                job = next((j for j in q if j.exec.task_id == task_id), None)
                if job:
                    break
        if job is None:
            return
        job.cancelled = True
        if job.atask is not None and not job.atask.done():
            job.atask.cancel()

    async def _execute_loop(self) -> None:
        assert self._wake is not None
        last_yield = time.perf_counter()
        while True:
            if not self._queue:
                self._flush_results()
                self._wake.clear()
                await self._wake.wait()
                last_yield = time.perf_counter()
                continue
            if time.perf_counter() - last_yield > 0.002:
                # A long run of work without a turn of the loop: let messages in (a cancel for a
                # queued job must be seen before the job starts). Two turns: one to poll the socket,
                # one for the receiver to handle what arrived.
                await self._channel.let_messages_in()
                last_yield = time.perf_counter()
                continue
            job = self._queue.popleft()
            ex = job.exec
            if job.cancelled:
                self._add_result(pb.TaskResult(task_id=ex.task_id, attempt=ex.attempt, status=pb.TASK_STATUS_CANCELLED), [])
                continue
            if self._actor is not None and self._actor.is_async and ex.actor_id and not ex.HasField("actor_creation"):
                self._start_concurrent(job)
                continue
            key = f"{ex.function.module_url}#{ex.function.key}#{ex.method}"
            now = time.perf_counter()
            if self._pending and (
                self._slow.get(key, 1.0) > 0.0005 or len(self._pending) >= 256 or now - self._first_pending > 0.0002
            ):
                self._flush_results()
            t0 = time.perf_counter()
            await self._execute(job)
            dt = time.perf_counter() - t0
            prev = self._slow.get(key)
            self._slow[key] = dt if prev is None else prev * 0.7 + dt * 0.3

    # ------------------------------------------------------------------ async actors

    def _start_concurrent(self, job: _Job) -> None:
        a = self._actor
        assert a is not None
        group = job.exec.concurrency_group or a.method_group.get(job.exec.method, "")
        a.waiting.setdefault(group, deque()).append(job)
        self._drain_group(group)

    def _drain_group(self, group: str) -> None:
        a = self._actor
        assert a is not None
        limit = a.limits.get(group, a.limits.get("", 1000))
        waiting = a.waiting.get(group)
        while waiting and a.running.get(group, 0) < limit:
            job = waiting.popleft()
            if job.cancelled:
                ex = job.exec
                self._add_result(pb.TaskResult(task_id=ex.task_id, attempt=ex.attempt, status=pb.TASK_STATUS_CANCELLED), [])
                continue
            a.running[group] = a.running.get(group, 0) + 1
            t = asyncio.ensure_future(self._execute(job))
            self._tasks.add(t)

            def done(t: asyncio.Task[Any], group: str = group) -> None:
                self._tasks.discard(t)
                a.running[group] -= 1
                self._drain_group(group)

            t.add_done_callback(done)

    # ------------------------------------------------------------------ execution

    def _load(self, fn: pb.FunctionDescriptor) -> Any:
        url = fn.module_url
        if not url.startswith("py:"):
            raise FunctionNotFoundError(url, fn.key, "a Python worker runs functions whose module_url is 'py:<module>'")
        module_name = url[3:]
        attr, _, tag = fn.key.partition("#")
        main_script = "#" + tag == MAIN_KEY_SUFFIX
        cache_key = module_name + MAIN_KEY_SUFFIX if main_script else module_name
        mod = self._modules.get(cache_key)
        if mod is None:
            # The driver's script: its definitions only (its main code must not run here).
            mod = load_definitions(module_name) if main_script else importlib.import_module(module_name)
            self._modules[cache_key] = mod
        attr = attr or fn.name
        obj: Any = mod
        for part in attr.split("."):
            try:
                obj = getattr(unwrap(obj), part)
            except AttributeError:
                raise FunctionNotFoundError(module_name, attr) from None
        return unwrap(obj)

    def _args(self, job: _Job) -> list[Any]:
        return [object_value(od, job.frames, self.arena, self._decoder, self._unpin) for od in job.exec.args]

    async def _execute(self, job: _Job) -> None:
        ex = job.exec
        name = ex.name or ex.function.name or ex.function.key or "task"
        creation = ex.HasField("actor_creation")
        is_call = bool(ex.actor_id) and not creation
        if self._actor is not None:
            _Output.name = self._actor.class_name
        elif creation:
            _Output.name = ex.actor_creation.class_name or name
        else:
            _Output.name = name
        self._active[ex.task_id] = job
        tid, attempt = ex.task_id, ex.attempt
        try:
            if is_call:
                a = self._actor
                method = getattr(a.instance, ex.method, None) if a is not None else None
                if a is None or method is None or not callable(method):
                    public = [m for m in dir(type(a.instance)) if not m.startswith("_")] if a is not None else []
                    raise ActorMethodNotFoundError(a.class_name if a else "actor", ex.method, public)
                fn = method
            else:
                fn = self._load(ex.function)
            args = self._args(job)
            if creation:
                self._create_actor(ex, fn, args)
                value: Any = None
            else:
                value = fn(*args)
            if ex.streaming:
                count = await self._stream(job, value)
                data, _ = encode_with_refs(count)
                od = pb.ObjectData(
                    object_id=ex.return_ids[0] if ex.return_ids else "",
                    encoding=pb.ENCODING_MSGPACK,
                    inline=pb.Payload(frame=0, offset=0, length=len(data)),
                    size=len(data),
                )
                self._add_result(
                    pb.TaskResult(task_id=tid, attempt=attempt, status=pb.TASK_STATUS_OK, returns=[od], num_items=count), [data]
                )
                return
            if inspect.isawaitable(value):
                job.atask = asyncio.ensure_future(value)
                value = await job.atask
            if job.cancelled:
                raise _Cancelled()
            ids = list(ex.return_ids)
            if len(ids) == 1:
                values = [value]
            elif not ids:
                values = []
            else:
                if not isinstance(value, (list, tuple)) or len(value) != len(ids):
                    got = f"a {type(value).__name__} of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
                    raise TypeError(
                        f"task {name} has num_returns={len(ids)} but returned {got}; return a list or tuple of exactly {len(ids)} values"
                    )
                values = list(value)
            returns = []
            payloads: list[Buffer] = []
            for i, v in enumerate(values):
                path = f"return value{f' {i}' if len(ids) > 1 else ''} of task {name}"
                returns.append(await self._object_data(ids[i], v, path, payloads))
            self._add_result(pb.TaskResult(task_id=tid, attempt=attempt, status=pb.TASK_STATUS_OK, returns=returns), payloads)
        except (asyncio.CancelledError, _Cancelled):
            self._add_result(pb.TaskResult(task_id=tid, attempt=attempt, status=pb.TASK_STATUS_CANCELLED), [])
        except Exception as err:
            if job.cancelled:
                self._add_result(pb.TaskResult(task_id=tid, attempt=attempt, status=pb.TASK_STATUS_CANCELLED), [])
                return
            self._add_error(job, name, err)
        finally:
            self._active.pop(ex.task_id, None)
            job.atask = None

    def _add_error(self, job: _Job, name: str, err: BaseException) -> None:
        ex = job.exec
        data = exception_error_info(err, name).SerializeToString()
        od = pb.ObjectData(
            object_id=ex.return_ids[0] if ex.return_ids else "",
            encoding=pb.ENCODING_ERROR,
            inline=pb.Payload(frame=0, offset=0, length=len(data)),
            size=len(data),
        )
        self._add_result(
            pb.TaskResult(
                task_id=ex.task_id, attempt=ex.attempt, status=pb.TASK_STATUS_ERROR, returns=[od], error_name=type(err).__name__
            ),
            [data],
        )

    def _create_actor(self, ex: pb.TaskExecution, cls: Any, args: list[Any]) -> None:
        c = ex.actor_creation
        instance = cls(*args)
        class_name = c.class_name or getattr(cls, "__name__", "Actor")
        is_async = c.is_async or (isinstance(cls, type) and _is_async_class(cls))
        limits = {"": c.max_concurrency or 1000}
        method_group: dict[str, str] = {}
        for g in c.concurrency_groups:
            limits[g.name] = g.max_concurrency or 1
            for m in g.methods:
                method_group[m] = g.name
        self._actor = _Actor(instance, class_name, is_async, limits, method_group, c.actor_id)
        _Output.name = class_name

    async def _object_data(self, object_id: str, value: Any, path: str, payloads: list[Buffer]) -> pb.ObjectData:
        data, refs = encode_with_refs(value, path)
        n = len(data)
        od = pb.ObjectData(object_id=object_id, encoding=pb.ENCODING_MSGPACK, contained_refs=refs, size=n)
        if n <= self.inline_threshold:
            od.inline.CopyFrom(pb.Payload(frame=len(payloads), offset=0, length=n))
            payloads.append(data)
            return od
        off = await self._alloc(n)
        self.arena().write(off, data)
        od.shm.CopyFrom(pb.ShmSlice(offset=off, length=n))
        return od

    async def _alloc(self, size: int) -> int:
        assert self._loop is not None
        self._alloc_seq += 1
        rid = self._alloc_seq
        fut: asyncio.Future[int] = self._loop.create_future()
        self._allocs[rid] = fut
        self._flush_refs()
        self._send(pb.AllocRequest(request_id=rid, size=size))
        return await fut

    async def _stream(self, job: _Job, gen: Any) -> int:
        ex = job.exec
        name = ex.name or ex.function.name
        is_async = inspect.isasyncgen(gen)
        if not is_async and not inspect.isgenerator(gen) and not hasattr(gen, "__next__"):
            raise TypeError(f"streaming task {name} must be a generator function (def ... yield, or async def ... yield)")
        i = 0
        try:
            while True:
                if job.cancelled:
                    raise _Cancelled()
                if is_async:
                    job.atask = asyncio.ensure_future(gen.__anext__())
                    try:
                        item = await job.atask
                    except StopAsyncIteration:
                        return i
                    finally:
                        job.atask = None
                else:
                    try:
                        item = next(gen)
                    except StopIteration:
                        return i
                payloads: list[Buffer] = []
                od = await self._object_data(f"{ex.task_id}.g{i}", item, f"item {i} of {name}", payloads)
                self._flush_results()
                self._send(pb.GeneratorItems(items=[pb.GeneratorItem(task_id=ex.task_id, index=i, item=od)]), payloads)
                i += 1
                await asyncio.sleep(0)
        finally:
            if is_async:
                with contextlib.suppress(BaseException):
                    await gen.aclose()
            elif hasattr(gen, "close"):
                gen.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tsray.worker`` (started by a tsray node, not by users)."""
    worker_id = os.environ.get("TSRAY_WORKER_ID")
    address = os.environ.get("TSRAY_NODE_ADDRESS")
    if not worker_id or not address:
        sys.stderr.write(
            "python -m tsray.worker must be started by a tsray node (TSRAY_WORKER_ID / TSRAY_NODE_ADDRESS missing)\n"
        )
        return 2
    global _context, _runtime
    code_root = os.environ.get("PY_TSRAY_JOB_CODE_ROOT", "")
    if code_root:
        sys.path.insert(0, code_root)  # the driver's modules import here (tsray._submit)
    _context = WorkerContext(address, code_root)
    _install_output_tags()
    logging.basicConfig(level=os.environ.get("TSRAY_PY_LOG_LEVEL", "WARNING"), format="%(name)s %(levelname)s %(message)s")
    rt = WorkerRuntime(worker_id, address)
    _runtime = rt
    return asyncio.run(rt.run())
