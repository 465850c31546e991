"""Reading objects (``ObjectData``) shared by the worker and the client: the arena mapping and the
decoding of each encoding. Internal.
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .errors import UnreadableValueError, error_from_payload
from .protocol import Buffer, pb, payload_bytes
from .xlang import Decoder

INLINE_THRESHOLD = 100 * 1024

# ENCODING_RAW objects from TypeScript: which numpy dtype each TypedArray class maps to.
_RAW_DTYPES = {
    "Int8Array": "<i1",
    "Uint8ClampedArray": "<u1",
    "Int16Array": "<i2",
    "Uint16Array": "<u2",
    "Int32Array": "<i4",
    "Uint32Array": "<u4",
    "BigInt64Array": "<i8",
    "BigUint64Array": "<u8",
    "Float32Array": "<f4",
    "Float64Array": "<f8",
}


# A write of at least twice this is split over threads, each taking at least this much (parallel_copy.c's rule).
_COPY_MIN_PIECE = 4 << 20
_copy_pool: ThreadPoolExecutor | None = None


def copy_threads() -> int:
    """Threads for one large arena write: ``TSRAY_OBJECT_COPY_THREADS`` (1..16), or when unset or 0 the
    cores, at most 8 (as the TypeScript side, ``arenaCopyThreads``)."""
    raw = os.environ.get("TSRAY_OBJECT_COPY_THREADS", "").strip()
    n = int(raw) if raw.isdigit() else 0
    return min(n, 16) if n > 0 else min(8, os.cpu_count() or 1)


def _copy_executor() -> ThreadPoolExecutor:
    global _copy_pool
    if _copy_pool is None:
        _copy_pool = ThreadPoolExecutor(max_workers=15, thread_name_prefix="tsray-copy")
    return _copy_pool


class ArenaError(RuntimeError):
    """The shared-memory arena could not be mapped (wrong fd / path / size)."""


class Arena:
    """The node's shared-memory arena, mapped once (``MAP_SHARED``).

    ``path`` is ``/proc/self/fd/<fd>`` in a worker (the node passes the arena as an inherited fd) and
    ``/proc/<node pid>/fd/<fd>`` in a client driver (``WorkerAccepted.shm_path``).
    """

    def __init__(self, path: str, size: int, writable: bool = True) -> None:
        if size <= 0:
            raise ArenaError(f"arena {path}: size {size} is not positive (TSRAY_ARENA_SIZE / WorkerAccepted.shm_size)")
        try:
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as e:
            raise ArenaError(f"cannot open the object store arena {path}: {e}") from e
        try:
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            self._mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
        except (OSError, ValueError) as e:
            raise ArenaError(f"cannot map {size} bytes of the object store arena {path}: {e}") from e
        finally:
            os.close(fd)
        self.size = size
        self.writable = writable
        self._u8 = np.frombuffer(self._mm, dtype=np.uint8)

    def pinned_view(self, offset: int, length: int, release: Callable[[], None]) -> memoryview:
        """A read-only view of ``[offset, offset+length)``; ``release`` runs once nothing uses the view
        (no decoded array refers to it any more)."""
        if offset + length > self.size:
            raise ArenaError(f"arena slice [{offset}, {offset + length}) is outside the arena ({self.size} bytes)")
        base = self._u8[offset : offset + length]
        fin = weakref.finalize(base, release)
        fin.atexit = False
        return base.data.toreadonly()

    def write(self, offset: int, data: Buffer, threads: int | None = None) -> int:
        """Copy ``data`` into the arena at ``offset``; returns the threads the copy used.

        A copy of at least 8 MiB is split over up to ``threads`` (default :func:`copy_threads`) pieces of
        at least 4 MiB: numpy copies release the GIL, so pool threads copy beside this one (one thread
        copies at one core's share of the memory bandwidth)."""
        view = memoryview(data).cast("B")
        n = view.nbytes
        if offset + n > self.size:
            raise ArenaError(f"arena write [{offset}, {offset + n}) is outside the arena ({self.size} bytes)")
        # Small writes (nearly all) never read the environment: only a copy of two pieces or more asks.
        most = n // _COPY_MIN_PIECE
        pieces = min(threads if threads is not None else copy_threads(), most) if most > 1 else 1
        if pieces <= 1:
            self._mm[offset : offset + n] = view
            return 1
        src = np.frombuffer(view, dtype=np.uint8)
        dst = self._u8[offset : offset + n]
        per = ((n + pieces - 1) // pieces + 63) // 64 * 64  # whole cache lines

        def copy(i: int) -> None:
            np.copyto(dst[i * per : (i + 1) * per], src[i * per : (i + 1) * per])

        futures = [_copy_executor().submit(copy, i) for i in range(1, pieces) if i * per < n]
        copy(0)
        for f in futures:
            f.result()
        return 1 + len(futures)


def _raw_value(data: Buffer, raw_kind: str) -> Any:
    dtype = _RAW_DTYPES.get(raw_kind)
    if dtype is None:  # Buffer, Uint8Array, ArrayBuffer, DataView...
        return bytes(data)
    arr = np.frombuffer(data, dtype=dtype)
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def object_value(
    od: pb.ObjectData,
    frames: Sequence[Buffer],
    arena: Callable[[], Arena],
    decoder: Decoder,
    unpin: Callable[[str], None],
) -> Any:
    """The value of ``od``: decodes msgpack (zero-copy arrays), raises the error of an error object.

    An arena slice carries a delivery pin; ``unpin(object_id)`` is called once the decoded value no
    longer refers to the slice (at once when it holds no arrays).
    """
    loc = od.WhichOneof("location")
    data: Buffer
    if loc == "inline":
        data = payload_bytes(od.inline, frames)
    elif loc == "shm":
        oid = od.object_id
        try:
            data = arena().pinned_view(od.shm.offset, od.shm.length, lambda: unpin(oid))
        except Exception:
            unpin(oid)
            raise
    elif loc == "spill_path":
        with open(od.spill_path, "rb") as f:
            data = f.read()
    else:
        data = b""
    enc = od.encoding
    if enc == pb.ENCODING_MSGPACK:
        return decoder.decode(data)
    if enc == pb.ENCODING_ERROR:
        raise error_from_payload(data, od.object_id)
    if enc == pb.ENCODING_RAW:
        return _raw_value(data, od.raw_kind)
    if enc == pb.ENCODING_V8:
        # The node converts TypeScript (V8 structured clone) values to msgpack for Python processes
        # (packages/core/src/python-view.ts); raw V8 bytes here mean a peer that did not.
        raise UnreadableValueError(
            od.object_id,
            "it is in TypeScript's V8 structured-clone format (ENCODING_V8), which the node converts to msgpack for "
            "Python processes; this node sent it unconverted (an older tsray version?)",
        )
    raise UnreadableValueError(od.object_id, f"unknown encoding {enc}")
