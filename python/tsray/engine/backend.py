"""The engine backend interface: what a tsray LLM worker needs from an inference engine.

A backend owns one model instance (vLLM ``AsyncLLM``, HF transformers, or a scripted test engine)
inside the worker's Python process. Everything the worker calls is ``async`` except the tokenizer
helpers, which are cheap and synchronous.

Life cycle::

    backend = TransformersBackend()          # or VllmBackend(), ...
    await backend.start(model_dir, engine_args={}, num_gpus=0, gpu_fraction=1.0)
    async for delta in backend.generate("r1", "Hello", SamplingParams(max_tokens=8)):
        ...                                  # Delta per produced token (or a few)
    await backend.abort("r1")                # the stream ends with finish_reason 'abort'
    await backend.shutdown()

Streaming contract of :meth:`EngineBackend.generate`:

- ``generate`` is called from a running asyncio event loop (the deltas are delivered to it);
- argument errors (:class:`InvalidSamplingParams`, :class:`PromptTooLong`, :class:`InvalidPrompt`,
  :class:`DuplicateRequestId`, :class:`EngineNotStarted`) are raised by the ``generate(...)`` call
  itself, before any iteration;
- each :class:`Delta` carries only what is new since the previous delta of the same sequence
  (``index`` tells the sequences of an ``n > 1`` request apart);
- every sequence ends with exactly one delta whose ``finish_reason`` is set, then the iterator
  stops once all ``n`` sequences have finished;
- closing the iterator early (``break``, ``aclose()``, task cancellation) aborts the request;
- an engine failure while streaming raises :class:`EngineError` (or a subclass) from the iterator.
"""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import TsrayError

__all__ = [
    "GPU_MEMORY_HEADROOM",
    "BackendUnavailable",
    "Delta",
    "DeltaSink",
    "DuplicateRequestId",
    "EngineBackend",
    "ErrorSink",
    "EngineDead",
    "EngineError",
    "EngineNotStarted",
    "EngineStats",
    "FinishReason",
    "InvalidEngineArgs",
    "InvalidPrompt",
    "InvalidSamplingParams",
    "ModelLoadError",
    "NoChatTemplate",
    "PromptTooLong",
    "SamplingParams",
    "TokenizerInfo",
    "check_prompt",
    "check_prompt_ids",
    "derive_gpu_memory_utilization",
]

FinishReason = Literal["stop", "length", "abort"]
"""Why a sequence finished: ``stop`` (EOS token or stop string), ``length`` (``max_tokens`` or
the context length reached), ``abort`` (aborted by :meth:`EngineBackend.abort` or the caller)."""

#: Share of a GPU fraction that vLLM may request: ``gpu_memory_utilization = fraction × 0.9``.
#: vLLM compares its budget (a share of *total* memory) against *free* memory at start-up, so the
#: engines on one GPU must leave room for CUDA contexts and each other (vllm-notes §6 items 1-2).
GPU_MEMORY_HEADROOM = 0.9


# --------------------------------------------------------------------------------------- errors


class EngineError(TsrayError):
    """Base of the engine errors (tsray.engine)."""


class InvalidSamplingParams(EngineError, ValueError):
    """A sampling parameter is out of range or of the wrong type; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"invalid sampling parameter {field!r}: {message}")


class PromptTooLong(EngineError, ValueError):
    """The prompt does not fit the model's context: ``length`` tokens, ``limit`` allowed (the
    context length minus the one token that generation needs at least)."""

    def __init__(self, limit: int, length: int) -> None:
        self.limit = limit
        self.length = length
        super().__init__(
            f"prompt is {length} tokens long, the limit is {limit} tokens "
            f"(max_model_len {limit + 1} minus 1 token to generate); shorten the prompt or start "
            "the engine with a larger max_model_len"
        )


class InvalidPrompt(EngineError, ValueError):
    """The prompt is empty, of the wrong type, or holds token ids outside the vocabulary."""


class DuplicateRequestId(EngineError, ValueError):
    """``generate`` was called with the id of a request that is still running."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"request id {request_id!r} is already running on this engine")


class EngineNotStarted(EngineError, RuntimeError):
    """A method that needs a started engine was called before ``start()`` or after ``shutdown()``."""

    def __init__(self, backend: str, what: str) -> None:
        super().__init__(f"{backend}: {what} needs a started engine (call start() first; not after shutdown())")


