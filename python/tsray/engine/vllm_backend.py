"""vLLM engine backend: one ``AsyncLLM`` (vLLM v1 engine, written against the v0.26 line).

``start()`` builds ``AsyncLLM.from_engine_args(AsyncEngineArgs(model=<dir>,
tensor_parallel_size=<gpus>, gpu_memory_utilization=<fraction × 0.9 unless given>,
enforce_eager=False unless given (vLLM's default: CUDA graphs), ...))`` in a thread (engine start-up takes seconds to minutes and
must not stall the worker's event loop). vLLM then runs its EngineCore (and, for TP > 1, one worker
process per GPU) as child processes; this process does no CUDA work itself, so vLLM can fork.

The engine actor uses :meth:`VllmBackend.open_stream` (push): the request goes in with
``AsyncLLM.add_request`` and this backend replaces the ``put`` of the request's
``RequestOutputCollector`` with its own handler, so vLLM's output handler hands each
``RequestOutput`` straight to the bridge (no task, event and generator hop per request per step).
That depends on vLLM's internals (0.26: ``OutputProcessor`` calls ``req_state.queue.put(output)``);
when the collector is not the known class, or ``TSRAY_VLLM_PUSH=0``, one task per request reads the
collector as ``AsyncLLM.generate`` does.

Requests are tokenized here (to check the context length and report ``prompt_tokens``) and sent as
``TokensPrompt`` with ``SamplingParams(output_kind=RequestOutputKind.DELTA)``; each ``RequestOutput``
becomes one :class:`~tsray.engine.backend.Delta` per ``CompletionOutput`` in it. Abort is
``AsyncLLM.abort(request_id)``, which makes vLLM emit a final output with ``finish_reason='abort'``.
Load (waiting/running/KV usage) comes from a stat logger plugged into the engine (vLLM's
``SchedulerStats``), bounded by ``output_processor.get_num_unfinished_requests()``.

Environment set before vLLM is imported (unless already set): ``VLLM_USE_FLASHINFER_SAMPLER=0``
(no FlashInfer JIT/download), ``VLLM_NO_USAGE_STATS=1``, ``HF_HUB_OFFLINE=1``,
``TRANSFORMERS_OFFLINE=1``.

Several engines on one GPU: each gets ``gpu_memory_utilization = fraction × 0.9``
(:func:`~tsray.engine.backend.derive_gpu_memory_utilization`, also :attr:`VllmBackend.gpu_memory_utilization`
after start) and they must be started one after another: vLLM checks its budget against the GPU's
*free* memory while profiling.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from .backend import (
    BackendUnavailable,
    Delta,
    DeltaSink,
    DuplicateRequestId,
    EngineBackend,
    EngineDead,
    EngineError,
    EngineNotStarted,
    EngineStats,
    ErrorSink,
    HFTokenizerMixin,
    FinishReason,
    InvalidEngineArgs,
    ModelLoadError,
    SamplingParams,
    check_prompt,
    check_prompt_ids,
    derive_gpu_memory_utilization,
)

__all__ = ["VLLM_ENV_DEFAULTS", "VllmBackend", "build_engine_args"]

log = logging.getLogger("tsray.engine.vllm")

#: Environment defaults applied (with ``setdefault``) before vLLM is imported.
VLLM_ENV_DEFAULTS = {
    "VLLM_USE_FLASHINFER_SAMPLER": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "abort": "abort", "repetition": "stop"}


def build_engine_args(
    model_dir: str, engine_args: Mapping[str, Any] | None, num_gpus: float, gpu_fraction: float
) -> dict[str, Any]:
    """The keyword arguments for ``AsyncEngineArgs`` (pure; no vLLM import).

    ``tensor_parallel_size`` defaults to ``int(num_gpus)`` (at least 1); ``gpu_memory_utilization``
    to ``gpu_fraction × 0.9`` unless ``kv_cache_memory_bytes`` is given; ``enforce_eager`` to False,
    vLLM's own default (CUDA graphs and torch.compile: 30-60 s more at the first start, cached in
    ``~/.cache/vllm``; on a small model the eager step is CPU-bound and several times slower, see
    docs/gpu-runs.md); pass ``enforce_eager: True`` for the quick start; ``disable_log_stats`` to True (no periodic log lines; this backend
    still gets scheduler stats through its own stat logger). ``model`` is the folder.
    """
    args = dict(engine_args or {})
    if "model" in args and args["model"] != model_dir:
        raise InvalidEngineArgs("model", "pass the model folder as model_dir, not in engine_args")
    if not isinstance(num_gpus, (int, float)) or num_gpus < 0:
        raise InvalidEngineArgs("num_gpus", f"must be >= 0, got {num_gpus!r}")
    tp = args.get("tensor_parallel_size")
    if tp is None:
        tp = max(1, int(num_gpus))
    elif not isinstance(tp, int) or tp < 1:
        raise InvalidEngineArgs("tensor_parallel_size", f"must be an integer >= 1, got {tp!r}")
    args["tensor_parallel_size"] = tp
    if args.get("gpu_memory_utilization") is None and args.get("kv_cache_memory_bytes") is None:
        try:
            args["gpu_memory_utilization"] = derive_gpu_memory_utilization(gpu_fraction)
        except ValueError as e:
            raise InvalidEngineArgs("gpu_fraction", str(e)) from e
    util = args.get("gpu_memory_utilization")
    if util is not None and (not isinstance(util, (int, float)) or not (0 < util <= 1)):
        raise InvalidEngineArgs("gpu_memory_utilization", f"must be in (0, 1], got {util!r}")
    if util is None:
        args.pop("gpu_memory_utilization", None)
    args.setdefault("enforce_eager", False)
    args.setdefault("disable_log_stats", True)
    args["model"] = model_dir
    return args


class VllmBackend(HFTokenizerMixin, EngineBackend):
    """Engine on vLLM's ``AsyncLLM`` (see the module docstring). ``gpu_memory_utilization`` is the
    value given to vLLM (known after :meth:`start`)."""

    name = "vllm"

    def __init__(self) -> None:
        self._engine: Any = None
        self._tok: Any = None
        self._model_dir = ""
        self._max_model_len = 0
        self._vocab_size = 0
        self._eos_ids: tuple[int, ...] = ()
        self._active: set[str] = set()
        self._sched: Any = None  # last vLLM SchedulerStats
        self._vllm: Any = None  # namespace of the vLLM names used per request
        self._dead: str | None = None
        self.gpu_memory_utilization: float | None = None
        self.engine_args: dict[str, Any] = {}
        #: KV cache capacity in tokens that vLLM allocated (GPU blocks x block size), after start.
        self.kv_cache_tokens = 0

    # ------------------------------------------------------------------------------- life cycle

    async def start(
        self,
        model_dir: str,
        engine_args: Mapping[str, Any] | None = None,
        num_gpus: float = 0.0,
        gpu_fraction: float = 1.0,
    ) -> None:
        if self._engine is not None:
            raise EngineError("vllm engine: start() was already called")
        kwargs = build_engine_args(model_dir, engine_args, num_gpus, gpu_fraction)
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise ModelLoadError(model_dir, "no config.json in that folder (a local model folder is needed)")
        for k, v in VLLM_ENV_DEFAULTS.items():
            os.environ.setdefault(k, v)
        ns = _import_vllm()
        try:
            engine_args_obj = ns.AsyncEngineArgs(**kwargs)
        except TypeError as e:
            raise InvalidEngineArgs("engine_args", f"{e} (see vLLM's AsyncEngineArgs fields)") from e
        backend = self

        class _StatsLogger(ns.StatLoggerBase):  # type: ignore[misc,name-defined]
            """Keeps the last SchedulerStats for stats()."""

            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                self.engine_index = engine_index

            def record(
                self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0
            ) -> None:
                if scheduler_stats is not None:
                    backend._sched = scheduler_stats

            def log_engine_initialized(self) -> None:
                pass

        def factory(vllm_config: Any, engine_index: int) -> Any:
            return _StatsLogger(vllm_config, engine_index)

        log.info(
            "vllm engine starting: %s tp=%s gpu_memory_utilization=%s enforce_eager=%s",
            model_dir,
            kwargs["tensor_parallel_size"],
            kwargs.get("gpu_memory_utilization"),
            kwargs["enforce_eager"],
        )
        try:
            engine = await asyncio.to_thread(ns.AsyncLLM.from_engine_args, engine_args_obj, stat_loggers=[factory])
        except (ValueError, OSError) as e:
            raise ModelLoadError(model_dir, f"{type(e).__name__}: {e}") from e
        except Exception as e:
            raise EngineDead(self.name, f"engine start-up failed: {type(e).__name__}: {e}") from e
        self._engine = engine
        self._vllm = ns
        self._model_dir = model_dir
        self.engine_args = kwargs
        self.gpu_memory_utilization = kwargs.get("gpu_memory_utilization")
        try:
            tok = engine.get_tokenizer()
            if inspect.isawaitable(tok):
                tok = await tok
        except Exception:  # noqa: BLE001 - fall back to loading it ourselves
            tok = None
        if tok is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._tok = tok
        mc = engine.model_config
        self._max_model_len = int(mc.max_model_len)
        self._vocab_size = int(mc.get_vocab_size())
        eos: set[int] = set()
        if getattr(tok, "eos_token_id", None) is not None:
            eos.add(int(tok.eos_token_id))
        eos.update(_generation_eos_ids(model_dir))
        self._eos_ids = tuple(sorted(eos))
        cc = getattr(getattr(engine, "vllm_config", None), "cache_config", None)
        blocks = int(getattr(cc, "num_gpu_blocks", 0) or 0)
        block_size = int(getattr(cc, "block_size", 0) or 0)
        self.kv_cache_tokens = blocks * block_size
        log.info(
            "vllm engine ready: max_model_len %d, KV cache %d blocks x %d = %d tokens (gpu_memory_utilization %s)",
            self._max_model_len,
            blocks,
            block_size,
            self.kv_cache_tokens,
            self.gpu_memory_utilization,
        )

    async def shutdown(self) -> None:
        engine = self._engine
        if engine is None:
            return
        for rid in list(self._active):
            try:
                await engine.abort(rid)
            except Exception as e:  # noqa: BLE001 - shutting down anyway
                log.debug("vllm engine: abort of %s at shutdown failed: %s", rid, e)
        self._engine = None
        self._dead = "shut down"
        # AsyncLLM.shutdown() stops the engine core first and cancels its output handler after, from
        # this thread pool thread: the handler can see the core gone first and log "AsyncLLM
        # output_handler failed ... EngineDeadError" (seen on the H100 at a normal shutdown). Stop the
        # handler here, on its own loop, before the core goes.
        handler = getattr(engine, "output_handler", None)
        if isinstance(handler, asyncio.Task) and not handler.done():
            handler.cancel()
            await asyncio.wait([handler], timeout=5)
        await asyncio.to_thread(engine.shutdown)

    async def health(self) -> None:
        engine = self._engine
        if engine is None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, "health()")
        try:
            await engine.check_health()
        except Exception as e:
            raise EngineDead(self.name, f"{type(e).__name__}: {e}") from e

    async def stats(self) -> EngineStats:
        engine = self._engine
        if engine is None:
            return EngineStats()
        try:
            unfinished = int(engine.output_processor.get_num_unfinished_requests())
        except AttributeError:
            unfinished = len(self._active)
        s = self._sched
        if unfinished == 0:
            return EngineStats(0, 0, float(getattr(s, "kv_cache_usage", 0.0) or 0.0) if s else 0.0)
        if s is None:
            return EngineStats(waiting=unfinished, running=0, kv_cache_usage=0.0)
        running = min(int(s.num_running_reqs), unfinished)
        return EngineStats(waiting=unfinished - running, running=running, kv_cache_usage=float(s.kv_cache_usage))

    # ------------------------------------------------------------------------------- tokenizer

    # _need_tok, max_model_len, tokenizer_info, encode, decode, apply_chat_template: HFTokenizerMixin

    # ------------------------------------------------------------------------------- requests

    def to_vllm_params(self, params: SamplingParams) -> Any:
        """Our :class:`SamplingParams` as vLLM's, streaming deltas."""
        ns = self._vllm
        return ns.SamplingParams(
            n=params.n,
            temperature=float(params.temperature),
            top_p=float(params.top_p),
            top_k=max(0, params.top_k),
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
            logprobs=params.logprobs,
            ignore_eos=params.ignore_eos,
            output_kind=ns.RequestOutputKind.DELTA,
        )

    def generate(self, request_id: str, prompt: str | list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        if self._engine is None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, "generate()")
        params.validate()
        p = check_prompt(prompt)
        ids = self.encode(p) if isinstance(p, str) else p
        check_prompt_ids(ids, self._vocab_size, self._max_model_len)
        if request_id in self._active:
            raise DuplicateRequestId(request_id)
        vparams = self.to_vllm_params(params)
        self._active.add(request_id)
        return self._stream(request_id, ids, vparams, params.n)

    async def open_stream(
        self, request_id: str, prompt: str | list[int], params: SamplingParams, emit: DeltaSink, fail: ErrorSink
    ) -> Callable[[], None]:
        """Push variant of :meth:`generate` (see the module docstring and
        :meth:`EngineBackend.open_stream`): ``emit`` is called from vLLM's output handler."""
        if self._engine is None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, "open_stream()")
        if not hasattr(self._engine, "add_request"):  # not vLLM's AsyncLLM API: one task per request
            return await super().open_stream(request_id, prompt, params, emit, fail)
        params.validate()
        p = check_prompt(prompt)
        ids = self.encode(p) if isinstance(p, str) else p
        check_prompt_ids(ids, self._vocab_size, self._max_model_len)
        if request_id in self._active:
            raise DuplicateRequestId(request_id)
        ns = self._vllm
        engine = self._engine
        vparams = self.to_vllm_params(params)
        self._active.add(request_id)
        try:
            q = await engine.add_request(request_id, ns.TokensPrompt(prompt_token_ids=ids), vparams)
        except BaseException as e:
            self._active.discard(request_id)
            raise self._engine_error(request_id, e) from e
        plen = len(ids)
        n = params.n
        counts = [0] * n
        unfinished = set(range(n))
        closed = False
        active = self._active
        finish_map = _FINISH

        def end() -> None:
            nonlocal closed
            closed = True
            active.discard(request_id)

        def on_output(out: Any) -> None:
            # Runs inside vLLM's output handler: must never raise.
            if closed:
                return
            try:
                if isinstance(out, BaseException):
                    end()
                    fail(self._engine_error(request_id, out))
                    return
                outputs = getattr(out, "outputs", None)
                if outputs is None:  # STREAM_FINISHED (streaming input only) or unknown
                    return
                for co in outputs:
                    tids = co.token_ids
                    i = co.index
                    counts[i] += len(tids)
                    fr = co.finish_reason
                    finish: FinishReason | None = None
                    if fr is not None:
                        finish = finish_map.get(fr if type(fr) is str else str(fr))
                        if finish is None:
                            raise EngineError(f"vllm engine: the request finished with {str(fr)!r} (internal engine error)")
                        unfinished.discard(i)
                    lps = _logprobs(co.logprobs, len(tids)) if co.logprobs is not None else None
                    emit(i, co.text, tids, finish, plen, counts[i], lps)
                if not unfinished:
                    end()
                elif out.finished:  # finished without every sequence (should not happen): say abort
                    for i in sorted(unfinished):
                        emit(i, "", [], "abort", plen, counts[i], None)
                    unfinished.clear()
                    end()
            except BaseException as e:  # noqa: BLE001 - reported to the consumer, never to vLLM
                if not closed:
                    end()
                    fail(e if isinstance(e, EngineError) else EngineError(f"vllm engine: request {request_id!r} failed: {type(e).__name__}: {e}"))

        pump: asyncio.Task[None] | None = None
        if _PUSH and type(q).__name__ == "RequestOutputCollector" and callable(getattr(q, "put", None)) and "put" not in vars(q):
            q.put = on_output  # vLLM's OutputProcessor calls queue.put(output) for this request
            pending = q.get_nowait() if getattr(q, "output", None) is not None else None
            if pending is not None:
                on_output(pending)
        else:

            async def read() -> None:
                while not closed:
                    try:
                        out = q.get_nowait() or await q.get()
                    except asyncio.CancelledError:
                        raise
                    except BaseException as e:  # noqa: BLE001
                        on_output(e)
                        return
                    on_output(out)

            pump = asyncio.get_running_loop().create_task(read())

        def close() -> None:
            if closed:
                return
            end()
            if pump is not None:
                pump.cancel()
            eng = self._engine
            if eng is not None:
                asyncio.get_running_loop().create_task(eng.abort(request_id))

        return close

    def _engine_error(self, request_id: str, e: BaseException) -> BaseException:
        """An exception from vLLM as this backend's error (EngineDead for a dead engine)."""
        if isinstance(e, (EngineError, asyncio.CancelledError)):
            return e
        ns = self._vllm
        if ns is not None and isinstance(e, ns.EngineDeadError):
            self._dead = f"{type(e).__name__}: {e}"
            return EngineDead(self.name, self._dead)
        if isinstance(e, ValueError):
            return EngineError(f"vllm engine: request {request_id!r} rejected: {e}")
        cause = e.__cause__ or e
        return EngineError(f"vllm engine: request {request_id!r} failed: {type(cause).__name__}: {cause}")

    async def _stream(self, request_id: str, ids: list[int], vparams: Any, n: int) -> AsyncIterator[Delta]:
        ns = self._vllm
        engine = self._engine
        counts = [0] * n
        unfinished = set(range(n))
        agen = engine.generate(ns.TokensPrompt(prompt_token_ids=ids), vparams, request_id)
        try:
            try:
                async for out in agen:
                    deltas = [self._to_delta(co, len(ids), counts) for co in out.outputs]
                    for d in deltas:
                        if d.finish_reason is not None:
                            unfinished.discard(d.index)
                    if not unfinished:
                        self._active.discard(request_id)  # reusable as soon as the last delta is out
                    for d in deltas:
                        yield d
                    if out.finished:
                        break
            except EngineError:
                raise
            except ns.EngineDeadError as e:
                self._dead = f"{type(e).__name__}: {e}"
                raise EngineDead(self.name, self._dead) from e
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as e:
                cause = e.__cause__ or e
                raise EngineError(f"vllm engine: request {request_id!r} failed: {type(cause).__name__}: {cause}") from e
            # A stream that ended without finishing every sequence (should not happen): say abort.
            for i in sorted(unfinished):
                yield Delta("", [], "abort", len(ids), counts[i], None, i)
        finally:
            self._active.discard(request_id)
            await agen.aclose()  # aborts the request in vLLM if it is still running

    def _to_delta(self, co: Any, prompt_tokens: int, counts: list[int]) -> Delta:
        token_ids = list(co.token_ids)
        counts[co.index] += len(token_ids)
        fr = co.finish_reason
        finish: FinishReason | None = None
        if fr is not None:
            fr = str(fr)
            if fr not in _FINISH:
                raise EngineError(f"vllm engine: the request finished with {fr!r} (internal engine error)")
            finish = _FINISH[fr]
        lps = None
        if co.logprobs is not None:
            lps = []
            for pos in list(co.logprobs)[-len(token_ids) :] if token_ids else []:
                lps.append({int(t): float(getattr(lp, "logprob", lp)) for t, lp in (pos or {}).items()})
        return Delta(
            text=co.text,
            token_ids=token_ids,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=counts[co.index],
            logprobs=lps,
            index=co.index,
        )

    async def abort(self, request_id: str) -> bool:
        if self._engine is None or request_id not in self._active:
            return False
        await self._engine.abort(request_id)
        return True


