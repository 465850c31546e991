"""Multipart messages on the node's unix stream socket (the Python twin of ``packages/core/src/stream-frames.ts``).

A node started with a stream socket gives its workers its path as ``TSRAY_NODE_STREAM``; a worker then
connects there instead of the ZeroMQ ipc socket (a round trip through pyzmq's asyncio socket costs a
ZeroMQ I/O-thread hop each way and several Python-level callbacks; see docs/architecture.md, *Worker
channel*). The messages are the same frames as on ZeroMQ (envelope, then payload frames).

A connection starts with the client's hello: ``tsS1``, u16 LE length, the routing id. Each message is
u32 LE frame count n, n × u32 LE frame lengths, then the frames.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from typing import Any

from .protocol import Buffer

MAGIC = b"tsS1"
# Messages up to this many bytes are written as one buffer; larger ones as header + frames (writelines).
_CONCAT_BYTES = 16 * 1024


class StreamFrameError(Exception):
    """The stream is not framed as ours; the connection is closed."""


def stream_hello(identity: str) -> bytes:
    """The hello a client writes first."""
    ident = identity.encode()
    if not 0 < len(ident) <= 255:
        raise StreamFrameError(f"a routing id of {len(ident)} bytes (1 to 255)")
    return MAGIC + struct.pack("<H", len(ident)) + ident


def stream_message(frames: Sequence[Buffer]) -> list[Buffer]:
    """The buffers of one message: one buffer when small, else the header followed by the frames."""
    sizes = [memoryview(f).nbytes for f in frames]
    head = struct.pack(f"<I{len(sizes)}I", len(sizes), *sizes)
    if sum(sizes) <= _CONCAT_BYTES:
        return [b"".join([head, *frames])]
    return [head, *frames]


class StreamMessageReader:
    """Reads messages (no hello: the node sends none) from the chunks of one connection, in order.

    ``on_message`` gets each message's frames as memoryviews: of the chunk when the message is most
    of it, else of a copy of the message (a kept payload must not keep a large read alive).
    """

    def __init__(self, on_message: Callable[[list[memoryview]], None]) -> None:
        self._on_message = on_message
        self._partial = b""
        self._body: bytearray | None = None
        self._lengths: list[int] = []
        self._filled = 0

    def push(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        self._partial = b""
        pos = 0
        while pos < len(data):
            if self._body is not None:
                pos = self._fill(data, pos)
                continue
            used = self._message(data, pos)
            if used == 0:
                break
            pos += used
        if pos < len(data):
            self._partial = bytes(data[pos:])

    def _fill(self, data: bytes, pos: int) -> int:
        body = self._body
        assert body is not None
        n = min(len(data) - pos, len(body) - self._filled)
        body[self._filled : self._filled + n] = data[pos : pos + n]
        self._filled += n
        if self._filled == len(body):
            self._body = None
            self._on_message(_split(memoryview(body), 0, self._lengths))
        return pos + n

    def _message(self, data: bytes, pos: int) -> int:
        avail = len(data) - pos
        if avail < 4:
            return 0
        n: int = struct.unpack_from("<I", data, pos)[0]
        if n == 0:
            raise StreamFrameError("a message of 0 frames")
        if avail < 4 + 4 * n:
            return 0
        lengths: list[int] = list(struct.unpack_from(f"<{n}I", data, pos + 4))
        total = sum(lengths)
        start = pos + 4 + 4 * n
        if len(data) - start >= total:
            if total < len(data) // 2:
                self._on_message(_split(memoryview(bytes(data[start : start + total])), 0, lengths))
            else:
                self._on_message(_split(memoryview(data), start, lengths))
            return 4 + 4 * n + total
        self._body = bytearray(total)
        self._lengths = lengths
        self._filled = 0
        return 4 + 4 * n


def _split(buf: memoryview, at: int, lengths: Sequence[int]) -> list[memoryview]:
    frames = []
    off = at
    for n in lengths:
        frames.append(buf[off : off + n])
        off += n
    return frames


class StreamClient(asyncio.Protocol):
    """The worker's end of the node's stream socket: hello on connect, messages to ``on_message``."""

    def __init__(self, identity: str, on_message: Callable[[list[memoryview]], None], on_lost: Callable[[], None]) -> None:
        self._identity = identity
        self._reader = StreamMessageReader(on_message)
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(stream_hello(self._identity))

    def data_received(self, data: bytes) -> None:
        self._reader.push(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost()

    def send(self, frames: Sequence[Buffer]) -> None:
        """Write one message (dropped when the connection is gone: the node is, too)."""
        if self.transport is not None:
            self.transport.writelines(stream_message(frames))


async def connect(path: str, identity: str, on_message: Callable[[list[memoryview]], None], on_lost: Callable[[], None]) -> StreamClient:
    """Connect to the node's stream socket at ``path``; the hello is written on connect."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_unix_connection(lambda: StreamClient(identity, on_message, on_lost), path)
    return client
