"""A Python worker's connection to its node: the node's unix stream socket when it gave one
(``TSRAY_NODE_STREAM``, :mod:`tsray._stream`), else a ZeroMQ DEALER to its ROUTER (``TSRAY_NODE_ADDRESS``).
The TypeScript twin is ``packages/core/src/worker/channel-transport.ts``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import zmq
import zmq.asyncio

from .._curve import make_client
from .._stream import StreamClient
from .._stream import connect as stream_connect
from ..protocol import Buffer

log = logging.getLogger("tsray.worker")


class NodeChannel:
    """Sends frames to the node and hands each message from it to ``on_message`` (as buffers)."""

    def __init__(self, worker_id: str, address: str, stream_path: str, token: str | None) -> None:
        self._worker_id = worker_id
        self._stream_path = stream_path
        self._stream: StreamClient | None = None
        self._ctx: zmq.asyncio.Context | None = None
        self._sock: zmq.asyncio.Socket | None = None
        if not stream_path:
            self._ctx = zmq.asyncio.Context()
            self._sock = self._ctx.socket(zmq.DEALER)
            self._sock.setsockopt(zmq.ROUTING_ID, worker_id.encode())
            self._sock.setsockopt(zmq.SNDHWM, 0)
            self._sock.setsockopt(zmq.RCVHWM, 0)
            self._sock.setsockopt(zmq.LINGER, 1000)
            make_client(self._sock, address, token)
            self._sock.connect(address)

    async def open(self, on_message: Callable[[list[memoryview]], None], on_lost: Callable[[], None]) -> asyncio.Future[None]:
        """Connect (the stream) and start handing messages to ``on_message``; returns the receiver
        (a task to cancel at the end; for the stream, a future that never resolves: its protocol
        calls ``on_message`` itself, and ``on_lost`` when the node closes the connection)."""
        if self._sock is None:
            self._stream = await stream_connect(self._stream_path, self._worker_id, on_message, on_lost)
            return asyncio.get_running_loop().create_future()
        return asyncio.ensure_future(self._receive(self._sock, on_message))

    @staticmethod
    async def _receive(sock: zmq.asyncio.Socket, on_message: Callable[[list[memoryview]], None]) -> None:
        while True:
            frames = await sock.recv_multipart(copy=False)
            on_message([f.buffer for f in frames])
            while cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                frames = await sock.recv_multipart(copy=False)
                on_message([f.buffer for f in frames])

    def send(self, frames: Sequence[Buffer]) -> None:
        """Queue one message (dropped once the connection is gone: so is the node)."""
        if self._sock is None:
            if self._stream is not None:
                self._stream.send(frames)
            return
        fut = self._sock.send_multipart(frames, copy=False)
        if isinstance(fut, asyncio.Future) and not fut.done():
            fut.add_done_callback(_log_send_error)

    async def let_messages_in(self) -> None:
        """Let messages that arrived while a long run of jobs held the loop be handled."""
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        sock = self._sock
        if sock is None:
            return  # the stream's messages were handled in those turns
        # Messages still waiting in the socket (reading EVENTS also lets ZeroMQ take in what arrived
        # while the job ran): let the receiver handle them before the next job starts.
        for _ in range(100):
            if not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                break
            await asyncio.sleep(0)
        # A message already taken from the socket may still wait for its coroutine to run (pyzmq's
        # asyncio recv resolves a future first): one short timed turn lets it.
        await asyncio.sleep(0.0005)

    def close(self) -> None:
        if self._sock is not None and self._ctx is not None:
            self._sock.close(linger=1000)
            self._ctx.term()
        if self._stream is not None and self._stream.transport is not None:
            self._stream.transport.close()


def _log_send_error(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("tsray worker could not send to its node: %s", fut.exception())
