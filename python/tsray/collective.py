"""Collectives between tsray actor ranks from Python: the Python side of ``@tsray/collective``.

A Python actor joins a group a TypeScript driver created with ``createGroup(actors, {name})`` (its rank
is its place in that list), or says its rank with :func:`init_collective_group`; then every rank calls
the same collectives in the same order. Arrays are numpy arrays or CPU torch tensors (``int8 uint8 int16
uint16 int32 uint32 float32 float64``); ``allreduce`` and ``broadcast`` work in place. TypeScript and
Python ranks can be mixed in one group: both speak to the group's coordinator actor (a TypeScript actor
named ``collective:<group>`` in namespace ``tsray-collective``) and exchange chunks through the object
store, with the same chunking and the same reduction order, so every rank gets the same bits. A Python
rank does not map the shared-memory segment TypeScript-only groups allreduce in (it does not offer
``shm`` when it joins), so a group with a Python rank runs every rank on the object-store path.

The rank talks to its node as a client driver (:class:`tsray.Client`, one per process), connected on
first use to the node that started this worker (``TSRAY_NODE_ADDRESS``, ``TSRAY_TOKEN``).

.. code-block:: python

    import numpy as np
    from tsray import collective as col

    class Trainer:
        def step(self, grad):
            g = np.asarray(grad, dtype=np.float32)
            col.allreduce(g, op="mean")     # every rank ends with the mean over the ranks
            return g.tolist()

GPU tensors are out of scope (use ``torch.distributed`` with NCCL in the actors).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._driver import Client
from .errors import ActorDiedError, ActorNotFoundError, TsrayError
from .refs import ActorHandle, ObjectRef

__all__ = [
    "COLLECTIVE_NAMESPACE",
    "SMALL_BYTES",
    "CollectiveError",
    "CollectiveGroupNotFoundError",
    "CollectiveRankDiedError",
    "CollectiveTimeoutError",
    "CollectiveUsageError",
    "allgather",
    "allreduce",
    "barrier",
    "broadcast",
    "chunk_bounds",
    "get_rank",
    "get_collective_group_size",
    "init_collective_group",
    "reducescatter",
]

COLLECTIVE_NAMESPACE = "tsray-collective"
"""Namespace of the coordinator actors (as ``@tsray/collective``)."""

SMALL_BYTES = 64 * 1024
"""Payloads below this travel inline and are reduced by the coordinator (as ``@tsray/collective``)."""

GROUP_WAIT_S = 30.0
"""How long a rank's first collective waits for its group to appear when it gives no ``timeout_ms`` (as
``@tsray/collective``'s ``GROUP_WAIT_MS``): a rank may run before the group is visible from its node."""

_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
_OPS = ("sum", "mean", "min", "max")


class CollectiveError(TsrayError):
    """Base class of the collective errors; ``group`` names the group."""

    def __init__(self, group: str, message: str) -> None:
        super().__init__(f"collective group '{group}': {message}")
        self.group = group


class CollectiveRankDiedError(CollectiveError):
    """A rank died while the group was in a collective (or before it): every rank gets this error."""

    def __init__(self, group: str, rank: int, detail: str) -> None:
        super().__init__(group, f"rank {rank} died ({detail}); the collective was aborted on every rank")
        self.rank = rank
        self.detail = detail


class CollectiveTimeoutError(CollectiveError):
    """The collective did not complete within ``timeout_ms``; ``missing_ranks`` had not called it."""

    def __init__(self, group: str, missing_ranks: list[int], timeout_ms: int) -> None:
        super().__init__(group, f"collective timed out after {timeout_ms} ms waiting for rank(s) {missing_ranks}")
        self.missing_ranks = missing_ranks


class CollectiveUsageError(CollectiveError):
    """A call that cannot work as given (wrong rank, ranks disagreeing on op, dtype or length)."""


class CollectiveGroupNotFoundError(CollectiveUsageError):
    """No coordinator was found for the group within the wait (never created, or destroyed)."""

    def __init__(self, group: str, waited_s: float) -> None:
        super().__init__(
            group,
            f"no such group (waited {round(waited_s * 1000)} ms for it): create it with createGroup() or initCollectiveGroup() first",
        )
        self.waited_s = waited_s