#: Push deltas from vLLM's output handler (see the module docstring); ``TSRAY_VLLM_PUSH=0`` turns it off.
_PUSH = os.environ.get("TSRAY_VLLM_PUSH", "1") != "0"


def _logprobs(logprobs: Any, n_new: int) -> list[dict[int, float]]:
    """vLLM's sample logprobs of the ``n_new`` newest tokens as ``{token_id: logprob}`` maps."""
    out = []
    for pos in list(logprobs)[-n_new:] if n_new else []:
        out.append({int(t): float(getattr(lp, "logprob", lp)) for t, lp in (pos or {}).items()})
    return out


def _generation_eos_ids(model_dir: str) -> list[int]:
    """``eos_token_id`` (int or list) of ``generation_config.json`` (vLLM stops on these too)."""
    try:
        with open(os.path.join(model_dir, "generation_config.json"), encoding="utf-8") as f:
            e = json.load(f).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return []
    if isinstance(e, int):
        return [e]
    if isinstance(e, list):
        return [int(x) for x in e if isinstance(x, int)]
    return []


class _VllmNames:
    """The vLLM names this backend uses (imported once, lazily)."""

    def __init__(self) -> None:
        from vllm import AsyncEngineArgs, SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.engine.exceptions import EngineDeadError
        from vllm.v1.metrics.loggers import StatLoggerBase

        self.AsyncEngineArgs = AsyncEngineArgs
        self.SamplingParams = SamplingParams
        self.TokensPrompt = TokensPrompt
        self.RequestOutputKind = RequestOutputKind
        self.AsyncLLM = AsyncLLM
        self.EngineDeadError = EngineDeadError
        self.StatLoggerBase = StatLoggerBase


def _import_vllm() -> _VllmNames:
    try:
        return _VllmNames()
    except ImportError as e:
        raise BackendUnavailable(
            "vllm",
            f"cannot import vLLM ({type(e).__name__}: {e}). Install vllm 0.26.x (torch 2.11) on this "
            "machine, or start the engine with the 'transformers' backend",
        ) from e
