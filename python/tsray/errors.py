"""Errors of the Python side of tsray (mirroring the TypeScript classes of ``@tsray/core``).

Error objects (``ENCODING_ERROR``) hold a protobuf ``tsray.v1.ErrorInfo``, the same whichever
language raised the error (TypeScript workers, the node, Python workers): :func:`error_from_payload`
turns one into the exceptions below, :func:`exception_error_info` describes a Python exception as one.
"""

from __future__ import annotations

import builtins
import os
import traceback
from collections.abc import Sequence
from typing import Any

import msgspec
from google.protobuf.message import DecodeError

from ._proto import tsray_pb2 as pb

__all__ = [
    "TsrayError",
    "TaskError",
    "WorkerCrashedError",
    "TaskCancelledError",
    "ObjectStoreFullError",
    "ObjectLostError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorNotFoundError",
    "GetTimeoutError",
    "ConnectionError",
    "AuthenticationError",
    "FunctionNotFoundError",
    "RemoteError",
    "UnreadableValueError",
    "error_from_payload",
    "exception_error_info",
    "register_error_class",
]

#: How many links of a cause chain are kept (as in TypeScript's MAX_CAUSE_DEPTH).
MAX_CAUSE_DEPTH = 16


class TsrayError(Exception):
    """Base of every tsray error."""


class TaskError(TsrayError):
    """A task (Python or TypeScript) raised; ``remote_name`` / ``remote_message`` / ``remote_stack`` /
    ``remote_language`` are the original error's, ``cause`` the error it came from (JS ``cause``,
    Python ``raise ... from``) rebuilt as a :class:`RemoteError` chain (also set as ``__cause__``), and
    ``info`` the whole RemoteErrorInfo map (keys as in TypeScript: name, message, stack, taskName, pid,
    language, code, props, upstream, cause)."""

    def __init__(self, info: dict[str, Any]) -> None:
        upstream = info.get("upstream")
        root: dict[str, Any] = upstream if isinstance(upstream, dict) else info
        self.info = info
        self.remote_name: str = str(root.get("name", "Error"))
        self.remote_message: str = str(root.get("message", ""))
        self.remote_stack: str = str(root.get("stack", ""))
        self.remote_language: str = str(root.get("language", ""))
        self.task_name: str = str(info.get("taskName", "?"))
        self.pid: int = int(info.get("pid", 0) or 0)
        cause = root.get("cause")
        self.cause: RemoteError | None = _remote_chain(cause) if isinstance(cause, dict) else None
        # As Ray's ``ray::f() (pid=N)``: the remote traceback once, under the task that raised it.
        super().__init__(
            f"task {self.task_name} (worker pid={self.pid}) failed: {self.remote_name}: {self.remote_message}"
            + (f" (raised upstream in task {root.get('taskName', '?')})" if root is not info else "")
            + f"\n({root.get('taskName', '?')} pid={root.get('pid', 0)}) {self.remote_stack}"
            + _cause_text(self.cause)
        )
        self.__cause__ = self.cause

    # A subclass also deriving from KeyError & co. keeps this message (KeyError's __str__ would repr it).
    __str__ = BaseException.__str__


#: TypeScript's standard Error classes -> the Python built-in a Python caller catches them as (the
#: reverse of packages/core/src/remote-error-class.ts; docs/api.md "Failures and errors" has the table).
_FROM_TYPESCRIPT: dict[str, type[Exception]] = {
    "RangeError": ValueError,
    "TypeError": TypeError,
    "ReferenceError": NameError,
    "SyntaxError": SyntaxError,
}

_registered: dict[str, type[Exception]] = {}


def register_error_class(cls: type[Exception], name: str | None = None) -> None:
    """Make task errors of class name ``name`` (default ``cls.__name__``, raised in either language)
    instances of ``cls`` too: ``except cls`` catches the :class:`TaskError`. Python's built-in
    exceptions need no registration."""
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise TypeError(f"register_error_class() expects an Exception subclass, got {cls!r}")
    key = cls.__name__ if name is None else name
    if not isinstance(key, str) or not key:
        raise ValueError("register_error_class(): the name must be a non-empty string")
    _registered[key] = cls


