"""tsray.engine: LLM inference engines hosted inside a tsray Python worker.

:mod:`.backend` defines the :class:`EngineBackend` interface (async start/generate/abort/stats/
health/shutdown plus tokenizer helpers) and its value types and errors. Implementations:
:class:`~tsray.engine.transformers_backend.TransformersBackend` (HF transformers, CPU or GPU, its
own continuous-batching loop) and :class:`~tsray.engine.vllm_backend.VllmBackend` (vLLM
``AsyncLLM``). Both import their heavy libraries lazily, so importing this package is cheap and
works without torch or vLLM; use :func:`create_backend` to pick one by name.
"""

from __future__ import annotations

from .backend import (
    GPU_MEMORY_HEADROOM,
    BackendUnavailable,
    Delta,
    DuplicateRequestId,
    EngineBackend,
    EngineDead,
    EngineError,
    EngineNotStarted,
    EngineStats,
    FinishReason,
    InvalidEngineArgs,
    InvalidPrompt,
    InvalidSamplingParams,
    ModelLoadError,
    NoChatTemplate,
    PromptTooLong,
    SamplingParams,
    TokenizerInfo,
    derive_gpu_memory_utilization,
)

__all__ = [
    "BACKENDS",
    "GPU_MEMORY_HEADROOM",
    "BackendUnavailable",
    "Delta",
    "DuplicateRequestId",
    "EngineBackend",
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
    "create_backend",
    "derive_gpu_memory_utilization",
]

#: Backend names accepted by :func:`create_backend` ("scripted" is test-only).
BACKENDS = ("vllm", "transformers", "scripted")


def create_backend(name: str) -> EngineBackend:
    """A new, not yet started backend by name: ``"vllm"``, ``"transformers"`` or ``"scripted"``
    (test-only, :mod:`tsray.engine.scripted_backend`). Raises
    :class:`BackendUnavailable` for an unknown name (the library itself is imported at start())."""
    if name == "vllm":
        from .vllm_backend import VllmBackend

        return VllmBackend()
    if name == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend()
    if name == "scripted":
        from .scripted_backend import ScriptedBackend

        return ScriptedBackend()
    raise BackendUnavailable(name, f"unknown backend name; known: {', '.join(BACKENDS)}")
