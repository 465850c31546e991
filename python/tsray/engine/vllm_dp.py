"""MoE data parallel: one vLLM DP group (a head ``AsyncLLM`` + headless engine ranks) run as tsray actors.

For a dense model, DP ranks are independent engines behind the TypeScript router (``DataParallel``).
A MoE model's DP ranks run in lockstep (expert layers span every rank, idle ranks run dummy
batches), so vLLM must own the group: the TypeScript ``MoEDataParallel`` (``@tsray/vllm-bridge``)
makes one placement group with one bundle per rank and starts, in this order:

1. every rank's actor (nothing loads yet); rank 0 is a :class:`DPHeadActor`, ranks ``1..N-1`` are
   :class:`HeadlessRankActor`;
2. ``DPHeadActor.dp_endpoint()`` — the head picks its node address and a free TCP port for vLLM's
   handshake (``data_parallel_address`` / ``data_parallel_rpc_port``);
3. ``HeadlessRankActor.start(endpoint)`` on every other rank — each launches its engine core process
   (vLLM's ``CoreEngineProcManager``, as ``vllm serve --headless`` does), which dials the head;
4. ``DPHeadActor.start_group()`` — the head builds ``AsyncLLM`` (``data_parallel_size=N``,
   ``data_parallel_size_local=1``: it runs rank 0's engine core and waits until every rank has
   handshaken), then serves the usual engine data plane (:class:`~tsray.engine.actor.EngineActor`).
   Requests go only to the head; vLLM balances them over the ranks itself.

The per-rank engine arguments come from :func:`build_dp_rank_args` (pure, tested without vLLM). The
head gets no ``data_parallel_rank``: in vLLM that flag means *external* load balancing (one rank per
front end); the head is rank 0 implicitly and balances internally. Headless rank ``i`` gets
``data_parallel_start_rank=i`` (vLLM's ``--headless --data-parallel-start-rank i``).

Backend ``"scripted"`` stands in for vLLM in CPU tests: the head binds a ZeroMQ ROUTER on the
handshake port and waits for a HELLO from every headless rank (which connect a DEALER to
``data_parallel_address:data_parallel_rpc_port``), so the endpoint plumbing and the start order are
exercised for real; then it serves the scripted engine.

The vLLM path (``backend="vllm"``) needs GPUs and a MoE model; it follows vLLM's own headless
launcher (``vllm/entrypoints/cli/serve.py:run_headless``) and must be validated on the GPU machine.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from .actor import EngineActor
from .backend import EngineDead, InvalidEngineArgs, ModelLoadError
from .vllm_backend import VLLM_ENV_DEFAULTS, build_engine_args

__all__ = [
    "DP_ARG_KEYS",
    "DPHeadActor",
    "HeadlessRankActor",
    "build_dp_rank_args",
    "dp_rank_fields",
    "pick_dp_endpoint",
]

#: Engine arguments the bridge sets per rank; a user's ``engine_args`` must leave them out.
DP_ARG_KEYS = (
    "data_parallel_size",
    "data_parallel_size_local",
    "data_parallel_rank",
    "data_parallel_start_rank",
    "data_parallel_address",
    "data_parallel_rpc_port",
    "data_parallel_backend",
    "data_parallel_hybrid_lb",
    "data_parallel_external_lb",
    "headless",
    "api_server_count",
)

#: How long the head waits for every rank to dial in (vLLM's VLLM_ENGINE_READY_TIMEOUT_S default).
DEFAULT_HANDSHAKE_TIMEOUT_S = 600.0


def pick_dp_endpoint(host: str | None = None) -> dict[str, Any]:
    """The head's handshake endpoint: this node's address (``host``, else ``$TSRAY_NODE_IP``, else
    127.0.0.1) and a TCP port that is free on it now (bound to port 0 and released)."""
    address = host or os.environ.get("TSRAY_NODE_IP") or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        port = int(s.getsockname()[1])
    return {"address": address, "rpc_port": port}


def dp_rank_fields(rank: int, size: int, address: str, rpc_port: int) -> dict[str, Any]:
    """The ``data_parallel_*`` engine arguments of rank ``rank`` in a group of ``size`` ranks, one
    rank per actor (``data_parallel_size_local=1``). Raises :class:`InvalidEngineArgs`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidEngineArgs("data_parallel_size", f"must be an integer >= 1, got {size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not (0 <= rank < size):
        raise InvalidEngineArgs("data_parallel_rank", f"must be an integer in [0, {size}), got {rank!r}")
    if not isinstance(address, str) or not address:
        raise InvalidEngineArgs("data_parallel_address", f"must be a non-empty host name or IP, got {address!r}")
    if isinstance(rpc_port, bool) or not isinstance(rpc_port, int) or not (1 <= rpc_port <= 65535):
        raise InvalidEngineArgs("data_parallel_rpc_port", f"must be a TCP port in [1, 65535], got {rpc_port!r}")
    fields: dict[str, Any] = {
        "data_parallel_size": size,
        "data_parallel_size_local": 1,
        "data_parallel_address": address,
        "data_parallel_rpc_port": rpc_port,
    }
    if rank > 0:
        # Headless: this node's ranks start at `rank` (no hybrid LB in headless mode).
        fields["data_parallel_start_rank"] = rank
    return fields


def build_dp_rank_args(
    model_dir: str,
    engine_args: Mapping[str, Any] | None,
    num_gpus: float,
    gpu_fraction: float,
    *,
    rank: int,
    size: int,
    address: str,
    rpc_port: int,
) -> dict[str, Any]:
    """``AsyncEngineArgs`` keyword arguments of one rank of a MoE DP group (pure; no vLLM import):
    :func:`~tsray.engine.vllm_backend.build_engine_args` (TP size from ``num_gpus``, memory
    utilization from ``gpu_fraction``, ...) plus :func:`dp_rank_fields`. The same
    ``engine_args`` go to every rank; the ``data_parallel_*`` ones are the bridge's to set."""
    args = dict(engine_args or {})
    for key in DP_ARG_KEYS:
        if key in args:
            raise InvalidEngineArgs(key, "is set by the bridge for each rank of a MoE data-parallel group; leave it out")
    out = build_engine_args(model_dir, args, num_gpus, gpu_fraction)
    out.update(dp_rank_fields(rank, size, address, rpc_port))
    return out


def _rank_args(config: Mapping[str, Any], rank: int, endpoint: Mapping[str, Any]) -> dict[str, Any]:
    dp = config.get("dp") or {}
    return build_dp_rank_args(
        str(config["model"]),
        config.get("engine_args") or {},
        float(config.get("num_gpus") or 0),
        float(config.get("gpu_fraction") or 1.0),
        rank=rank,
        size=int(dp["size"]),
        address=str(endpoint["address"]),
        rpc_port=int(endpoint["rpc_port"]),
    )


class DPHeadActor(EngineActor):
    """Rank 0 of a MoE DP group: vLLM's front end (``AsyncLLM``) plus rank 0's engine core. Nothing
    loads until :meth:`start_group`; then it is an :class:`EngineActor` (``address()`` once every rank
    has joined). ``config`` as EngineActor's plus ``dp: {size, handshake_timeout_s?}``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._go = asyncio.Event()
        self._endpoint = pick_dp_endpoint()
        self._dp_args: dict[str, Any] = {}
        self._joined: list[int] = []
        self._started_at = 0.0
        super().__init__(config)

    def dp_endpoint(self) -> dict[str, Any]:
        """Where the headless ranks dial in: ``{"address", "rpc_port"}`` on this node."""
        return dict(self._endpoint)

    async def start_group(self) -> bool:
        """Start the head (after every headless rank was started)."""
        self._go.set()
        return True

    async def _start(self) -> None:  # type: ignore[override]
        try:
            await self._go.wait()
            self._started_at = time.time()
            c = self._config
            self._dp_args = _rank_args(c, 0, self._endpoint)
            if self._backend_name == "vllm":
                user = dict(c.get("engine_args") or {})
                user.update(dp_rank_fields(0, int(c["dp"]["size"]), self._endpoint["address"], int(self._endpoint["rpc_port"])))
                c["engine_args"] = user
            else:
                await self._stand_in_handshake()
        except BaseException as e:  # noqa: BLE001 - reported to every caller of address()
            self._ready.set_exception(e)
            return
        await super()._start()

    async def _stand_in_handshake(self) -> None:
        """Scripted stand-in for vLLM's start-up handshake: wait for a HELLO from every other rank."""
        import zmq
        import zmq.asyncio

        dp = self._config["dp"]
        size = int(dp["size"])
        timeout = float(dp.get("handshake_timeout_s") or DEFAULT_HANDSHAKE_TIMEOUT_S)
        sock = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(f"tcp://0.0.0.0:{int(self._endpoint['rpc_port'])}")
        try:
            deadline = time.monotonic() + timeout
            while len(self._joined) < size - 1:
                left = deadline - time.monotonic()
                if left <= 0 or not await sock.poll(int(left * 1000)):
                    missing = sorted(set(range(1, size)) - set(self._joined))
                    raise EngineDead("dp-head", f"ranks {missing} did not join the DP group within {timeout:g} s")
                frames = await sock.recv_multipart()
                if len(frames) >= 3 and frames[1] == b"HELLO":
                    self._joined.append(int(frames[2]))
        finally:
            sock.close(0)

    async def info(self) -> dict[str, Any]:
        base = await super().info()
        base["dp"] = {
            "rank": 0,
            "size": int(self._config["dp"]["size"]),
            "endpoint": dict(self._endpoint),
            "args": self._dp_args,
            "joined": sorted(self._joined),
            "started_at": self._started_at,
        }
        return base


class HeadlessRankActor:
    """Rank ``i >= 1`` of a MoE DP group: vLLM engine core process(es) without a front end, dialing the
    head (``vllm serve --headless`` in an actor). ``config`` as EngineActor's plus ``dp: {rank, size}``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = dict(config)
        self._rank = int(config["dp"]["rank"])
        self._backend = str(config.get("backend") or "auto")
        if self._backend == "auto":
            try:
                import vllm  # noqa: F401

                self._backend = "vllm"
            except Exception:  # noqa: BLE001
                self._backend = "scripted"
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[str] = self._loop.create_future()
        self._args: dict[str, Any] = {}
        self._manager: Any = None
        self._sock: Any = None
        self._started_at = 0.0

    async def start(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        """Launch this rank's engine and dial the head at ``endpoint``; returns once it is launched
        (it becomes ready when the head's handshake completes)."""
        self._started_at = time.time()
        self._args = _rank_args(self._config, self._rank, endpoint)
        if self._backend == "vllm":
            await asyncio.to_thread(self._start_vllm)
        elif self._backend == "scripted":
            await self._start_stand_in(endpoint)
        else:
            raise InvalidEngineArgs("backend", f"a MoE DP group runs on vllm (or the scripted stand-in), not {self._backend!r}")
        return {"rank": self._rank, "args": self._args}

    async def _start_stand_in(self, endpoint: Mapping[str, Any]) -> None:
        import zmq
        import zmq.asyncio

        ea = dict(self._config.get("engine_args") or {})
        if ea.get("start_delay_s"):
            await asyncio.sleep(float(ea["start_delay_s"]))
        if ea.get("fail_start"):
            raise ModelLoadError(str(self._config["model"]), f"scripted start failure on DP rank {self._rank} (fail_start)")
        sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{endpoint['address']}:{int(endpoint['rpc_port'])}")
        await sock.send_multipart([b"HELLO", str(self._rank).encode()])
        self._sock = sock

    def _start_vllm(self) -> None:
        for k, v in VLLM_ENV_DEFAULTS.items():
            os.environ.setdefault(k, v)
        model = str(self._config["model"])
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise ModelLoadError(model, "no config.json in that folder (a local model folder is needed)")
        import vllm
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.utils import CoreEngineProcManager

        try:
            from vllm.v1.executor import Executor
        except ImportError:  # older layout
            from vllm.v1.executor.abstract import Executor  # type: ignore[no-redef]

        engine_args = vllm.AsyncEngineArgs(**self._args)
        vllm_config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER, headless=True)
        pc = vllm_config.parallel_config
        kwargs = {
            "local_engine_count": pc.data_parallel_size_local,
            "start_index": pc.data_parallel_rank,
            "local_start_index": 0,
            "vllm_config": vllm_config,
            "local_client": False,
            "handshake_address": f"tcp://{pc.data_parallel_master_ip}:{pc.data_parallel_rpc_port}",
            "executor_class": Executor.get_class(vllm_config),
            "log_stats": not engine_args.disable_log_stats,
        }
        accepted = inspect.signature(CoreEngineProcManager.__init__).parameters
        self._manager = CoreEngineProcManager(**{k: v for k, v in kwargs.items() if k in accepted})
        threading.Thread(target=self._watch_vllm, name="tsray-dp-rank-watch", daemon=True).start()

    def _watch_vllm(self) -> None:
        """Resolve :meth:`wait_exit` when an engine core process of this rank exits."""
        procs = list(getattr(self._manager, "processes", []) or [])
        reason = "engine core process exited"
        while procs:
            for p in procs:
                if not p.is_alive():
                    reason = f"engine core process {p.name} (pid {p.pid}) exited with code {p.exitcode}"
                    procs = []
                    break
            time.sleep(0.5)
        self._loop.call_soon_threadsafe(self._set_exited, reason)

    def _set_exited(self, reason: str) -> None:
        if not self._exited.done():
            self._exited.set_result(reason)

    async def wait_exit(self) -> str:
        """Returns (with the reason) when this rank's engine exits; the group then restarts or dies."""
        return await asyncio.shield(self._exited)

    async def info(self) -> dict[str, Any]:
        return {
            "backend": self._backend,
            "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "dp": {"rank": self._rank, "size": int(self._config["dp"]["size"]), "args": self._args, "started_at": self._started_at},
        }

    async def shutdown(self) -> bool:
        if self._manager is not None:
            await asyncio.to_thread(self._manager.shutdown)
            self._manager = None
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        if not self._exited.done():
            self._exited.set_result("shut down")
        return True
