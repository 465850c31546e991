"""TEST-ONLY scripted engine: deterministic deltas, delays, failures and crashes on demand.

Not an inference engine: it lets the worker/bridge tests exercise protocol edge cases (streaming,
abort, slow engines, request failures, a dying worker process) without torch or a model. It lives in
the package (not under tests/) so that a tsray worker process started by a TypeScript test can load
it with ``create_backend("scripted")``.

Behaviour:

- "tokenizer": a prompt string is split on whitespace, one token per word (id = 100 + word length,
  plus a BOS id 1); generated token ``i`` has id ``i`` and text ``"tok<i>"``, separated by spaces
  (so a stream reads ``"tok0 tok1 tok2"``); ``max_model_len`` 128 unless configured.
- each sequence produces ``max_tokens`` tokens (``finish_reason='length'``; default 16), or stops
  early on a stop string (``'stop'``); sequence ``k`` of an ``n > 1`` request yields the same
  tokens (index ``k``).
- magic words in the prompt (configurable through ``engine_args``):
  ``__crash__`` → the process exits at once with ``os._exit(crash_exit_code)`` (default 77) when
  the first token is due; ``__fail__`` → the stream raises :class:`ScriptedFailure` after
  ``fail_after`` tokens (default 2); ``__hang__`` → no token until aborted;
  ``__slow__`` → ``slow_token_delay_s`` (default 0.2 s) between tokens.
- ``logprobs`` = k: token ``i`` is the step's most likely token (log-probability -0.25), followed by
  tokens ``i+1 … i+k-1`` at -1.5, -2.75, … (so the top entries are sorted and contain the sampled token).

``engine_args``: ``token_delay_s`` (0), ``first_token_delay_s`` (0), ``start_delay_s`` (0),
``fail_start`` (False → raise :class:`~tsray.engine.backend.ModelLoadError` from start),
``max_model_len`` (128), ``crash_exit_code`` (77), ``fail_after`` (2), ``slow_token_delay_s`` (0.2),
``chat_template`` (True: a "role: content" template; False: none), ``start_gate_file`` (None: every
start of an engine with this file but the first waits until the file exists, so a test decides when
the second rank of a group becomes ready).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._detok import IncrementalText
from .backend import (
    Delta,
    DuplicateRequestId,
    EngineBackend,
    EngineDead,
    EngineError,
    EngineNotStarted,
    EngineStats,
    FinishReason,
    InvalidEngineArgs,
    ModelLoadError,
    NoChatTemplate,
    SamplingParams,
    TokenizerInfo,
    check_prompt,
    check_prompt_ids,
)

__all__ = ["SCRIPTED_DEFAULTS", "ScriptedBackend", "ScriptedFailure"]

#: Default engine arguments of the scripted backend.
SCRIPTED_DEFAULTS: dict[str, Any] = {
    "token_delay_s": 0.0,
    "first_token_delay_s": 0.0,
    "start_delay_s": 0.0,
    "fail_start": False,
    "max_model_len": 128,
    "crash_exit_code": 77,
    "fail_after": 2,
    "slow_token_delay_s": 0.2,
    "chat_template": True,
    "start_gate_file": None,
}

async def _pass_start_gate(gate: str) -> None:
    """The first start with `gate` passes at once (it creates ``<gate>.first``); later ones wait until
    `gate` exists."""
    try:
        os.close(os.open(gate + ".first", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return
    except FileExistsError:
        pass
    while not os.path.exists(gate):
        await asyncio.sleep(0.01)


VOCAB_SIZE = 1000
BOS_ID = 1
EOS_ID = 2


class ScriptedFailure(EngineError):
    """The failure a ``__fail__`` prompt asks for."""

    def __init__(self, request_id: str, after: int) -> None:
        super().__init__(f"scripted engine: request {request_id!r} failed on purpose after {after} tokens (__fail__)")


@dataclass(eq=False)
class _Req:
    request_id: str
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    running: bool = False


class ScriptedBackend(EngineBackend):
    """See the module docstring. :attr:`started_with` records the ``start()`` arguments."""

    name = "scripted"

    def __init__(self) -> None:
        self._cfg: dict[str, Any] | None = None
        self._reqs: dict[str, _Req] = {}
        self._dead: str | None = None
        self.started_with: dict[str, Any] = {}

    async def start(
        self,
        model_dir: str,
        engine_args: Mapping[str, Any] | None = None,
        num_gpus: float = 0.0,
        gpu_fraction: float = 1.0,
    ) -> None:
        cfg = dict(SCRIPTED_DEFAULTS)
        for k, v in (engine_args or {}).items():
            if k not in cfg:
                raise InvalidEngineArgs(k, f"unknown to the scripted backend (known: {', '.join(cfg)})")
            cfg[k] = v
        if cfg["start_delay_s"]:
            await asyncio.sleep(float(cfg["start_delay_s"]))
        if cfg["start_gate_file"]:
            await _pass_start_gate(str(cfg["start_gate_file"]))
        if cfg["fail_start"]:
            raise ModelLoadError(model_dir, "scripted start failure (fail_start)")
        self.started_with = {
            "model_dir": model_dir,
            "engine_args": dict(engine_args or {}),
            "num_gpus": num_gpus,
            "gpu_fraction": gpu_fraction,
        }
        self._cfg = cfg

    async def shutdown(self) -> None:
        for r in self._reqs.values():
            r.aborted.set()
        self._cfg = None
        self._dead = "shut down"

    async def health(self) -> None:
        if self._cfg is None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, "health()")

    async def stats(self) -> EngineStats:
        running = sum(1 for r in self._reqs.values() if r.running)
        return EngineStats(waiting=len(self._reqs) - running, running=running, kv_cache_usage=0.0)

    @property
    def max_model_len(self) -> int:
        return int(self._need("max_model_len")["max_model_len"])

    def _need(self, what: str) -> dict[str, Any]:
        if self._cfg is None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, what)
        return self._cfg

    def tokenizer_info(self) -> TokenizerInfo:
        cfg = self._need("tokenizer_info()")
        return TokenizerInfo(VOCAB_SIZE, BOS_ID, (EOS_ID,), None, bool(cfg["chat_template"]))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [min(VOCAB_SIZE - 1, 100 + len(w)) for w in text.split()]
        return ([BOS_ID] if add_special_tokens else []) + ids

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return " ".join(f"tok{t}" for t in token_ids)

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]]) -> str:
        if not self._need("apply_chat_template()")["chat_template"]:
            raise NoChatTemplate("the scripted engine")
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def generate(self, request_id: str, prompt: str | list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        cfg = self._need("generate()")
        params.validate()
        p = check_prompt(prompt)
        ids = self.encode(p) if isinstance(p, str) else p
        check_prompt_ids(ids, VOCAB_SIZE, int(cfg["max_model_len"]))
        if request_id in self._reqs:
            raise DuplicateRequestId(request_id)
        req = _Req(request_id)
        self._reqs[request_id] = req
        return self._stream(req, p if isinstance(p, str) else "", len(ids), params, cfg)

    async def abort(self, request_id: str) -> bool:
        r = self._reqs.get(request_id)
        if r is None:
            return False
        r.aborted.set()
        return True

    async def _pause(self, req: _Req, seconds: float) -> bool:
        """Wait ``seconds`` (or forever when negative); True when aborted meanwhile."""
        if req.aborted.is_set():
            return True
        if seconds == 0:
            await asyncio.sleep(0)
            return req.aborted.is_set()
        try:
            await asyncio.wait_for(req.aborted.wait(), None if seconds < 0 else seconds)
            return True
        except TimeoutError:
            return False

    async def _stream(
        self, req: _Req, text: str, prompt_tokens: int, params: SamplingParams, cfg: dict[str, Any]
    ) -> AsyncIterator[Delta]:
        words = set(text.split())
        room = int(cfg["max_model_len"]) - prompt_tokens
        max_tokens = room if params.max_tokens is None else min(params.max_tokens, room)
        delay = float(cfg["slow_token_delay_s"] if "__slow__" in words else cfg["token_delay_s"])
        n = params.n
        texts = [IncrementalText(self._decode_fragment, params.stop) for _ in range(n)]
        done = [False] * n
        req.running = True

        def finish(reason: FinishReason, count: int) -> list[Delta]:
            self._forget(req)
            return [
                Delta(texts[k].take(True), [], reason, prompt_tokens, count, None, k) for k in range(n) if not done[k]
            ]

        try:
            if await self._pause(req, -1.0 if "__hang__" in words else float(cfg["first_token_delay_s"])):
                for d in finish("abort", 0):
                    yield d
                return
            if "__crash__" in words:
                os._exit(int(cfg["crash_exit_code"]))
            for i in range(max_tokens):
                if i > 0 and await self._pause(req, delay):
                    for d in finish("abort", i):
                        yield d
                    return
                if "__fail__" in words and i >= int(cfg["fail_after"]):
                    self._forget(req)
                    raise ScriptedFailure(req.request_id, i)
                last = i == max_tokens - 1
                out: list[Delta] = []
                for k in range(n):
                    if done[k]:
                        continue
                    reason: FinishReason | None = "stop" if texts[k].add(i) else ("length" if last else None)
                    lp = [_scripted_logprobs(i, params.logprobs)] if params.logprobs is not None else None
                    out.append(Delta(texts[k].take(reason is not None), [i], reason, prompt_tokens, i + 1, lp, k))
                    if reason is not None:
                        done[k] = True
                if all(done):
                    self._forget(req)
                for d in out:
                    yield d
                if all(done):
                    return
        finally:
            req.running = False
            self._forget(req)

    def _forget(self, req: _Req) -> None:
        req.running = False
        if self._reqs.get(req.request_id) is req:
            del self._reqs[req.request_id]

    @staticmethod
    def _decode_fragment(ids: Sequence[int]) -> str:
        # Token i reads "tok<i>"; tokens are separated by a space (token 0 always comes first).
        return "".join(("" if t == 0 else " ") + f"tok{t}" for t in ids)


def _scripted_logprobs(token: int, k: int) -> dict[int, float]:
    """The scripted step's logprob map: the sampled ``token`` most likely, then ``k - 1`` runners-up."""
    return {token + r: -0.25 - 1.25 * r for r in range(max(1, k))}