def _local_class(name: str, language: str) -> type[Exception] | None:
    """The local class of a remote error: registered, else a Python built-in (Python errors) or the
    built-in nearest to a TypeScript standard class (TypeScript errors)."""
    if name in _registered:
        return _registered[name]
    if language == "python":
        found = getattr(builtins, name, None)
        return found if isinstance(found, type) and issubclass(found, Exception) and found is not Exception else None
    return _FROM_TYPESCRIPT.get(name)


_task_error_classes: dict[type[Exception], type[TaskError] | None] = {}


def _task_error_class(cls: type[Exception]) -> type[TaskError] | None:
    """``TaskError(cls)``: a TaskError that is also a ``cls`` (as Ray's ``RayTaskError(ValueError)``);
    None when Python cannot combine the two (a built-in with an incompatible layout)."""
    if cls not in _task_error_classes:
        try:
            made: type | None = type(f"TaskError({cls.__name__})", (TaskError, cls), {"__module__": __name__})
        except TypeError:
            made = None
        _task_error_classes[cls] = made if made is not None and issubclass(made, TaskError) else None
    return _task_error_classes[cls]


def _task_error(info: dict[str, Any]) -> TaskError:
    """The TaskError of a RemoteErrorInfo map: of class ``TaskError(cls)`` when the remote class has a
    local one, a plain TaskError otherwise (or when ``cls`` cannot be built from a message alone)."""
    upstream = info.get("upstream")
    root: dict[str, Any] = upstream if isinstance(upstream, dict) else info
    local = _local_class(str(root.get("name", "")), str(root.get("language", "")))
    made = _task_error_class(local) if local is not None else None
    if made is not None:
        try:
            return made(info)
        except Exception:  # noqa: BLE001 - e.g. a built-in whose constructor wants more arguments
            pass
    return TaskError(info)


class WorkerCrashedError(TsrayError):
    """The worker running a task died (and retries ran out)."""

    def __init__(self, task_name: str, detail: str, attempts: int) -> None:
        super().__init__(
            f"the worker running task {task_name} died ({detail}) after {attempts} attempt(s); see the worker "
            "logs in the session directory (logs/worker-*.err) and raise max_retries to retry more"
        )
        self.task_name = task_name
        self.detail = detail
        self.attempts = attempts


class TaskCancelledError(TsrayError):
    """The task was cancelled."""

    def __init__(self, task_name: str, forced: bool) -> None:
        super().__init__(f"task {task_name} was cancelled{' (force: its worker was killed)' if forced else ''}")
        self.task_name = task_name
        self.forced = forced


class ObjectStoreFullError(TsrayError):
    """The shared-memory object store had no room (and spilling is off)."""

    def __init__(self, requested: int, capacity: int, used: int) -> None:
        super().__init__(
            f"object store full: cannot place {requested} bytes (capacity {capacity}, in use {used}); drop "
            "references to large objects, give the cluster more objectStoreMemory or enable spilling"
        )
        self.requested = requested
        self.capacity = capacity
        self.used = used


class ObjectLostError(TsrayError):
    """An object's data is gone."""

    def __init__(self, object_id: str, reason: str) -> None:
        super().__init__(f"object {object_id} is lost: {reason}")
        self.object_id = object_id
        self.reason = reason


