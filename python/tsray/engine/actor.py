"""The engine actor: one LLM engine in a tsray Python worker, serving a ZeroMQ data plane.

The TypeScript ``LLMEngine`` (``@tsray/vllm-bridge``) creates this class as a Python actor (so it is
scheduled like any actor: resources, placement-group bundles, ``CUDA_VISIBLE_DEVICES``), asks it for
its ``address()``, and connects a DEALER to the ROUTER this actor binds. Requests then go straight to
the engine process, never through the node:

    client DEALER --GenerateRequest / AbortGenerate / EngineStatsRequest--> engine ROUTER
    client DEALER <--GenerateDeltas (batched per loop turn) / GenerateError / EngineStats-- engine ROUTER

Many requests are in flight per connection (continuous batching is the backend's job); deltas of all
requests produced in one event-loop turn go out in one message per client.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import defaultdict
from typing import Any

import zmq
import zmq.asyncio

from .._proto import tsray_pb2 as pb
from ..protocol import decode_message, encode_message
from . import create_backend
from .backend import Delta, EngineBackend, EngineError, InvalidSamplingParams, PromptTooLong, SamplingParams


def _params_from_proto(p: pb.SamplingParams) -> SamplingParams:
    d: dict[str, Any] = {}
    for name in ("temperature", "top_p", "top_k", "max_tokens", "seed", "n", "logprobs", "ignore_eos"):
        if p.HasField(name):
            d[name] = getattr(p, name)
    if len(p.stop) > 0:
        d["stop"] = list(p.stop)
    return SamplingParams.from_dict(d)


class _GpuLocks:
    """Exclusive file locks on GPU ids (taken in sorted order, so no two starts deadlock)."""

    def __init__(self, devices: list[str]) -> None:
        import fcntl

        self._files = []
        for d in devices:
            f = open(os.path.join(tempfile.gettempdir(), f"tsray-gpu-start-{d}.lock"), "w")  # noqa: SIM115
            # POSIX record lock, not flock(): vLLM forks its EngineCore while this is held, and a
            # forked child shares (and keeps) an flock() lock after close() here; lockf locks are
            # per process, so the next engine on this GPU can start (seen on the H200, issue #9).
            fcntl.lockf(f, fcntl.LOCK_EX)
            self._files.append(f)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []


class EngineActor:
    """Hosts one engine. ``config``: ``model`` (local folder), ``backend`` ('vllm' | 'transformers' |
    'scripted' | 'auto'), ``engine_args`` (dict), ``num_gpus``, ``gpu_fraction``, ``bind`` ('ipc' |
    'tcp')."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = dict(config)
        name = str(config.get("backend") or "auto")
        if name == "auto":
            try:
                import vllm  # noqa: F401

                name = "vllm"
            except Exception:
                name = "transformers"
        self._backend_name = name
        self._backend: EngineBackend = create_backend(name)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ready: asyncio.Future[str] = loop.create_future()
        self._tasks: dict[tuple[bytes, str], asyncio.Task[None]] = {}
        self._out: dict[bytes, list[pb.Delta]] = defaultdict(list)
        self._flush_queued = False
        self._sock: zmq.asyncio.Socket | None = None
        self._start_task = loop.create_task(self._start())

    async def _start(self) -> None:
        c = self._config
        try:
            # Engines sharing a GPU must not profile its memory at the same time (vLLM reads free
            # memory at start): one start at a time per set of visible GPUs on this machine.
            lock = self._gpu_lock()
            try:
                await self._backend.start(
                    str(c["model"]),
                    c.get("engine_args") or {},
                    float(c.get("num_gpus") or 0),
                    float(c.get("gpu_fraction") or 1.0),
                )
            finally:
                if lock is not None:
                    lock.close()
            ctx = zmq.asyncio.Context.instance()
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
            if c.get("bind") == "tcp":
                port = sock.bind_to_random_port("tcp://0.0.0.0")
                host = os.environ.get("TSRAY_NODE_IP", "127.0.0.1")
                address = f"tcp://{host}:{port}"
            else:
                path = os.path.join(tempfile.gettempdir(), f"tsray-engine-{os.getpid()}-{id(self):x}.sock")
                address = f"ipc://{path}"
                sock.bind(address)
            self._sock = sock
            self._loop.create_task(self._serve())
            self._ready.set_result(address)
        except BaseException as e:  # noqa: BLE001 - reported to every caller of address()
            self._ready.set_exception(e)

    def _gpu_lock(self) -> "_GpuLocks | None":
        devices = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
        if not devices or float(self._config.get("num_gpus") or 0) <= 0:
            return None
        return _GpuLocks(sorted(devices))

    async def address(self) -> str:
        """The ZeroMQ address of the data plane, once the model is loaded (raises the load error)."""
        return await asyncio.shield(self._ready)

    async def stats(self) -> dict[str, Any]:
        s = await self._backend.stats()
        return {"waiting": s.waiting, "running": s.running, "kv_cache_usage": s.kv_cache_usage}

    async def info(self) -> dict[str, Any]:
        await asyncio.shield(self._ready)
        return {
            "backend": self._backend_name,
            "max_model_len": self._backend.max_model_len,
            "model": str(self._config.get("model")),
            "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    async def shutdown(self) -> bool:
        for t in list(self._tasks.values()):
            t.cancel()
        await self._backend.shutdown()
        if self._sock is not None:
            self._sock.close(0)
        return True

    # ------------------------------------------------------------------ data plane

    def _send(self, ident: bytes, body: Any) -> None:
        assert self._sock is not None
        self._sock.send_multipart([ident, *encode_message(body)])

    async def _serve(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            ident, rest = frames[0], frames[1:]
            try:
                msg = decode_message(rest)
            except Exception as e:  # noqa: BLE001 - one bad message must not stop the server
                self._send(ident, pb.ErrorReply(code=pb.ERROR_CODE_MALFORMED, message=str(e)))
                continue
            env = msg.envelope
            kind = env.WhichOneof("body")
            if kind == "generate_request":
                req = env.generate_request
                key = (ident, req.request_id)
                if key in self._tasks:
                    self._send(ident, pb.GenerateError(request_id=req.request_id, code="invalid_params", field="request_id", message=f"request id {req.request_id} is already in flight"))
                    continue
                self._tasks[key] = self._loop.create_task(self._run(ident, req))
            elif kind == "abort_generate":
                for rid in env.abort_generate.request_ids:
                    t = self._tasks.get((ident, rid))
                    if t is not None:
                        await self._backend.abort(self._rid(ident, rid))
            elif kind == "engine_stats_request":
                s = await self._backend.stats()
                self._send(
                    ident,
                    pb.EngineStats(
                        request_id=env.engine_stats_request.request_id,
                        waiting=s.waiting,
                        running=s.running,
                        kv_cache_usage=s.kv_cache_usage,
                        model=str(self._config.get("model")),
                        max_model_len=self._backend.max_model_len,
                        ready=True,
                        backend=self._backend_name,
                    ),
                )
            else:
                self._send(ident, pb.ErrorReply(code=pb.ERROR_CODE_UNKNOWN_MESSAGE, message=f"an engine does not take {kind}"))

    @staticmethod
    def _rid(ident: bytes, rid: str) -> str:
        # Request ids are unique per client; the backend sees them qualified by the client.
        return f"{ident.hex()}:{rid}"

    def _emit(self, ident: bytes, d: pb.Delta) -> None:
        self._out[ident].append(d)
        if not self._flush_queued:
            self._flush_queued = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_queued = False
        out, self._out = self._out, defaultdict(list)
        for ident, deltas in out.items():
            self._send(ident, pb.GenerateDeltas(deltas=deltas))

    async def _run(self, ident: bytes, req: pb.GenerateRequest) -> None:
        rid = req.request_id
        try:
            params = _params_from_proto(req.params)
            if len(req.messages) > 0:
                prompt: str | list[int] = self._backend.apply_chat_template([{"role": m.role, "content": m.content} for m in req.messages])
            elif len(req.prompt_token_ids) > 0:
                prompt = list(req.prompt_token_ids)
            else:
                prompt = req.prompt
            async for d in self._backend.generate(self._rid(ident, rid), prompt, params):
                self._emit(ident, self._delta(rid, d))
        except InvalidSamplingParams as e:
            self._send(ident, pb.GenerateError(request_id=rid, code="invalid_params", field=e.field, message=str(e)))
        except PromptTooLong as e:
            self._send(ident, pb.GenerateError(request_id=rid, code="prompt_too_long", limit=e.limit, message=str(e), field="prompt"))
        except asyncio.CancelledError:
            raise
        except EngineError as e:
            self._send(ident, pb.GenerateError(request_id=rid, code="engine_error", message=f"{type(e).__name__}: {e}"))
        except Exception as e:  # noqa: BLE001 - reported to the caller
            self._send(ident, pb.GenerateError(request_id=rid, code="engine_error", message=f"{type(e).__name__}: {e}"))
        finally:
            self._tasks.pop((ident, rid), None)

    @staticmethod
    def _delta(rid: str, d: Delta) -> pb.Delta:
        m = pb.Delta(
            request_id=rid,
            index=d.index,
            text=d.text,
            token_ids=d.token_ids,
            finish_reason=d.finish_reason or "",
            prompt_tokens=d.prompt_tokens,
            completion_tokens=d.completion_tokens,
        )
        if d.logprobs:
            m.logprobs.extend(float(lp.get(t, 0.0)) for lp, t in zip(d.logprobs, d.token_ids))
        return m
