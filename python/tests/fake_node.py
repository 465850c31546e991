"""A scripted stand-in for a tsray node: a ZeroMQ ROUTER speaking the protocol, plus an arena file.

Used to test the Python worker end to end (it spawns ``python -m tsray.worker`` as a node would) and
the Python client (which connects to it as to a node). Everything lives in a temp dir; ``close()``
reaps every process it started.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

from tsray.protocol import DecodedMessage, decode_message, encode_message, payload_bytes, pb

PYTHON_DIR = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class FakeNode:
    """ROUTER on ``ipc://<tmp>/node.sock``, an arena file ``<tmp>/arena`` with a bump allocator."""

    def __init__(self, tmp: Path, arena_size: int = 4 << 20) -> None:
        self.tmp = tmp
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.address = f"ipc://{tmp}/node.sock"
        self.router.bind(self.address)
        self.arena_path = tmp / "arena"
        self.arena_size = arena_size
        self.arena_fd = os.open(self.arena_path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.arena_fd, arena_size)
        self.arena = mmap.mmap(self.arena_fd, arena_size)
        self._next = 4096  # offsets below this stay free for tests that place objects by hand
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ref_updates: list[pb.RefUpdates] = []
        self.log: list[tuple[str, DecodedMessage]] = []
        self.alloc_error = ""

    # --------------------------------------------------------------- processes

    def spawn_worker(self, worker_id: str = "w1", env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``python -m tsray.worker`` as a node does (arena fd inherited, stdin a pipe)."""
        full = dict(os.environ)
        full.update(
            {
                "TSRAY_WORKER_ID": worker_id,
                "TSRAY_NODE_ADDRESS": self.address,
                "TSRAY_NODE_ID": "node-1",
                "TSRAY_JOB_ID": "job-1",
                "TSRAY_ARENA_FD": str(self.arena_fd),
                "TSRAY_ARENA_SIZE": str(self.arena_size),
                "PYTHONPATH": os.pathsep.join([str(FIXTURES), str(PYTHON_DIR), full.get("PYTHONPATH", "")]),
            }
        )
        full.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "tsray.worker"],
            env=full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(self.arena_fd,),
            cwd=self.tmp,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    f.close()
        self.router.close(0)
        self.ctx.term()
        self.arena.close()
        os.close(self.arena_fd)

    # --------------------------------------------------------------- messages

    def send(self, peer: bytes | str, body: Any, payloads: Sequence[bytes] = ()) -> None:
        ident = peer.encode() if isinstance(peer, str) else peer
        self.router.send_multipart([ident, *encode_message(body, payloads)])

    def recv(self, timeout: float = 10.0) -> tuple[bytes, DecodedMessage]:
        if not self.router.poll(int(timeout * 1000)):
            raise TimeoutError(f"fake node: nothing received within {timeout}s (log: {[k for k, _ in self.log]})")
        frames = self.router.recv_multipart()
        msg = decode_message(frames[1:])
        self.log.append((msg.kind, msg))
        return frames[0], msg

    def expect(self, kind: str, timeout: float = 10.0) -> tuple[bytes, DecodedMessage]:
        """Receive until a message of ``kind``; answers AllocRequests and records RefUpdates on the way."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"fake node: no {kind} within {timeout}s (log: {[k for k, _ in self.log]})")
            peer, msg = self.recv(left)
            if msg.kind == kind:
                return peer, msg
            self.auto(peer, msg)

    def auto(self, peer: bytes, msg: DecodedMessage) -> None:
        """Default handling of messages a test does not wait for."""
        if msg.kind == "alloc_request":
            r = msg.envelope.alloc_request
            if self.alloc_error:
                self.send(peer, pb.AllocReply(request_id=r.request_id, error=self.alloc_error))
                return
            off = self.allocate(r.size)
            self.send(peer, pb.AllocReply(request_id=r.request_id, slice=pb.ShmSlice(offset=off, length=r.size)))
        elif msg.kind == "ref_updates":
            self.ref_updates.append(msg.envelope.ref_updates)

    def allocate(self, size: int) -> int:
        off = self._next
        self._next = (off + size + 63) // 64 * 64
        if self._next > self.arena_size:
            raise MemoryError("fake node arena full")
        return off

    def put_arena(self, data: bytes) -> pb.ShmSlice:
        off = self.allocate(len(data))
        self.arena[off : off + len(data)] = data
        return pb.ShmSlice(offset=off, length=len(data))

    def register(self, timeout: float = 20.0) -> tuple[bytes, pb.RegisterWorker]:
        """Wait for a RegisterWorker and accept it."""
        peer, msg = self.expect("register_worker", timeout)
        self.send(peer, pb.WorkerAccepted(node_id="node-1", shm_size=self.arena_size, inline_threshold=100 * 1024, job_id="job-1"))
        return peer, msg.envelope.register_worker

    def results(self, n: int, timeout: float = 10.0) -> dict[str, tuple[pb.TaskResult, list[Any]]]:
        """Collect ``n`` task results (any batching): task id -> (result, payload frames)."""
        out: dict[str, tuple[pb.TaskResult, list[Any]]] = {}
        while len(out) < n:
            _, msg = self.expect("task_results", timeout)
            for r in msg.envelope.task_results.results:
                out[r.task_id] = (r, msg.payloads)
        return out

    def unpinned(self) -> list[str]:
        return [i for u in self.ref_updates for i in u.unpin]

    def object_bytes(self, od: pb.ObjectData, frames: Sequence[Any]) -> bytes:
        loc = od.WhichOneof("location")
        if loc == "inline":
            return bytes(payload_bytes(od.inline, frames))
        if loc == "shm":
            return bytes(self.arena[od.shm.offset : od.shm.offset + od.shm.length])
        raise AssertionError(f"unexpected location {loc}")