def _error(group: str, f: dict[str, Any]) -> CollectiveError:
    kind = f.get("kind")
    if kind == "rank_died":
        return CollectiveRankDiedError(group, int(f.get("rank", -1)), str(f.get("message", "")))
    if kind == "timeout":
        return CollectiveTimeoutError(group, [int(r) for r in f.get("missing") or []], int(f.get("timeoutMs") or 0))
    return CollectiveUsageError(group, str(f.get("message", "")))


def chunk_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Element ranges of the ``parts`` chunks of ``n`` elements (the first ``n % parts`` one longer)."""
    base, extra = divmod(n, parts)
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(parts):
        length = base + (1 if i < extra else 0)
        out.append((start, start + length))
        start += length
    return out


# ---------------------------------------------------------------------------------------------- groups

_client: Client | None = None
_client_lock = threading.Lock()


def _connection() -> Client:
    """This process's connection to its node (a client driver), made on first use."""
    global _client
    with _client_lock:
        if _client is None or _client.closed:
            address = os.environ.get("TSRAY_NODE_ADDRESS")
            if not address:
                raise CollectiveUsageError("-", "tsray.collective runs in a tsray actor (TSRAY_NODE_ADDRESS is not set)")
            _client = Client(address, COLLECTIVE_NAMESPACE, os.environ.get("TSRAY_TOKEN") or None)
        return _client


@dataclass
class _Rank:
    name: str
    coord: ActorHandle
    asked_rank: int | None = None
    rank: int = -1
    world_size: int = 0
    epoch: int = -1
    seq: int = 0
    same_node: bool = True


_groups: dict[str, _Rank] = {}


def _call(st: _Rank, method: str, arg: dict[str, Any]) -> Any:
    c = _connection()
    try:
        reply = c.get(getattr(st.coord, method).remote(arg))
    except (ActorDiedError, ActorNotFoundError) as e:
        _groups.pop(st.name, None)
        raise CollectiveError(st.name, f"its coordinator is gone ({e}); create the group again") from e
    if not reply.get("ok"):
        st.epoch = -1  # join again at the next collective (the group re-forms)
        raise _error(st.name, reply.get("failure") or {})
    return reply.get("value")


def init_collective_group(world_size: int, rank: int, group_name: str = "default", timeout: float = 30.0) -> None:
    """Join ``group_name`` as ``rank`` of ``world_size`` (Ray's ``init_collective_group``).

    The group's coordinator is created by TypeScript (``createGroup(worldSize, {name})`` or a TypeScript
    rank's ``initCollectiveGroup``); this waits up to ``timeout`` seconds for it to exist.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise CollectiveUsageError(group_name, f"world_size must be an int >= 1, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise CollectiveUsageError(group_name, f"rank must be in 0..{world_size - 1}, got {rank!r}")
    st = _find(group_name, timeout)
    st.asked_rank = rank


def _find(name: str, timeout: float) -> _Rank:
    st = _groups.get(name)
    if st is not None:
        return st
    deadline = time.monotonic() + timeout
    while True:
        try:
            coord = _connection().get_actor(f"collective:{name}", COLLECTIVE_NAMESPACE)
            break
        except ActorNotFoundError:
            if time.monotonic() > deadline:
                raise CollectiveGroupNotFoundError(name, timeout) from None
            time.sleep(0.05)
    st = _Rank(name, coord)
    _groups[name] = st
    return st


def _joined(name: str, timeout_ms: int | None = None) -> _Rank:
    # The first collective may run before the group is visible here: wait for it (bounded).
    st = _find(name, timeout_ms / 1000 if timeout_ms else GROUP_WAIT_S)
    if st.epoch < 0:
        who: dict[str, Any] = {"pid": os.getpid(), "nodeId": os.environ.get("TSRAY_NODE_ID", "")}
        if st.asked_rank is not None:
            who["rank"] = st.asked_rank
        j = _call(st, "join", who)
        st.rank, st.world_size, st.epoch, st.seq = int(j["rank"]), int(j["worldSize"]), int(j["epoch"]), 0
        st.same_node = bool(j.get("sameNode", True))
    return st


def _round(st: _Rank, mode: str, item: Any, signature: str, **extra: Any) -> Any:
    req: dict[str, Any] = {"epoch": st.epoch, "seq": st.seq, "rank": st.rank, "mode": mode, "item": item, "signature": signature}
    req.update({k: v for k, v in extra.items() if v is not None})
    st.seq += 1
    return _call(st, "exchange", req)


def get_rank(group_name: str = "default") -> int:
    """This process's rank in the group (joins it first)."""
    return _joined(group_name).rank


