"""The Python client driver: connect to a running tsray cluster and call its actors and functions.

.. code-block:: python

    import tsray

    tsray.init(address="auto")                 # or "ipc:///tmp/tsray-<uid>/<pid>-<id>.sock", "host:port"
    counter = tsray.get_actor("counter")        # a named actor created by a TypeScript driver
    ref = counter.incr.remote(5)
    print(tsray.get(ref))
    add = tsray.remote_function("file:///app/tasks.ts", "add")
    print(tsray.get(add.remote(1, 2)))
    tsray.shutdown()

The connection is a ZeroMQ DEALER to the node's ROUTER, speaking the worker protocol as a client
driver (``RegisterWorker{kind: "driver"}``, a ``Heartbeat`` every second). One background thread
owns the socket; API calls queue messages for it, so the calls are thread-safe. Values are msgpack
(docs/xlang.md); calls set ``TaskSpec.xlang`` so TypeScript workers answer in msgpack too.

This module is the module-level API over one process-wide client; the connection itself is
:class:`~tsray._driver.Client` (``tsray/_driver.py``) and the address resolution (``'auto'``,
``host:port``, a remote cluster's entry) is ``tsray/_address.py``.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from typing import Any, overload

# `X as X`: names re-exported from before the client was split (tsray.client.resolve_address, ...).
from ._address import resolve_address as resolve_address
from ._driver import Client, RemoteFunction
from .errors import AuthenticationError as AuthenticationError
from .errors import ConnectionError
from .refs import ActorHandle, ObjectRef

__all__ = [
    "Client",
    "RemoteFunction",
    "init",
    "shutdown",
    "is_initialized",
    "get",
    "put",
    "wait",
    "get_actor",
    "remote_function",
    "kill",
    "cancel",
    "cluster_resources",
    "available_resources",
]

_client: Client | None = None
_client_lock = threading.Lock()


def init(
    address: str = "auto", namespace: str | None = None, token: str | None = None, *, connect_timeout: float | None = None
) -> Client:
    """Connect this process to a running tsray cluster as a client driver.

    ``address``: ``'auto'`` (the cluster a TypeScript driver on this machine started, from
    ``$TMPDIR/tsray/current.json``), ``'ipc://...'``, ``'tcp://host:port'`` or ``'host:port'``.
    ``namespace``: where ``get_actor`` looks up names (default ``anon-<job id>``). Raises
    :class:`~tsray.errors.ConnectionError` when no node answers within ``connect_timeout`` seconds
    (default ``$TSRAY_CONNECT_TIMEOUT_MS`` or 10 s).
    """
    global _client
    with _client_lock:
        if _client is not None and not _client.closed:
            raise ConnectionError("tsray.init(): already connected; call tsray.shutdown() first")
        _client = Client(address, namespace, token, connect_timeout)
        return _client


def shutdown() -> None:
    """Disconnect (the node drops this driver's references; its actors stay if detached)."""
    global _client
    with _client_lock:
        c, _client = _client, None
    if c is not None:
        c.close()


atexit.register(shutdown)


def is_initialized() -> bool:
    """Whether :func:`init` connected this process."""
    return _client is not None and not _client.closed


def _current(what: str) -> Client:
    c = _client
    if c is None or c.closed:
        raise ConnectionError(f"{what}: tsray is not initialized; call tsray.init(address=...) first")
    return c


@overload
def get(refs: ObjectRef, timeout: float | None = None) -> Any: ...
@overload
def get(refs: Sequence[ObjectRef], timeout: float | None = None) -> list[Any]: ...
def get(refs: ObjectRef | Sequence[ObjectRef], timeout: float | None = None) -> Any:
    """The value of a ref, or the values of a list of refs (see :meth:`Client.get`)."""
    return _current("get()").get(refs, timeout)


def put(value: Any) -> ObjectRef:
    """Store a value in the cluster (see :meth:`Client.put`)."""
    return _current("put()").put(value)


def wait(
    refs: Sequence[ObjectRef], num_returns: int = 1, timeout: float | None = None
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Wait for some refs to be ready (see :meth:`Client.wait`)."""
    return _current("wait()").wait(refs, num_returns, timeout)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of a named actor (see :meth:`Client.get_actor`)."""
    return _current("get_actor()").get_actor(name, namespace)


def remote_function(module_url: str, name: str, **options: Any) -> RemoteFunction:
    """A TypeScript remote function by module and name (see :meth:`Client.remote_function`)."""
    return _current("remote_function()").remote_function(module_url, name, **options)


def kill(handle: ActorHandle, no_restart: bool = True) -> None:
    """Kill an actor (see :meth:`Client.kill`)."""
    _current("kill()").kill(handle, no_restart)


def cancel(ref: ObjectRef, force: bool = False) -> None:
    """Cancel the task producing ``ref`` (see :meth:`Client.cancel`)."""
    _current("cancel()").cancel(ref, force)


def cluster_resources() -> dict[str, float]:
    """Total resources of the cluster (see :meth:`Client.cluster_resources`)."""
    return _current("cluster_resources()").cluster_resources()


def available_resources() -> dict[str, float]:
    """Resources free now (see :meth:`Client.available_resources`)."""
    return _current("available_resources()").available_resources()
