"""Errors of the Python side of tsray (mirroring the TypeScript classes of ``@tsray/core``).

Error objects (``ENCODING_ERROR``) arrive in two forms: msgpack maps from Python workers
(``raw_kind == "msgpack"``, docs/xlang.md) and V8 bytes of a plain object from TypeScript workers
and from the node itself (``raw_kind == ""``). :func:`error_from_payload` turns either into one of
the exceptions below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ._v8 import V8DecodeError, read_v8

__all__ = [
    "TsrayError",
    "TaskError",
    "WorkerCrashedError",
    "TaskCancelledError",
    "ObjectStoreFullError",
    "ObjectLostError",
    "ActorDiedError",
    "ActorNotFoundError",
    "GetTimeoutError",
    "ConnectionError",
    "AuthenticationError",
    "FunctionNotFoundError",
    "RemoteError",
    "UnreadableValueError",
    "error_from_payload",
]


class TsrayError(Exception):
    """Base of every tsray error."""


class TaskError(TsrayError):
    """A task (Python or TypeScript) raised; ``remote_name`` / ``remote_message`` / ``remote_stack``
    are the original error's, ``info`` the whole RemoteErrorInfo map."""

    def __init__(self, info: dict[str, Any]) -> None:
        upstream = info.get("upstream")
        root: dict[str, Any] = upstream if isinstance(upstream, dict) else info
        self.info = info
        self.remote_name: str = str(root.get("name", "Error"))
        self.remote_message: str = str(root.get("message", ""))
        self.remote_stack: str = str(root.get("stack", ""))
        self.task_name: str = str(info.get("taskName", "?"))
        self.pid: int = int(info.get("pid", 0) or 0)
        super().__init__(
            f"task {self.task_name} (worker pid={self.pid}) failed: {self.remote_name}: {self.remote_message}"
            + (f" (raised upstream in task {root.get('taskName', '?')})" if root is not info else "")
            + f"\n--- remote stack ---\n{self.remote_stack}"
        )


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
    """An error object of another kind (``{type: 'Other', name, message}``); ``name`` is the remote class."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.remote_message = message


class UnreadableValueError(TsrayError):
    """An object exists but is in a format Python cannot read (V8 structured clone from TypeScript)."""

    def __init__(self, object_id: str, detail: str) -> None:
        super().__init__(f"object {object_id} cannot be read from Python: {detail}")
        self.object_id = object_id


def _from_map(p: Any) -> TsrayError:
    if not isinstance(p, dict):
        raise ValueError(f"error payload is a {type(p).__name__}, not a map")
    kind = p.get("type")
    if kind == "TaskError" and isinstance(p.get("info"), dict):
        return TaskError(p["info"])
    if kind == "WorkerCrashedError":
        return WorkerCrashedError(str(p.get("taskName", "?")), str(p.get("detail", "")), int(p.get("attempts", 0) or 0))
    if kind == "TaskCancelledError":
        return TaskCancelledError(str(p.get("taskName", "?")), bool(p.get("forced")))
    if kind == "ObjectStoreFullError":
        return ObjectStoreFullError(int(p.get("requested", 0)), int(p.get("capacity", 0)), int(p.get("used", 0)))
    if kind == "ObjectLostError":
        return ObjectLostError(str(p.get("objectId", "")), str(p.get("reason", "")))
    if kind == "ActorDiedError" and isinstance(p.get("info"), dict):
        return ActorDiedError(p["info"])
    return RemoteError(str(p.get("name", kind or "Error")), str(p.get("message", "")))


def error_from_payload(data: bytes | bytearray | memoryview, raw_kind: str, object_id: str = "") -> TsrayError:
    """The exception an ``ENCODING_ERROR`` object stands for (msgpack from Python, V8 from TypeScript)."""
    if raw_kind == "msgpack":
        try:
            return _from_map(msgspec.msgpack.decode(data))
        except (msgspec.DecodeError, ValueError) as e:
            return RemoteError("TaskError", f"a Python task failed, but its error object {object_id} is unreadable: {e}")
    try:
        return _from_map(read_v8(data))
    except (V8DecodeError, ValueError, TypeError) as e:
        return RemoteError(
            "TaskError",
            f"a TypeScript task failed with error object {object_id}, but its V8-encoded text could not be "
            f"decoded from Python ({e}); see the driver's or worker's log for the error",
        )
