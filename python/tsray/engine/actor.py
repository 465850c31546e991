"""The engine actor: one LLM engine in a tsray Python worker, serving a ZeroMQ data plane.

The TypeScript ``LLMEngine`` (``@tsray/vllm-bridge``) creates this class as a Python actor (so it is
scheduled like any actor: resources, placement-group bundles, ``CUDA_VISIBLE_DEVICES``), asks it for
its ``address()``, and connects a DEALER to the ROUTER this actor binds. Requests then go straight to
the engine process, never through the node:

    client DEALER --GenerateRequest / AbortGenerate / EngineStatsRequest--> engine ROUTER
    client DEALER <--GenerateDeltas (batched per loop turn) / GenerateError / EngineStats-- engine ROUTER

Many requests are in flight per connection (continuous batching is the backend's job); deltas of all
requests produced in one event-loop turn go out in one message per client.

Hot path (one call per token per request, on the event loop that also runs vLLM's output handler):
the backend pushes deltas (:meth:`~tsray.engine.backend.EngineBackend.open_stream`; the vLLM backend
calls straight from vLLM's output handler, no task per request), and each delta is added in place to
the client's pending ``Envelope.generate_deltas`` (one protobuf ``add`` call, no intermediate
objects); a callback scheduled once per loop turn serializes each pending envelope and sends it.
Measured with bench/llm/actor_profile.py (BENCHMARKS.md, "CPU profile of the bridge").
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq
import zmq.asyncio

from .._curve import curve_on
from .._proto import tsray_pb2 as pb
from ..protocol import PROTOCOL_VERSION, decode_message, encode_message
from . import create_backend
from .backend import EngineBackend, InvalidSamplingParams, PromptTooLong, SamplingParams
from .load_report import EngineLoad, report_loop

#: Messages libzmq queues per client connection before it stops reading that connection.
_RECEIVE_HIGH_WATER_MARK = 1000
#: Largest message a client may send (a generate request with its prompt); bigger ones disconnect it.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _params_from_proto(p: pb.SamplingParams) -> SamplingParams:
    d: dict[str, Any] = {}
    for name in ("temperature", "top_p", "top_k", "max_tokens", "seed", "n", "logprobs", "ignore_eos"):
        if p.HasField(name):
            d[name] = getattr(p, name)
    if d.get("max_tokens") == 0:  # 0 on the wire: up to the end of the context (the TS API's null)
        d["max_tokens"] = None
    if len(p.stop) > 0:
        d["stop"] = list(p.stop)
    return SamplingParams.from_dict(d)


def _socket_dir() -> str:
    """Where the engine's ipc socket goes: beside the node's socket (a short per-user directory the
    node chose because a unix socket path holds at most 107 bytes; ``$TMPDIR`` may be too long),
    else the temp directory."""
    node = os.environ.get("TSRAY_NODE_ADDRESS", "")
    if node.startswith("ipc://") and not node.startswith("ipc://@"):
        return os.path.dirname(node.removeprefix("ipc://"))
    return tempfile.gettempdir()


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
        # In-flight requests by (client identity, request id): how to stop each stream.
        self._streams: dict[tuple[bytes, str], Callable[[], None]] = {}
        # Per client: the envelope collecting the deltas of this loop turn, and its ``deltas.add``.
        self._out: dict[bytes, tuple[pb.Envelope, Callable[..., pb.Delta]]] = {}
        self._flush_queued = False
        # Token id -> its text alone (logprob entries name their tokens; the vocabulary bounds it).
        self._token_texts: dict[int, str] = {}
        self._sock: zmq.asyncio.Socket | None = None
        # Tokens and times to first token, reported to the node for the dashboard (load_report.py).
        self.load = EngineLoad()
        self._reporter: asyncio.Task[None] | None = None
        # The data plane's CURVE public key (Z85) when it is bound to tcp with CURVE on, else "".
        self._server_key = ""
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
            # What one peer can push is bounded: over the mark libzmq stops reading that connection
            # (TCP pushes back, nothing is dropped); a bigger message disconnects its sender.
            sock.setsockopt(zmq.RCVHWM, _RECEIVE_HIGH_WATER_MARK)
            sock.setsockopt(zmq.MAXMSGSIZE, _MAX_MESSAGE_BYTES)
            if c.get("bind") == "tcp":
                if curve_on("tcp://"):
                    # Encrypted and authenticated: a fresh keypair per engine; only callers of
                    # server_key() (cluster members, through the authenticated cluster) can connect.
                    public, secret = zmq.curve_keypair()
                    sock.setsockopt(zmq.CURVE_SERVER, 1)
                    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
                    self._server_key = public.decode()
                port = sock.bind_to_random_port("tcp://0.0.0.0")
                host = os.environ.get("TSRAY_NODE_IP", "127.0.0.1")
                address = f"tcp://{host}:{port}"
            else:
                path = os.path.join(_socket_dir(), f"tsray-engine-{os.getpid()}-{id(self):x}.sock")
                address = f"ipc://{path}"
                sock.bind(address)
            self._sock = sock
            self._loop.create_task(self._serve())
            self._ready.set_result(address)
            self._reporter = self._loop.create_task(report_loop(self))
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

    async def server_key(self) -> str:
        """The CURVE public key (Z85) a client of a tcp data plane connects with; "" for ipc or CURVE off."""
        await asyncio.shield(self._ready)
        return self._server_key

    async def stats(self) -> dict[str, Any]:
        s = await self._backend.stats()
        return {"waiting": s.waiting, "running": s.running, "kv_cache_usage": s.kv_cache_usage}

    async def info(self) -> dict[str, Any]:
        await asyncio.shield(self._ready)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        tp = self.tensor_parallel_size()
        return {
            "backend": self._backend_name,
            "max_model_len": self._backend.max_model_len,
            "model": str(self._config.get("model")),
            "pid": os.getpid(),
            "cuda_visible_devices": visible,
            "tensor_parallel_size": tp,
            "gpu_ids": [d for d in (visible or "").split(",") if d != ""],
        }

    def tensor_parallel_size(self) -> int:
        """GPUs the engine shards its model over."""
        engine_args = self._config.get("engine_args") or {}
        # vLLM (and the scripted stand-in for it) shards over the engine's GPUs; transformers does not.
        if self._backend_name == "transformers":
            return 1
        return int(engine_args.get("tensor_parallel_size") or max(1, int(float(self._config.get("num_gpus") or 0))))

    async def tokenize(self, prompt: Any, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``prompt``: a string, or chat messages (the chat template applied first), as
        vLLM's ``/tokenize``."""
        await asyncio.shield(self._ready)
        if isinstance(prompt, list):
            return self._backend.encode(self._backend.apply_chat_template(prompt), add_special_tokens=False)
        return self._backend.encode(str(prompt), add_special_tokens=bool(add_special_tokens))

    async def detokenize(self, token_ids: list[int]) -> str:
        """The text of ``token_ids`` (special tokens kept, as vLLM's ``/detokenize``)."""
        await asyncio.shield(self._ready)
        return self._backend.decode([int(t) for t in token_ids], skip_special_tokens=False)

    async def shutdown(self) -> bool:
        if self._reporter is not None:
            self._reporter.cancel()
        for close in list(self._streams.values()):
            close()
        self._streams.clear()
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
                if key in self._streams:
                    self._send(ident, pb.GenerateError(request_id=req.request_id, code="invalid_params", field="request_id", message=f"request id {req.request_id} is already in flight"))
                    continue
                task = self._loop.create_task(self._open(ident, req))
                self._streams[key] = task.cancel  # replaced by the stream's close() once open
            elif kind == "abort_generate":
                for rid in env.abort_generate.request_ids:
                    if (ident, rid) in self._streams:
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

    def _flush(self) -> None:
        self._flush_queued = False
        out, self._out = self._out, {}
        sock = self._sock
        assert sock is not None
        for ident, (env, _add) in out.items():
            sock.send_multipart([ident, env.SerializeToString()])

    def _token_text(self, token_id: int) -> str:
        """The text of one token decoded alone (special tokens kept), as vLLM's ``decoded_token``; cached."""
        text = self._token_texts.get(token_id)
        if text is None:
            text = self._token_texts[token_id] = self._backend.decode([token_id], skip_special_tokens=False)
        return text

    def _put_logprobs(self, d: pb.Delta, token_ids: Sequence[int], logprobs: list[dict[int, float]], top_k: int) -> None:
        """Fill the logprob fields of ``d``: per token, its log-probability and text, and the ``top_k`` most
        likely tokens of that step, most likely first. A backend's map holds the sampled token and the
        step's top tokens (vLLM's shape), so the top ``top_k`` of the map are the step's top ``top_k``."""
        text = self._token_text
        for lp, t in zip(logprobs, token_ids):
            # -inf (a token masked out by top-k/top-p) is not JSON: vLLM clamps to -9999.0 as OpenAI does.
            d.logprobs.append(max(float(lp.get(t, -9999.0)), -9999.0))
            d.tokens.append(text(t))
            top = d.top_logprobs.add()
            if top_k > 0:
                best = sorted(lp.items(), key=lambda kv: -kv[1])[:top_k]
                top.token_ids.extend(int(k) for k, _ in best)
                top.logprobs.extend(max(float(v), -9999.0) for _, v in best)
                top.tokens.extend(text(int(k)) for k, _ in best)

    def _sink(self, ident: bytes, rid: str, n: int, top_k: int = 0) -> tuple[Callable[..., None], Callable[[BaseException], None]]:
        """The ``emit``/``fail`` pair of one request (see EngineBackend.open_stream); ``top_k`` = the
        request's ``logprobs`` (how many top tokens per step to send)."""
        key = (ident, rid)
        open_ = n
        load = self.load
        opened = time.monotonic()
        first = True

        def emit(
            index: int,
            text: str,
            token_ids: Sequence[int],
            finish_reason: str | None,
            prompt_tokens: int,
            completion_tokens: int,
            logprobs: list[dict[int, float]] | None,
        ) -> None:
            nonlocal open_, first
            if first:
                first = False
                load.ttft_s.append(time.monotonic() - opened)
            load.tokens += len(token_ids)
            slot = self._out.get(ident)
            if slot is None:
                env = pb.Envelope(version=PROTOCOL_VERSION)
                slot = self._out[ident] = (env, env.generate_deltas.deltas.add)
                if not self._flush_queued:
                    self._flush_queued = True
                    self._loop.call_soon(self._flush)
            d = slot[1](
                request_id=rid,
                index=index,
                text=text,
                token_ids=token_ids,
                finish_reason=finish_reason or "",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
            if logprobs:
                self._put_logprobs(d, token_ids, logprobs, top_k)
            if finish_reason:
                open_ -= 1
                if open_ <= 0:
                    self._streams.pop(key, None)
                    load.finished += 1

        def fail(e: BaseException) -> None:
            self._streams.pop(key, None)
            self._report(ident, rid, e)

        return emit, fail

    def _report(self, ident: bytes, rid: str, e: BaseException) -> None:
        # Deltas already queued for this client go first (order on the wire = order produced).
        if ident in self._out:
            self._flush()
        if isinstance(e, InvalidSamplingParams):
            self._send(ident, pb.GenerateError(request_id=rid, code="invalid_params", field=e.field, message=str(e)))
        elif isinstance(e, PromptTooLong):
            self._send(ident, pb.GenerateError(request_id=rid, code="prompt_too_long", limit=e.limit, message=str(e), field="prompt"))
        else:
            self._send(ident, pb.GenerateError(request_id=rid, code="engine_error", message=f"{type(e).__name__}: {e}"))

    async def _open(self, ident: bytes, req: pb.GenerateRequest) -> None:
        rid = req.request_id
        key = (ident, rid)
        try:
            params = _params_from_proto(req.params)
            if len(req.messages) > 0:
                prompt: str | list[int] = self._backend.apply_chat_template([{"role": m.role, "content": m.content} for m in req.messages])
            elif len(req.prompt_token_ids) > 0:
                prompt = list(req.prompt_token_ids)
            else:
                prompt = req.prompt
            emit, fail = self._sink(ident, rid, params.n, params.logprobs or 0)
            close = await self._backend.open_stream(self._rid(ident, rid), prompt, params, emit, fail)
            if key in self._streams:
                self._streams[key] = close
        except asyncio.CancelledError:
            self._streams.pop(key, None)
            raise
        except Exception as e:  # noqa: BLE001 - reported to the caller
            self._streams.pop(key, None)
            self._report(ident, rid, e)
