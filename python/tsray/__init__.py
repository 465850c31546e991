"""tsray: the Python side of tsray.

- Ray's Python API (docs/python.md): ``@tsray.remote`` functions and classes, ``.remote()`` /
  ``.options()``, :func:`get` / :func:`put` / :func:`wait` / :func:`cancel` / :func:`kill` /
  :func:`get_actor`, :func:`nodes`, :mod:`tsray.util` (placement groups, scheduling strategies);
  ``import tsray as ray`` runs Ray scripts (the differences are listed in docs/python.md).
- :func:`init` / :func:`shutdown` / :func:`get` / :func:`put` / :func:`wait` / :func:`get_actor` /
  :func:`remote_function` / :func:`cluster_resources` / :func:`available_resources`: a client driver
  of a running tsray cluster (:mod:`tsray.client`).
- :mod:`tsray.xlang`: the cross-language msgpack value codec (docs/xlang.md).
- :mod:`tsray.collective`: allreduce / allgather / reducescatter / broadcast / barrier between actor
  ranks (the Python side of ``@tsray/collective``; ``from tsray import collective``).
- ``python -m tsray.worker``: the Python worker process a node starts (:mod:`tsray.worker`).
- :mod:`tsray.protocol`: the wire protocol, generated from the same .proto as ``@tsray/protocol``.
"""

from . import util
from ._context import RuntimeContext, get_gpu_ids, get_runtime_context
from ._remote import ActorClass, ObjectRefGenerator, method, remote
from ._remote import RemoteFunction as PythonRemoteFunction
from .client import (
    Client,
    RemoteFunction,
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote_function,
    shutdown,
    wait,
)
from .errors import (
    ActorDiedError,
    ActorUnavailableError,
    ActorNotFoundError,
    AuthenticationError,
    ConnectionError,
    FunctionNotFoundError,
    GetTimeoutError,
    ObjectLostError,
    ObjectStoreFullError,
    RemoteError,
    TaskCancelledError,
    TaskError,
    TsrayError,
    UnreadableValueError,
    WorkerCrashedError,
)
from .protocol import PROTOCOL_VERSION
from .refs import ActorHandle, ActorMethod, ActorMethodNotFoundError, NoClientError, ObjectRef
from .xlang import SerializationError, XlangDecodeError

__version__ = "0.1.0"

__all__ = [
    "remote",
    "method",
    "nodes",
    "get_gpu_ids",
    "get_runtime_context",
    "RuntimeContext",
    "util",
    "ActorClass",
    "ObjectRefGenerator",
    "PythonRemoteFunction",
    "PROTOCOL_VERSION",
    "__version__",
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
    "Client",
    "RemoteFunction",
    "ObjectRef",
    "ActorHandle",
    "ActorMethod",
    "ActorMethodNotFoundError",
    "NoClientError",
    "SerializationError",
    "XlangDecodeError",
    "TsrayError",
    "TaskError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorNotFoundError",
    "AuthenticationError",
    "ConnectionError",
    "FunctionNotFoundError",
    "GetTimeoutError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "RemoteError",
    "TaskCancelledError",
    "UnreadableValueError",
    "WorkerCrashedError",
]