class EngineDead(EngineError, RuntimeError):
    """The engine failed and cannot serve any more requests; ``reason`` says why."""

    def __init__(self, backend: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{backend} engine is dead: {reason}")


class BackendUnavailable(EngineError, ImportError):
    """The backend's engine library is not installed (or not usable) in this Python."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"engine backend {backend!r} is unavailable: {reason}")


class InvalidEngineArgs(EngineError, ValueError):
    """An engine argument given to ``start()`` is invalid; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"invalid engine argument {key!r}: {message}")


class ModelLoadError(EngineError, RuntimeError):
    """The model folder could not be loaded (missing files, unsupported architecture, ...)."""

    def __init__(self, model_dir: str, reason: str) -> None:
        self.model_dir = model_dir
        self.reason = reason
        super().__init__(f"cannot load the model from {model_dir}: {reason}")


class NoChatTemplate(EngineError, ValueError):
    """``apply_chat_template`` was called but the model's tokenizer has no chat template."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"the tokenizer of {model} has no chat_template (set one in tokenizer_config.json or "
            "chat_template.jinja, or send a plain prompt)"
        )


# ------------------------------------------------------------------------------ sampling params


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters of one request (a subset of vLLM's, same meanings).

    ``temperature`` 0 = greedy; ``top_k`` 0 or -1 = off; ``max_tokens`` None = up to the context
    length; ``stop`` strings end a sequence (not included in the text); ``seed`` makes sampling
    reproducible; ``n`` sequences per prompt; ``logprobs`` = number of top log-probabilities per
    generated token (0 = only the chosen token's); ``ignore_eos`` keeps generating past EOS.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int | None = 16
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    logprobs: int | None = None
    ignore_eos: bool = False

    #: Upper bounds enforced by :meth:`validate`.
    MAX_N = 64
    MAX_LOGPROBS = 20

    def __post_init__(self) -> None:
        # Accept any sequence of strings for ``stop`` (lists from JSON/msgpack), keep a tuple.
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif isinstance(self.stop, Sequence):
            object.__setattr__(self, "stop", tuple(self.stop))

    def validate(self) -> SamplingParams:
        """Check every field; raise :class:`InvalidSamplingParams` naming the first bad one.
        Returns ``self`` so calls chain."""
        t = self.temperature
        if not _is_number(t) or not math.isfinite(t) or t < 0:
            raise InvalidSamplingParams("temperature", f"must be a finite number >= 0, got {t!r}")
        p = self.top_p
        if not _is_number(p) or not (0 < p <= 1):
            raise InvalidSamplingParams("top_p", f"must be in (0, 1], got {p!r}")
        k = self.top_k
        if not _is_int(k) or (k < 0 and k != -1):
            raise InvalidSamplingParams("top_k", f"must be an integer >= 0 (0 or -1 = off), got {k!r}")
        m = self.max_tokens
        if m is not None and (not _is_int(m) or m < 1):
            raise InvalidSamplingParams("max_tokens", f"must be an integer >= 1 or None, got {m!r}")
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) for s in self.stop):
            raise InvalidSamplingParams("stop", f"must be a list of strings, got {self.stop!r}")
        if any(s == "" for s in self.stop):
            raise InvalidSamplingParams("stop", "stop strings must not be empty")
        s = self.seed
        if s is not None and (not _is_int(s) or not (0 <= s < 2**63)):
            raise InvalidSamplingParams("seed", f"must be an integer in [0, 2^63) or None, got {s!r}")
        n = self.n
        if not _is_int(n) or not (1 <= n <= self.MAX_N):
            raise InvalidSamplingParams("n", f"must be an integer in [1, {self.MAX_N}], got {n!r}")
        lp = self.logprobs
        if lp is not None and (not _is_int(lp) or not (0 <= lp <= self.MAX_LOGPROBS)):
            raise InvalidSamplingParams(
                "logprobs", f"must be an integer in [0, {self.MAX_LOGPROBS}] or None, got {lp!r}"
            )
        if not isinstance(self.ignore_eos, bool):
            raise InvalidSamplingParams("ignore_eos", f"must be a boolean, got {self.ignore_eos!r}")
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SamplingParams:
        """Build and validate from a plain mapping (wire format); unknown keys raise
        :class:`InvalidSamplingParams` naming the key. ``None`` values mean "default"
        except for ``max_tokens``, ``seed`` and ``logprobs`` where None is meaningful."""
        names = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in names:
                raise InvalidSamplingParams(str(key), "unknown sampling parameter")
            if value is None and key not in ("max_tokens", "seed", "logprobs"):
                continue
            if key == "stop" and not isinstance(value, (str, list, tuple)):
                raise InvalidSamplingParams("stop", f"must be a list of strings, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs).validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (``stop`` as a list)."""
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