def get_collective_group_size(group_name: str = "default") -> int:
    """The group's world size (joins it first)."""
    return _joined(group_name).world_size


# ---------------------------------------------------------------------------------------------- arrays


def _as_numpy(group: str, what: str, a: Any) -> np.ndarray[Any, Any]:
    """A writable 1-D numpy view of a numpy array or CPU torch tensor (no copy)."""
    if type(a).__module__.startswith("torch"):
        if a.device.type != "cpu":
            raise CollectiveUsageError(group, f"{what}: GPU tensors are not supported (use torch.distributed with NCCL)")
        a = a.detach().numpy()
    if not isinstance(a, np.ndarray):
        raise CollectiveUsageError(group, f"{what}: expected a numpy array or CPU torch tensor, got {type(a).__name__}")
    if a.dtype.name not in _DTYPES:
        raise CollectiveUsageError(group, f"{what}: dtype {a.dtype} is not one of {', '.join(_DTYPES)}")
    if not a.flags.c_contiguous:
        raise CollectiveUsageError(group, f"{what}: the array must be C-contiguous")
    flat: np.ndarray[Any, Any] = a.reshape(-1)
    return flat


def _view(v: Any, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """A chunk from another rank as a 1-D array of ``dtype`` (numpy from Python or TypeScript, bytes)."""
    if isinstance(v, np.ndarray):
        return v.reshape(-1).view(dtype) if v.dtype != dtype else v.reshape(-1)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return np.frombuffer(v, dtype=dtype)
    raise CollectiveUsageError("-", f"unexpected chunk of type {type(v).__name__}")


def _share(st: _Rank, a: np.ndarray[Any, Any]) -> Any:
    """A ref to a shared-memory object when the group is on one node, else the chunk itself (see TS)."""
    return _connection().put(a) if st.same_node else np.ascontiguousarray(a)


def _fetch(items: list[Any]) -> list[Any]:
    """The chunks behind what ``_share`` sent (refs are fetched, values are already here)."""
    refs = [x for x in items if isinstance(x, ObjectRef)]
    if not refs:
        return items
    values = iter(_connection().get(refs))
    return [next(values) if isinstance(x, ObjectRef) else x for x in items]


def _reduce_into(acc: np.ndarray[Any, Any], x: np.ndarray[Any, Any], op: str) -> None:
    if op in ("sum", "mean"):
        np.add(acc, x, out=acc, casting="unsafe")
    elif op == "min":
        np.minimum(acc, x, out=acc)
    else:
        np.maximum(acc, x, out=acc)


def _finish_mean(acc: np.ndarray[Any, Any], n: int) -> None:
    # As TypeScript: divide in float64 (float32 / n rounds the same), integers truncate toward zero.
    acc[...] = (acc.astype(np.float64) / n).astype(acc.dtype) if acc.dtype.kind in "iu" else acc / n


def _check_op(group: str, op: str) -> None:
    if op not in _OPS:
        raise CollectiveUsageError(group, f"op must be one of {', '.join(_OPS)}, got {op!r}")


def _reduce_chunk(st: _Rank, flat: np.ndarray[Any, Any], op: str, signature: str, timeout_ms: int | None) -> np.ndarray[Any, Any]:
    """Reduce-scatter over the object store: this rank's chunk of the reduced array (a new array)."""
    bounds = chunk_bounds(flat.size, st.world_size)
    out = [None if j == st.rank else _share(st, flat[s:e]) for j, (s, e) in enumerate(bounds)]
    items = _round(st, "scatter", out, signature, op=op, dtype=flat.dtype.name, timeoutMs=timeout_ms)
    del out
    values = _fetch(items)
    s, e = bounds[st.rank]
    acc: np.ndarray[Any, Any] | None = None
    for j in range(st.world_size):
        v = flat[s:e] if j == st.rank else _view(values[j], flat.dtype)
        if j != st.rank and v.size == flat.size:
            v = v[s:e]  # a TypeScript rank on this node shares its whole array once; take our chunk of it
        if acc is None:
            acc = np.array(v, dtype=flat.dtype, copy=True)
        else:
            _reduce_into(acc, v, op)
    assert acc is not None
    if op == "mean":
        _finish_mean(acc, st.world_size)
    return acc


# ---------------------------------------------------------------------------------------------- collectives


def allreduce(array: Any, group_name: str = "default", op: str = "sum", timeout_ms: int | None = None) -> Any:
    """Reduce ``array`` over the group in place (``op``: sum, mean, min, max); returns ``array``."""
    _check_op(group_name, op)
    flat = _as_numpy(group_name, "allreduce()", array)
    st = _joined(group_name, timeout_ms)
    dt = flat.dtype.name
    signature = f"allreduce:{op}:{dt}:{flat.size}"
    if flat.nbytes < SMALL_BYTES or st.world_size == 1:
        res = _round(st, "reduce", flat, signature, op=op, dtype=dt, timeoutMs=timeout_ms)
        flat[...] = _view(res, flat.dtype)
        return array
    acc = _reduce_chunk(st, flat, op, signature, timeout_ms)
    mine = _share(st, acc)
    items = _round(st, "gather", mine, f"{signature}:gather", timeoutMs=timeout_ms)
    del mine
    values = _fetch([None if j == st.rank else x for j, x in enumerate(items)])
    for j, (s, e) in enumerate(chunk_bounds(flat.size, st.world_size)):
        flat[s:e] = acc if j == st.rank else _view(values[j], flat.dtype)
    return array


def reducescatter(array: Any, group_name: str = "default", op: str = "sum", timeout_ms: int | None = None) -> np.ndarray[Any, Any]:
    """Reduce ``array`` over the group; returns this rank's chunk (``chunk_bounds(size, world)[rank]``)."""
    _check_op(group_name, op)
    flat = _as_numpy(group_name, "reducescatter()", array)
    st = _joined(group_name, timeout_ms)
    dt = flat.dtype.name
    signature = f"reducescatter:{op}:{dt}:{flat.size}"
    s, e = chunk_bounds(flat.size, st.world_size)[st.rank]
    if flat.nbytes < SMALL_BYTES:
        res = _round(st, "reduce", flat, signature, op=op, dtype=dt, timeoutMs=timeout_ms)
        return np.array(_view(res, flat.dtype)[s:e], copy=True)
    return _reduce_chunk(st, flat, op, signature, timeout_ms)


def allgather(array: Any, group_name: str = "default", timeout_ms: int | None = None) -> list[np.ndarray[Any, Any]]:
    """Every rank's array in rank order (copies, 1-D)."""
    flat = _as_numpy(group_name, "allgather()", array)
    st = _joined(group_name, timeout_ms)
    signature = f"allgather:{flat.dtype.name}"
    if flat.nbytes < SMALL_BYTES:
        items = _round(st, "gather", flat, signature, timeoutMs=timeout_ms)
        return [np.array(_view(v, flat.dtype), copy=True) for v in items]
    mine = _share(st, flat)
    items = _round(st, "gather", mine, signature, timeoutMs=timeout_ms)
    del mine
    values = _fetch([None if j == st.rank else x for j, x in enumerate(items)])
    return [flat.copy() if j == st.rank else np.array(_view(values[j], flat.dtype), copy=True) for j in range(st.world_size)]


def broadcast(array: Any, src_rank: int = 0, group_name: str = "default", timeout_ms: int | None = None) -> Any:
    """Copy rank ``src_rank``'s array into every rank's ``array`` in place; returns ``array``."""
    flat = _as_numpy(group_name, "broadcast()", array)
    st = _joined(group_name, timeout_ms)
    if not 0 <= src_rank < st.world_size:
        raise CollectiveUsageError(group_name, f"broadcast(): src_rank {src_rank} is not in 0..{st.world_size - 1}")
    small = flat.nbytes < SMALL_BYTES
    signature = f"broadcast:{src_rank}:{flat.dtype.name}:{flat.size}"
    item: Any = None
    if st.rank == src_rank:
        item = flat if small else _share(st, flat)
    items = _round(st, "gather", item, signature, timeoutMs=timeout_ms)
    if st.rank != src_rank:
        flat[...] = _view(_fetch([items[src_rank]])[0], flat.dtype)
    return array


def barrier(group_name: str = "default", timeout_ms: int | None = None) -> None:
    """Wait until every rank of the group has called ``barrier``."""
    st = _joined(group_name, timeout_ms)
    _round(st, "gather", None, "barrier", timeoutMs=timeout_ms)


