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
import os
import threading
from collections.abc import Sequence
from typing import Any, overload

# `X as X`: names re-exported from before the client was split (tsray.client.resolve_address, ...).
from ._address import resolve_address as resolve_address
from ._driver import Client, RemoteFunction
from ._local_cluster import LocalCluster, running_local_cluster
from ._options import runtime_env_json
from ._remote import code_root
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
    "nodes",
]

_client: Client | None = None
#: The cluster init() started because none ran here (stopped by shutdown()).
_local_cluster: LocalCluster | None = None
_client_lock = threading.Lock()


def init(
    address: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    *,
    connect_timeout: float | None = None,
    runtime_env: dict[str, Any] | None = None,
    ignore_reinit_error: bool = False,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict[str, float] | None = None,
    **kwargs: Any,
) -> Client:
    """Connect this process to a tsray cluster as a driver (Ray's ``ray.init``).

    ``address``: None (as Ray: ``$TSRAY_ADDRESS``, else the cluster running on this machine, else a
    new local one started with ``num_cpus`` / ``num_gpus`` / ``resources`` and stopped at shutdown,
    see :mod:`tsray._local_cluster`), ``'local'`` (always a new local cluster), ``'auto'`` (the
    cluster ``tsray start`` or a TypeScript driver on this machine started, from
    ``$TMPDIR/tsray-<uid>/current.json``), ``'ipc://...'``, ``'tcp://host:port'`` or ``'host:port'``.
    ``namespace``: where ``get_actor`` looks up names and named actors are created (default
    ``anon-<job id>``). ``runtime_env``: the job's (Ray's keys: pip, env_vars, working_dir,
    py_modules, excludes), merged into each Python task's and actor's. Raises
    :class:`~tsray.errors.ConnectionError` when no node answers within ``connect_timeout`` seconds
    (default ``$TSRAY_CONNECT_TIMEOUT_MS`` or 10 s), RuntimeError when already connected (unless
    ``ignore_reinit_error``), and ValueError for ``num_cpus`` / ``num_gpus`` / ``resources`` when it
    joins a running cluster, whose nodes declared their resources (as Ray's ``init`` does).
    """
    global _client, _local_cluster
    from .worker.runtime import current_worker_context

    if current_worker_context() is not None:
        # In a worker (a module imported there calls init at its top): the worker's own connection.
        nested = _worker_nested_client()
        assert nested is not None
        return nested
    for k in kwargs:
        if k not in _IGNORED_INIT_OPTIONS:
            raise TypeError(f"tsray.init(): unknown argument {k!r}")
    if runtime_env is not None:
        runtime_env_json(runtime_env, "tsray.init(runtime_env=...)")  # checks it before connecting
    with _client_lock:
        if _client is not None and not _client.closed:
            if ignore_reinit_error:
                return _client
            raise RuntimeError("tsray.init(): already connected; call tsray.shutdown() first (or pass ignore_reinit_error=True)")
        # address="local": always a new local cluster (as Ray's); None: one only when none runs here.
        start_local = address == "local" or (
            address is None and not os.environ.get("TSRAY_ADDRESS") and not running_local_cluster()
        )
        if not start_local and (num_cpus is not None or num_gpus is not None or resources is not None):
            raise ValueError(
                "tsray.init(): when connecting to an existing cluster, num_cpus, num_gpus and resources must not be "
                "provided (start the cluster with them: tsray start --head --num-cpus N --num-gpus N --resources JSON)"
            )
        if start_local:
            _local_cluster = LocalCluster(num_cpus, num_gpus, resources, log_to_driver=bool(kwargs.get("log_to_driver", True)))
        target = "auto" if address in (None, "local") else str(address)
        try:
            _client = Client(target, namespace, token, connect_timeout, runtime_env=runtime_env, code_root=code_root())
        except BaseException:
            _stop_local_cluster()
            raise
        return _client


#: Ray init arguments accepted and ignored (they tune Ray's own processes; docs/python.md), and
#: log_to_driver (used when init starts a local cluster).
_IGNORED_INIT_OPTIONS = frozenset({"log_to_driver", "logging_level", "include_dashboard", "configure_logging", "object_store_memory"})


def shutdown() -> None:
    """Disconnect (the node drops this driver's references; its actors stay if detached); a local
    cluster that :func:`init` started is stopped."""
    global _client
    with _client_lock:
        c, _client = _client, None
    if c is not None:
        c.close()
    _stop_local_cluster()


def _stop_local_cluster() -> None:
    global _local_cluster
    lc, _local_cluster = _local_cluster, None
    if lc is not None:
        lc.stop()


atexit.register(shutdown)


def is_initialized() -> bool:
    """Whether :func:`init` connected this process."""
    return _client is not None and not _client.closed


def _current(what: str) -> Client:
    global _client
    c = _client
    if c is None or c.closed:
        nested = _worker_nested_client()
        if nested is not None:
            return nested
        raise ConnectionError(f"{what}: tsray is not initialized; call tsray.init(address=...) first")
    return c


def _worker_nested_client() -> Client | None:
    """In a Python worker: the worker's own driver connection to its node, made on first use, so
    that tasks and actors can call ``.remote()`` / ``get`` / ``get_actor`` (nested work)."""
    global _client
    from .worker.runtime import current_worker_context

    ctx = current_worker_context()
    if ctx is None:
        return None
    with _client_lock:
        if _client is None or _client.closed:
            _client = Client(ctx.address, None, os.environ.get("TSRAY_TOKEN") or None, None, code_root=ctx.code_root)
        return _client


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


def nodes() -> list[dict[str, Any]]:
    """The cluster's nodes, alive and dead (see :meth:`Client.nodes`)."""
    return _current("nodes()").nodes()


def cluster_resources() -> dict[str, float]:
    """Total resources of the cluster (see :meth:`Client.cluster_resources`)."""
    return _current("cluster_resources()").cluster_resources()


def available_resources() -> dict[str, float]:
    """Resources free now (see :meth:`Client.available_resources`)."""
    return _current("available_resources()").available_resources()