# --------------------------------------------------------------------------------------- output


@dataclass
class Delta:
    """What is new for one sequence of a request since its previous delta.

    ``text``/``token_ids``: the new text and token ids (text may lag tokens by a few characters
    while a stop string could still match, or a multi-byte character is incomplete).
    ``finish_reason`` is set on the sequence's last delta. ``prompt_tokens`` is the prompt length;
    ``completion_tokens`` counts the sequence's generated tokens so far (cumulative).
    ``logprobs``: when requested, one ``{token_id: logprob}`` map per new token, holding the
    chosen token and the top-``logprobs`` alternatives. ``index`` is the sequence number (0..n-1).
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[dict[int, float]] | None = None
    index: int = 0


@dataclass(frozen=True)
class EngineStats:
    """Load of an engine: sequences ``waiting`` to be scheduled, ``running`` in the batch, and the
    KV cache in use as a fraction in [0, 1]."""

    waiting: int = 0
    running: int = 0
    kv_cache_usage: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping."""
        return asdict(self)


@dataclass(frozen=True)
class TokenizerInfo:
    """Facts about the model's tokenizer that a router or client may need."""

    vocab_size: int
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    has_chat_template: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (``eos_token_ids`` as a list)."""
        d = asdict(self)
        d["eos_token_ids"] = list(self.eos_token_ids)
        return d


def derive_gpu_memory_utilization(gpu_fraction: float, headroom: float = GPU_MEMORY_HEADROOM) -> float:
    """vLLM's ``gpu_memory_utilization`` for an engine that holds ``gpu_fraction`` of each of its
    GPUs: ``gpu_fraction × headroom`` (0.9), rounded down to 4 decimals. A caller that starts
    several engines on one GPU passes this value and starts them one after another."""
    if not _is_number(gpu_fraction) or not (0 < gpu_fraction <= 1):
        raise ValueError(f"gpu_fraction must be in (0, 1], got {gpu_fraction!r}")
    return math.floor(gpu_fraction * headroom * 10_000) / 10_000


#: Receives one delta of a pushed stream (:meth:`EngineBackend.open_stream`), as positional
#: arguments ``(index, text, token_ids, finish_reason, prompt_tokens, completion_tokens, logprobs)``
#: with the meanings of :class:`Delta`'s fields (no object per delta: this is the hot path).
DeltaSink = Callable[[int, str, Sequence[int], "FinishReason | None", int, int, "list[dict[int, float]] | None"], None]

#: Receives the error that ends a pushed stream early (an :class:`EngineError` or another exception).
ErrorSink = Callable[[BaseException], None]

# ------------------------------------------------------------------------------------ interface


class HFTokenizerMixin:
    """The tokenizer side of a backend with a Hugging Face tokenizer (vLLM's and transformers' both are).

    The backend sets ``name``, ``_tok`` (None until started), ``_max_model_len``, ``_vocab_size``,
    ``_eos_ids`` and ``_model_dir``.
    """

    name: str
    _tok: Any
    _max_model_len: int
    _vocab_size: int
    _eos_ids: tuple[int, ...]
    _model_dir: str

    def _need_tok(self, what: str) -> Any:
        if self._tok is None:
            raise EngineNotStarted(self.name, what)
        return self._tok

    @property
    def max_model_len(self) -> int:
        if not self._max_model_len:
            raise EngineNotStarted(self.name, "max_model_len")
        return self._max_model_len

    def tokenizer_info(self) -> TokenizerInfo:
        tok = self._need_tok("tokenizer_info()")
        return TokenizerInfo(
            vocab_size=self._vocab_size,
            bos_token_id=getattr(tok, "bos_token_id", None),
            eos_token_ids=self._eos_ids,
            pad_token_id=getattr(tok, "pad_token_id", None),
            has_chat_template=bool(getattr(tok, "chat_template", None)),
        )

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._need_tok("encode()").encode(text, add_special_tokens=add_special_tokens))

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._need_tok("decode()").decode(list(token_ids), skip_special_tokens=skip_special_tokens))

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]]) -> str:
        tok = self._need_tok("apply_chat_template()")
        if not getattr(tok, "chat_template", None):
            raise NoChatTemplate(self._model_dir)
        return str(tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))


class EngineBackend(abc.ABC):
    """One inference engine instance; see the module docstring for the streaming contract."""

    #: Short backend name used in errors and logs ("transformers", "vllm", "scripted").
    name: str = "engine"

    @abc.abstractmethod
    async def start(
        self,
        model_dir: str,
        engine_args: Mapping[str, Any] | None = None,
        num_gpus: float = 0.0,
        gpu_fraction: float = 1.0,
    ) -> None:
        """Load the model from the local folder ``model_dir`` and get ready to serve.

        ``engine_args`` are backend-specific options (for vLLM, ``AsyncEngineArgs`` fields);
        ``num_gpus`` is the number of GPUs the engine spans (0 = CPU; for vLLM the tensor-parallel
        size); ``gpu_fraction`` the share of each of those GPUs it may use (0, 1].
        """

    @abc.abstractmethod
    def generate(self, request_id: str, prompt: str | list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        """Start a request and return its stream of :class:`Delta` (see the module docstring).
        ``prompt``: text (tokenized with the model's special tokens, e.g. BOS) or token ids."""

    async def open_stream(
        self, request_id: str, prompt: str | list[int], params: SamplingParams, emit: DeltaSink, fail: ErrorSink
    ) -> Callable[[], None]:
        """Push variant of :meth:`generate`: start a request and call ``emit`` with each delta (same
        contract: exactly one finishing delta per sequence, the last ones) or ``fail`` once with the
        error that ends the stream early. Argument errors are raised by this call. Returns a
        ``close()`` that stops the stream (the request is aborted; nothing is emitted after it).

        The default runs :meth:`generate` in one task per request; a backend may deliver deltas
        from its own output loop instead (the vLLM backend does: no task per request).
        """
        agen = self.generate(request_id, prompt, params)

        async def pump() -> None:
            try:
                async for d in agen:
                    emit(d.index, d.text, d.token_ids, d.finish_reason, d.prompt_tokens, d.completion_tokens, d.logprobs)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - handed to the consumer
                fail(e)

        task = asyncio.get_running_loop().create_task(pump())
        return task.cancel

    @abc.abstractmethod
    async def abort(self, request_id: str) -> bool:
        """Abort a running request: its stream ends with ``finish_reason='abort'`` for every
        unfinished sequence. Returns False when no such request is running (a no-op)."""

    @abc.abstractmethod
    async def stats(self) -> EngineStats:
        """Current load (cheap; may lag the engine by a step)."""

    @abc.abstractmethod
    async def health(self) -> None:
        """Return when the engine can serve; raise :class:`EngineDead` (or
        :class:`EngineNotStarted`) when it cannot."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Abort every request and release the model (idempotent)."""

    @abc.abstractmethod
    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """Render chat ``messages`` (``{"role", "content"}`` maps) to a prompt string with the
        tokenizer's chat template and the generation prompt appended; raises
        :class:`NoChatTemplate` when the tokenizer has none."""

    @property
    @abc.abstractmethod
    def max_model_len(self) -> int:
        """Context length in tokens (prompt + generated)."""

    @abc.abstractmethod
    def tokenizer_info(self) -> TokenizerInfo:
        """Facts about the tokenizer."""

    @abc.abstractmethod
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Tokenize ``text`` the way a text prompt is tokenized."""

    @abc.abstractmethod
    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Detokenize."""


def check_prompt(prompt: object) -> str | list[int]:
    """Type-check a prompt: a string, or a non-empty list of non-negative ints. Raises
    :class:`InvalidPrompt`. Returns the prompt (a list copy for token ids)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise InvalidPrompt("the prompt token id list is empty")
        if not all(_is_int(t) and t >= 0 for t in prompt):
            raise InvalidPrompt("prompt token ids must be non-negative integers")
        return list(prompt)
    raise InvalidPrompt(f"a prompt is a string or a list of token ids, got {type(prompt).__name__}")


def check_prompt_ids(token_ids: Sequence[int], vocab_size: int, max_model_len: int) -> None:
    """Check tokenized prompt ids against the vocabulary and the context length: raises
    :class:`InvalidPrompt` (empty, id out of range) or :class:`PromptTooLong` (more than
    ``max_model_len - 1`` tokens: one token must be left to generate)."""
    if not token_ids:
        raise InvalidPrompt("the prompt is empty after tokenization")
    bad = next((t for t in token_ids if t >= vocab_size), None)
    if bad is not None:
        raise InvalidPrompt(f"prompt token id {bad} is outside the vocabulary (size {vocab_size})")
    limit = max_model_len - 1
    if len(token_ids) > limit:
        raise PromptTooLong(limit=limit, length=len(token_ids))