class ActorDiedError(TsrayError):
    """The actor is dead; ``reason`` says why (killed, crashed, constructor, out_of_scope, ...)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.actor_id: str = str(info.get("actorId", ""))
        self.class_name: str = str(info.get("className", ""))
        self.reason: str = str(info.get("reason", ""))
        self.detail: str = str(info.get("detail", ""))
        cause = info.get("cause")
        text = f"actor {self.class_name} ({self.actor_id}) is dead: {self.detail}"
        if isinstance(cause, dict):
            shown = cause.get("stack") or f"{cause.get('name')}: {cause.get('message')}"
            text += f"\n--- constructor error ---\n{shown}"
        if self.reason == "crashed":
            text += "; see the worker logs in the session directory (logs/worker-*.err)"
        super().__init__(text)


class ActorUnavailableError(ActorDiedError):
    """The actor is restarting (as Ray's ``ActorUnavailableError``): a call that was running when its
    process died, and is not retried (``max_task_retries``), fails with this; calls made now wait for
    the restart. ``reason`` is ``"restarting"``; a subclass of :class:`ActorDiedError`."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info)
        self.args = (
            f"actor {self.class_name} ({self.actor_id}) is unavailable: it is restarting ({self.detail}); this call "
            "was running when its process died and is not retried (set max_task_retries to retry such calls)",
        )


class ActorNotFoundError(TsrayError):
    """No live actor has that name in the namespace."""

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(
            f'no actor named "{name}" in namespace "{namespace}" (is it created, alive, and in this namespace? '
            "get_actor(name, namespace=...) looks elsewhere)"
        )
        self.name = name
        self.namespace = namespace


class GetTimeoutError(TsrayError, TimeoutError):
    """``get`` waited longer than its timeout."""

    def __init__(self, timeout: float, pending: Sequence[str]) -> None:
        more = ", ..." if len(pending) > 5 else ""
        super().__init__(
            f"get timed out after {timeout}s waiting for {len(pending)} object(s): {', '.join(pending[:5])}{more}"
        )
        self.timeout = timeout
        self.pending = list(pending)


class ConnectionError(TsrayError):  # noqa: A001 - mirrors the TypeScript ConnectionError
    """No cluster answered, or the connection is closed."""


class AuthenticationError(ConnectionError):
    """The cluster refused this connection: wrong or missing cluster token (``token=...``, ``TSRAY_TOKEN``)."""


class FunctionNotFoundError(TsrayError):
    """A Python worker could not find the function or class a task names."""

    def __init__(self, module: str, attr: str, detail: str = "") -> None:
        super().__init__(
            f"module {module} has no attribute {attr!r}{f' ({detail})' if detail else ''}: a Python remote function "
            "or actor class must be a top-level name of its module (FunctionDescriptor module_url 'py:<module>', key '<name>')"
        )
        self.module = module
        self.attr = attr


class RemoteError(TsrayError):
    """An error raised in another process that has no class here (ErrorInfo type ``Other``, or a link of
    a task error's cause chain); ``name`` is the remote class, ``stack`` its stack or traceback as
    printed in ``language``, and ``__cause__`` the next link."""

    def __init__(self, name: str, message: str, stack: str = "", language: str = "") -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.remote_message = message
        self.stack = stack
        self.language = language


class UnreadableValueError(TsrayError):
    """An object exists but holds a value Python cannot read (a TypeScript Map, Date, class instance...)."""

    def __init__(self, object_id: str, detail: str) -> None:
        super().__init__(f"object {object_id} cannot be read from Python: {detail}")
        self.object_id = object_id


def _remote_chain(info: dict[str, Any], depth: int = 0) -> RemoteError:
    e = RemoteError(str(info.get("name", "Error")), str(info.get("message", "")), str(info.get("stack", "")), str(info.get("language", "")))
    cause = info.get("cause")
    if isinstance(cause, dict) and depth < MAX_CAUSE_DEPTH:
        e.__cause__ = _remote_chain(cause, depth + 1)
    return e


def _cause_text(cause: BaseException | None) -> str:
    out = ""
    n = 0
    while cause is not None and n < MAX_CAUSE_DEPTH:
        stack = cause.stack if isinstance(cause, RemoteError) else ""
        out += "\n--- caused by ---\n" + (stack or str(cause))
        cause = cause.__cause__
        n += 1
    return out


def _task_dict(m: pb.ErrorInfo, depth: int = 0) -> dict[str, Any]:
    """A TaskError ErrorInfo as the RemoteErrorInfo map (the keys TypeScript uses)."""
    t = m.task
    info: dict[str, Any] = {
        "name": m.name or "Error",
        "message": m.message,
        "stack": m.stack,
        "taskName": t.task_name or "?",
        "pid": t.pid,
    }
    if m.language:
        info["language"] = m.language
    if t.code:
        info["code"] = t.code
    if t.props:
        try:
            props = msgspec.msgpack.decode(t.props)
            if isinstance(props, dict):
                info["props"] = props
        except msgspec.DecodeError:
            pass  # unreadable extra properties: the error itself still reads
    if t.HasField("upstream") and depth < MAX_CAUSE_DEPTH:
        info["upstream"] = _task_dict(t.upstream, depth + 1)
    if m.HasField("cause") and depth < MAX_CAUSE_DEPTH:
        info["cause"] = _task_dict(m.cause, depth + 1)
    return info


def _task_pb(info: dict[str, Any], depth: int = 0) -> pb.ErrorInfo:
    """A RemoteErrorInfo map as a TaskError ErrorInfo (the inverse of :func:`_task_dict`)."""
    m = pb.ErrorInfo(
        type="TaskError",
        name=str(info.get("name", "Error")),
        message=str(info.get("message", "")),
        stack=str(info.get("stack", "")),
        language=str(info.get("language", "")),
    )
    m.task.task_name = str(info.get("taskName", "?"))
    m.task.pid = int(info.get("pid", 0) or 0)
    m.task.code = str(info.get("code", ""))
    props = info.get("props")
    if isinstance(props, dict):
        try:
            m.task.props = msgspec.msgpack.encode(props)
        except (TypeError, msgspec.EncodeError):
            pass
    for key, field in (("upstream", m.task.upstream), ("cause", m.cause)):
        sub = info.get(key)
        if isinstance(sub, dict) and depth < MAX_CAUSE_DEPTH:
            field.CopyFrom(_task_pb(sub, depth + 1))
    return m


def _exception_link(err: BaseException, task_name: str, depth: int) -> pb.ErrorInfo:
    m = pb.ErrorInfo(
        type="TaskError",
        name=type(err).__name__,
        message=str(err),
        # Each link's own traceback: the chain itself travels as `cause`.
        stack="".join(traceback.format_exception(type(err), err, err.__traceback__, chain=False)),
        language="python",
    )
    m.task.task_name = task_name
    m.task.pid = os.getpid()
    nxt = err.__cause__ if err.__cause__ is not None else (None if err.__suppress_context__ else err.__context__)
    if nxt is not None and depth < MAX_CAUSE_DEPTH:
        m.cause.CopyFrom(_exception_link(nxt, task_name, depth + 1))
    return m


def exception_error_info(err: BaseException, task_name: str) -> pb.ErrorInfo:
    """The ErrorInfo a Python task that raised ``err`` stores as its result: class, message, traceback,
    the ``raise ... from`` / implicit-context chain as ``cause``; a :class:`TaskError` (an argument was
    a failed task's result) keeps the root error as ``upstream``."""
    m = _exception_link(err, task_name, 0)
    if isinstance(err, TaskError):
        up = err.info.get("upstream")
        m.task.upstream.CopyFrom(_task_pb(up if isinstance(up, dict) else err.info))
    return m


def _from_info(m: pb.ErrorInfo, object_id: str) -> TsrayError:
    kind = m.type
    if kind == "TaskError":
        return _task_error(_task_dict(m))
    if kind == "WorkerCrashedError":
        return WorkerCrashedError(m.worker_crash.task_name or "?", m.worker_crash.detail, m.worker_crash.attempts)
    if kind == "TaskCancelledError":
        return TaskCancelledError(m.cancel.task_name or "?", m.cancel.forced)
    if kind == "ObjectStoreFullError":
        return ObjectStoreFullError(m.store_full.requested, m.store_full.capacity, m.store_full.used)
    if kind == "ObjectLostError":
        return ObjectLostError(m.object_lost.object_id, m.object_lost.reason)
    if kind == "UnreadableValueError":
        return UnreadableValueError(m.object_lost.object_id or object_id, m.object_lost.reason)
    if kind == "ActorDiedError":
        d = m.actor_death
        info: dict[str, Any] = {"actorId": d.actor_id, "className": d.class_name, "reason": d.reason, "detail": d.detail}
        if m.HasField("cause"):
            info["cause"] = _task_dict(m.cause)
        return ActorUnavailableError(info) if d.reason == "restarting" else ActorDiedError(info)
    return RemoteError(m.name or kind or "Error", m.message, m.stack, m.language)


def error_from_payload(data: bytes | bytearray | memoryview, object_id: str = "") -> TsrayError:
    """The exception an ``ENCODING_ERROR`` object (an encoded ``tsray.v1.ErrorInfo``) stands for."""
    try:
        m = pb.ErrorInfo.FromString(bytes(data))
    except DecodeError as e:
        return RemoteError(
            "TaskError",
            f"a task failed, but its error object {object_id} is not a readable tsray.v1.ErrorInfo ({e}); "
            "see the worker's log for the error",
        )
    return _from_info(m, object_id)
